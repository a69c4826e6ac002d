#!/usr/bin/env python3
"""Helpers of benches/calls/run.sh (standard library only).

  analyze.py wavs DIR                 writes tone1k_ulaw.wav and tone660_ulaw.wav (3 s, u-law,
                                      8 kHz: what SIPp's rtp_stream sends as PCMU) into DIR
  analyze.py free-ports IP N          prints the first of N consecutive ports free on IP for
                                      UDP and TCP
  analyze.py latency PCAP SIP_PORT    homeline's INVITE-to-operator-INVITE latency from a
                                      capture of INVITEs on lo (pcap, Ethernet or cooked
                                      link type): for each call, the time from the first
                                      INVITE the PBX sent to SIP_PORT to the first INVITE
                                      homeline sent to an operator, paired by the caller
                                      (From user, unique per call, passed on by homeline).
                                      Prints `pairs p50_ms p90_ms p99_ms max_ms unpaired_in
                                      unpaired_out inbound_rate` (`0 - - - - ...` without
                                      pairs), inbound_rate being the calls/s at which the
                                      PBX's first INVITEs came (first to last).
  analyze.py log LOG                  homeline's JSON log: prints `answered outcomes on_call
                                      warnings wait_p99_ms wait_max_ms` (`call outcome` lines
                                      whose outcome is Answered, all `call outcome` lines,
                                      `operator state` lines with state on_call, WARN/ERROR
                                      lines, and the answered calls' wait_ms: the time in the
                                      queue until an operator answered).
  analyze.py media LOG                the relay reports (`call media ended`, with `call
                                      outcome`'s talk_ms): prints `calls pps_sum received
                                      forwarded lost send_errors min_fwd max_fwd`, where
                                      pps_sum is the sum over calls of (packets forwarded on
                                      both legs) / talk time: the packets/s relayed while they
                                      all run at once.
"""

import json
import math
import re
import socket
import struct
import sys


def ulaw(sample):
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    mag = min(abs(sample), clip) + bias
    exponent = 7
    while exponent > 0 and not mag & (0x4000 >> (7 - exponent)):
        exponent -= 1
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def write_wav(path, hz, seconds=3.0, amplitude=0.5):
    n = int(seconds * 8000)
    data = bytes(
        ulaw(int(amplitude * 32767 * math.sin(2 * math.pi * hz * i / 8000))) for i in range(n)
    )
    header = (
        b"RIFF" + struct.pack("<I", 36 + n) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 7, 1, 8000, 8000, 1, 8)
        + b"data" + struct.pack("<I", n)
    )
    with open(path, "wb") as f:
        f.write(header + data)


def wavs(directory):
    write_wav(f"{directory}/tone1k_ulaw.wav", 1000.0)
    write_wav(f"{directory}/tone660_ulaw.wav", 660.0)


def free_ports(ip, n):
    for _ in range(200):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((ip, 0))
        first = probe.getsockname()[1]
        probe.close()
        if first + n > 65535:
            continue
        held = []
        try:
            for port in range(first, first + n):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(socket.AF_INET, kind)
                    held.append(s)
                    s.bind((ip, port))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
        print(first)
        return
    sys.exit(f"no {n} consecutive free ports on {ip}")


def pcap_packets(path):
    """(timestamp, src_ip, src_port, dst_ip, dst_port, payload) of the UDP/IPv4 packets."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        sys.exit(f"{path}: not a pcap file (dumpcap -P)")
    frac = 1e-9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    link_len = {1: 14, 113: 16, 276: 20}.get(linktype)
    if link_len is None:
        sys.exit(f"{path}: link type {linktype} not handled")
    at = 24
    while at + 16 <= len(data):
        sec, sub, incl, _ = struct.unpack(endian + "IIII", data[at:at + 16])
        frame = data[at + 16:at + 16 + incl]
        at += 16 + incl
        ip = frame[link_len:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
        sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
        yield sec + sub * frac, src, sport, dst, dport, ip[ihl + 8:]


FROM_USER = re.compile(rb"^(?:From|f)\s*:[^\r\n]*?sips?:([^@;>\s]+)@", re.I | re.M)


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def latency(path, sip_port):
    sip_port = int(sip_port)
    inbound, outbound = {}, {}
    for ts, _src, sport, _dst, dport, payload in pcap_packets(path):
        if not payload.startswith(b"INVITE "):
            continue
        m = FROM_USER.search(payload)
        if not m:
            continue
        user = m.group(1)
        if dport == sip_port and sport != sip_port:
            inbound.setdefault(user, ts)
        elif sport == sip_port:
            outbound.setdefault(user, ts)
    values = sorted(
        (outbound[u] - t) * 1000 for u, t in inbound.items() if u in outbound
    )
    unpaired_in = sum(1 for u in inbound if u not in outbound)
    unpaired_out = sum(1 for u in outbound if u not in inbound)
    times = sorted(inbound.values())
    span = times[-1] - times[0] if len(times) > 1 else 0
    rate = "%.1f" % ((len(times) - 1) / span) if span > 0 else "-"
    if not values:
        print(f"0 - - - - {unpaired_in} {unpaired_out} {rate}")
        return
    print(
        "%d %.3f %.3f %.3f %.3f %d %d %s" % (
            len(values), percentile(values, 50), percentile(values, 90),
            percentile(values, 99), values[-1], unpaired_in, unpaired_out, rate,
        )
    )


def log_lines(path):
    with open(path, errors="replace") as f:
        for line in f:
            try:
                j = json.loads(line)
            except ValueError:
                continue
            yield j, j.get("fields", {})


def log_counts(path):
    answered = outcomes = on_call = warnings = 0
    waits = []
    for j, fields in log_lines(path):
        message = fields.get("message", "")
        if message == "call outcome":
            outcomes += 1
            if str(fields.get("outcome", "")).startswith("Answered"):
                answered += 1
                waits.append(fields.get("wait_ms", 0))
        elif message == "operator state" and fields.get("state") == "on_call":
            on_call += 1
        if j.get("level") in ("WARN", "ERROR") and not message.startswith("not built yet"):
            warnings += 1
    waits.sort()
    if waits:
        print(answered, outcomes, on_call, warnings, percentile(waits, 99), waits[-1])
    else:
        print(answered, outcomes, on_call, warnings, "-", "-")


def media(path):
    talk, reports = {}, {}
    for _, fields in log_lines(path):
        message = fields.get("message")
        if message == "call outcome":
            talk[fields.get("call")] = fields.get("talk_ms", 0)
        elif message == "call media ended":
            reports[fields.get("call")] = fields.get("media", "")

    def legs(report):
        out = []
        for name in ("a: LegReport", "b: LegReport"):
            at = report.find(name)
            if at < 0:
                return None
            text = report[at:]
            numbers = {}
            for key in ("packets", "lost", "forwarded", "send_errors"):
                m = re.search(r"\b%s: (\d+)" % key, text)
                numbers[key] = int(m.group(1)) if m else 0
            out.append(numbers)
        return out

    calls = 0
    pps = 0.0
    received = forwarded = lost = errors = 0
    per_call = []
    for call, report in reports.items():
        parsed = legs(report)
        if not parsed:
            continue
        calls += 1
        fwd = sum(leg["forwarded"] for leg in parsed)
        received += sum(leg["packets"] for leg in parsed)
        forwarded += fwd
        lost += sum(leg["lost"] for leg in parsed)
        errors += sum(leg["send_errors"] for leg in parsed)
        per_call.append(fwd)
        if talk.get(call):
            pps += fwd / (talk[call] / 1000)
    print(
        "%d %.1f %d %d %d %d %d %d" % (
            calls, pps, received, forwarded, lost, errors,
            min(per_call, default=0), max(per_call, default=0),
        )
    )


def main():
    commands = {
        "wavs": (wavs, 1),
        "free-ports": (lambda ip, n: free_ports(ip, int(n)), 2),
        "latency": (latency, 2),
        "log": (log_counts, 1),
        "media": (media, 1),
    }
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    fn, nargs = commands[sys.argv[1]]
    if len(sys.argv) != 2 + nargs:
        sys.exit(__doc__)
    fn(*sys.argv[2:])


if __name__ == "__main__":
    main()
