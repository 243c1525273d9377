"""quintet: the Python side of quintet, one package for every Python tool
and test (the demo, the dashboard, watch, faultinject, the bench, tests/).

    topology    common/topology.txt: roles, topics, upstreams (and, from a
                build's quintetctl, the Byzantine modes)
    build       the build's pieces: quintet_pb2, daemon and quintetctl paths,
                what quintetctl reports (environments, rules, config keys)
    trust       the trust store and key ids
    verifier    the one Python receive path, with the C verifier's rules
    stream      a dashboard's view of the verified stream: gaps, records
    zpl         ZPL text of a config tree
    ports       free loopback ports
    progress    what eval and reward say about a run
    replica     a deployment's processes: replicas, the relay, log tails
    deploy      a whole deployment on loopback (keys, configs, processes)

How to import it: a script puts SOURCE/tools/python first on sys.path,
from its own location, then `from quintet import ...`; nothing is
installed and no PYTHONPATH is needed (README "Layout"). The modules need
Debian's python3-zmq, python3-nacl and python3-protobuf (/usr/bin/python3).
"""
