#!/usr/bin/env python3
"""Sends a burst of malformed SIP messages to homeline and reports what came back.

    python3 malformed_burst.py --udp 127.0.0.1:5060 [--tcp 127.0.0.1:5060] [--wait 2]

Each UDP message goes from its own socket (its Via names that socket, with rport), so every
response can be told apart. One oversized message goes over TCP when --tcp is given. Prints
one JSON object: {"results": [{"name", "transport", "expect", "status", "size"}, ...]} where
`status` is the first response's status code, or null when nothing came back (or, over TCP,
the connection was closed without a response).

`expect` says what homeline may do, for the test to check:
  "reply:CODES"         answer with one of CODES (comma-separated)
  "reply-or-drop:CODES" answer with one of CODES, or drop it (and count it as malformed)
  "drop"                no answer is possible: drop it (and count it as malformed)
"""
import argparse
import json
import random
import select
import socket
import sys
import time


def request(name, port, method="OPTIONS", transport="UDP", omit=(), extra=(), body=b"",
            content_length=None):
    """A request from 127.0.0.1:port, with every mandatory header unless named in `omit`."""
    headers = [
        ("Via", f"SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bK-burst-{name};rport"),
        ("From", f"<sip:burst@127.0.0.1>;tag=burst-{name}"),
        ("To", "<sip:homeline@127.0.0.1>"),
        ("Call-ID", f"burst-{name}@127.0.0.1"),
        ("CSeq", f"1 {method}"),
        ("Max-Forwards", "70"),
    ]
    headers = [(k, v) for k, v in headers if k not in omit]
    headers += list(extra)
    length = len(body) if content_length is None else content_length
    headers.append(("Content-Length", str(length)))
    head = f"{method} sip:homeline@127.0.0.1 SIP/2.0\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode() + b"\r\n" + body


def udp_burst(port):
    """(name, expect, bytes) for each message sent from a socket bound to `port`."""
    rng = random.Random(4475)
    full = request("truncated", port)
    return [
        ("truncated", "reply-or-drop:400", full[: len(full) // 2]),
        ("start-line-only", "drop", b"OPTIONS sip:homeline@127.0.0.1 SIP/2.0\r\n\r\n"),
        ("missing-via", "drop", request("missing-via", port, omit=("Via",))),
        ("missing-from", "reply-or-drop:400", request("missing-from", port, omit=("From",))),
        ("missing-to", "reply-or-drop:400", request("missing-to", port, omit=("To",))),
        ("missing-call-id", "reply-or-drop:400",
         request("missing-call-id", port, omit=("Call-ID",))),
        ("missing-cseq", "reply-or-drop:400", request("missing-cseq", port, omit=("CSeq",))),
        # RFC 3261 18.3: a UDP request whose body is shorter than Content-Length SHOULD get 400.
        ("content-length-too-large", "reply:400",
         request("content-length-too-large", port, body=b"0123456789", content_length=500)),
        ("content-length-not-a-number", "reply-or-drop:400",
         request("content-length-not-a-number", port, body=b"x", content_length="ten")),
        ("binary-garbage", "drop", bytes(rng.randrange(256) for _ in range(512))),
        # Larger than the test's sip.max_message_size: dropped, or 513 Message Too Large.
        ("oversized", "reply-or-drop:400,513",
         request("oversized", port, extra=[("Content-Type", "text/plain")],
                 body=b"x" * 60000)),
        # Well formed, method unknown: 501 Not Implemented (RFC 3261 21.5.2).
        ("unknown-method", "reply:501", request("unknown-method", port, method="FOO")),
    ]


def status_of(data):
    if data.startswith(b"SIP/2.0 ") and len(data) >= 11 and data[8:11].isdigit():
        return int(data[8:11])
    return None


def send_udp(target, wait):
    socks = []
    results = []
    count = len(udp_burst(0))  # each message names its own socket's port: build it per socket
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        port = s.getsockname()[1]
        name, expect, data = udp_burst(port)[i]
        s.sendto(data, target)
        socks.append(s)
        results.append({"name": name, "transport": "udp", "expect": expect, "status": None,
                        "size": len(data)})
        time.sleep(0.02)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        ready, _, _ = select.select(socks, [], [], max(0.0, deadline - time.monotonic()))
        for s in ready:
            i = socks.index(s)
            try:
                data = s.recv(65535)
            except OSError:
                continue  # ICMP port unreachable and the like
            code = status_of(data)
            if code is not None and code >= 200 and results[i]["status"] is None:
                results[i]["status"] = code
    for s in socks:
        s.close()
    return results


def send_tcp(target, wait):
    """A 70 kB request over TCP, larger than any sip.max_message_size allows."""
    result = {"name": "oversized-tcp", "transport": "tcp", "expect": "reply-or-drop:400,513",
              "status": None, "size": 0}
    try:
        s = socket.create_connection(target, timeout=wait)
    except OSError as e:
        result["error"] = f"connect: {e}"
        return result
    port = s.getsockname()[1]
    data = request("oversized-tcp", port, transport="TCP",
                   extra=[("Content-Type", "text/plain")], body=b"y" * 70000)
    result["size"] = len(data)
    try:
        s.sendall(data)
    except OSError:
        pass  # homeline may close the connection before it has read everything
    s.settimeout(wait)
    try:
        reply = s.recv(65535)
        result["status"] = status_of(reply)
    except OSError:
        pass
    s.close()
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--udp", required=True, help="HOST:PORT")
    p.add_argument("--tcp", help="HOST:PORT")
    p.add_argument("--wait", type=float, default=2.0, help="seconds to wait for responses")
    a = p.parse_args()
    host, port = a.udp.rsplit(":", 1)
    results = send_udp((host, int(port)), a.wait)
    if a.tcp:
        host, port = a.tcp.rsplit(":", 1)
        results.append(send_tcp((host, int(port)), a.wait))
    json.dump({"results": results}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
