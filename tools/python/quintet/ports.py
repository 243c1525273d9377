"""Free loopback TCP ports for a deployment's listening sockets."""
import random
import socket

# Listening ports come from below the kernel's ephemeral range: the ports
# that connect() picks for the daemons' own outgoing connections come from
# that range, and one of them could otherwise take a port handed out here
# before its daemon has bound it.
_PORT_FLOOR = 10000


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count, avoid=()):
    """`count` distinct free loopback TCP ports below the ephemeral range:
    all bound at once, then freed; none of `avoid` (ports handed out by an
    earlier call)."""
    chooser = random.SystemRandom()
    high = _ephemeral_low()
    sockets = []
    try:
        ports = []
        for _ in range(100 * count):
            if len(ports) == count:
                break
            port = chooser.randrange(_PORT_FLOOR, high)
            if port in avoid or port in ports:
                continue
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            sockets.append(s)
            ports.append(port)
        if len(ports) < count:
            raise OSError("no %d free loopback ports below %d" % (count, high))
        return ports
    finally:
        for s in sockets:
            s.close()

