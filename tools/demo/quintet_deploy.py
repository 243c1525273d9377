"""What tools/relay/quintet-relay still imports from here, now in the quintet
package (tools/python/quintet): delete this file with the Python relay,
which is being replaced by daemons/relay/ in C. Nothing else imports it.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "python"))

from quintet.build import load_pb2  # noqa: E402,F401
from quintet.trust import TrustStore  # noqa: E402,F401
from quintet.verifier import MESSAGE_SIZE_CAP, Verifier  # noqa: E402,F401
