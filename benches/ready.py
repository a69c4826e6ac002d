"""Readiness probe of the benchmarks: exits 0 once homeline answers an OPTIONS over UDP on
127.0.0.1:PORT with 200, 1 after 10 s.

    python3 benches/ready.py PORT
"""
import socket, sys, time
port = int(sys.argv[1])
deadline = time.time() + 10
n = 0
while time.time() < deadline:
    n += 1
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.3)
    local = "127.0.0.1:%d" % s.getsockname()[1]
    msg = ("OPTIONS sip:127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ready-%d\r\n"
           "From: <sip:probe@127.0.0.1>;tag=r%d\r\nTo: <sip:127.0.0.1:%d>\r\n"
           "Call-ID: ready-%d@bench\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
           "Content-Length: 0\r\n\r\n") % (port, local, n, n, port, n)
    s.sendto(msg.encode(), ("127.0.0.1", port))
    try:
        if s.recv(65535).startswith(b"SIP/2.0 200"):
            sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
