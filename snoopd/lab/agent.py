"""The demo lab's host agent: runs inside one host namespace and acts through its real kernel.

Standard library only; started as a script (``ip netns exec NS python3 -u agent.py MODE``),
never imported by snoopd itself. Modes:

``serve``
    JSON lines on stdin/stdout, for the demo tour. First line ``{"ready": true, "pid": N}``;
    then one reply per request::

        -> {"cmd": "join", "group": "239.1.1.1", "source": null}
        <- {"ok": true, "result": null}

    Commands: ``join(group, source=None)`` (IP_ADD_MEMBERSHIP, or IP_ADD_SOURCE_MEMBERSHIP
    with a source: the kernel sends the IGMP reports), ``leave(group)`` (closes that
    group's socket: the kernel sends the leave / TO_IN({}) report), ``counts()``
    (``{"wire": {G: n}, "last": {G: t}, "joined": [G...]}``: UDP frames to each group
    that arrived at the interface, joined or not, and CLOCK_MONOTONIC of the last one),
    ``ping()``. Exits at end of input or on SIGTERM.
``send GROUP...``
    Stream UDP to each group (``--rate`` packets/s per group) until SIGTERM / Ctrl-C.
``watch [--join GROUP[@SOURCE]]...``
    Join the groups (if any), then print once a second the packets/s of every group
    arriving at the interface, until Ctrl-C (which leaves them).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
from typing import Any

IP_MULTICAST_IF = 32
IP_MULTICAST_TTL = 33
IP_MULTICAST_LOOP = 34
IP_ADD_MEMBERSHIP = 35
IP_ADD_SOURCE_MEMBERSHIP = 39
IP_MULTICAST_ALL = 49
SIOCGIFADDR = 0x8915
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
PORT = 5000


def iface_address(iface: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        res = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("16s16x", iface.encode()[:15]))
    return socket.inet_ntoa(res[20:24])


class Sniffer:
    """Counts UDP frames to multicast groups arriving at one interface (AF_PACKET, before
    the host's IP stack: it counts them whether or not the host joined)."""

    def __init__(self, iface: str) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((iface, ETH_P_ALL))
        self.sock.setblocking(False)
        self.wire: dict[str, int] = {}
        self.last: dict[str, float] = {}

    def read(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(2048)
            except BlockingIOError:
                return
            if addr[2] == PACKET_OUTGOING or len(data) < 34 or data[12:14] != b"\x08\x00":
                continue
            if data[23] != 17 or not 224 <= data[30] <= 239:  # UDP to a multicast address
                continue
            group = socket.inet_ntoa(data[30:34])
            self.wire[group] = self.wire.get(group, 0) + 1
            self.last[group] = time.monotonic()


class Member:
    """One UDP socket bound to group:PORT that holds this host's membership of the group."""

    def __init__(self, group: str, iface: str, source: str | None) -> None:
        self.group = group
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            self.sock.bind((group, PORT))
            self.sock.setblocking(False)
            if source is None:  # struct ip_mreqn: group, local address, ifindex
                mreq = socket.inet_aton(group) + socket.inet_aton("0.0.0.0") + struct.pack(
                    "=i", socket.if_nametoindex(iface))
                self.sock.setsockopt(socket.IPPROTO_IP, IP_ADD_MEMBERSHIP, mreq)
            else:  # struct ip_mreq_source: group, interface address, source
                mreq = socket.inet_aton(group) + socket.inet_aton(iface_address(iface)) + socket.inet_aton(source)
                self.sock.setsockopt(socket.IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, mreq)
        except OSError:
            self.sock.close()
            raise

    def drain(self) -> None:
        while True:
            try:
                self.sock.recv(2048)
            except BlockingIOError:
                return

    def close(self) -> None:
        self.sock.close()


class Host:
    def __init__(self, iface: str) -> None:
        self.iface = iface
        self.selector = selectors.DefaultSelector()
        self.sniffer = Sniffer(iface)
        self.selector.register(self.sniffer.sock, selectors.EVENT_READ, "sniffer")
        self.members: dict[str, Member] = {}

    def join(self, group: str, source: str | None = None) -> None:
        if group in self.members:
            raise ValueError(f"already joined {group}")
        member = Member(group, self.iface, source)
        self.members[group] = member
        self.selector.register(member.sock, selectors.EVENT_READ, member)

    def leave(self, group: str) -> None:
        member = self.members.pop(group)
        self.selector.unregister(member.sock)
        member.close()

    def poll(self, timeout: float) -> list[Any]:
        """Wait up to ``timeout`` for input; read the sockets; return the other ready keys."""
        other = []
        for key, _ in self.selector.select(timeout):
            if key.data == "sniffer":
                self.sniffer.read()
            elif isinstance(key.data, Member):
                key.data.drain()
            else:
                other.append(key.data)
        return other

    def counts(self) -> dict[str, Any]:
        self.sniffer.read()
        return {"wire": self.sniffer.wire, "last": self.sniffer.last, "joined": sorted(self.members)}

    def close(self) -> None:
        for group in list(self.members):
            with contextlib.suppress(OSError):
                self.leave(group)


def serve(iface: str) -> None:
    host = Host(iface)
    host.selector.register(0, selectors.EVENT_READ, "stdin")
    out = sys.stdout
    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    out.flush()
    buf = b""
    running = True
    while running:
        if "stdin" not in host.poll(1.0):
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                req = json.loads(line)
                cmd = req.get("cmd")
                result: Any = None
                if cmd == "join":
                    host.join(req["group"], req.get("source"))
                elif cmd == "leave":
                    host.leave(req["group"])
                elif cmd == "counts":
                    result = host.counts()
                elif cmd == "ping":
                    result = {"pid": os.getpid()}
                elif cmd == "exit":
                    running = False
                else:
                    raise ValueError(f"unknown command {cmd!r}")
                reply = {"ok": True, "result": result}
            except Exception as exc:
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    host.close()


def send(iface: str, groups: list[str], rate: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((iface_address(iface), 0))
    sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_IF,
                    socket.inet_aton("0.0.0.0") * 2 + struct.pack("=i", socket.if_nametoindex(iface)))
    sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_TTL, 1)
    sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_LOOP, 0)
    start = time.monotonic()
    n = 0
    payload = b"snoopd-demo".ljust(64, b".")
    while True:
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1.0:  # fell far behind (a stopped process): do not burst to catch up
            start, n = time.monotonic(), 0
        for group in groups:
            with contextlib.suppress(OSError):
                sock.sendto(payload, (group, PORT))
        n += 1


def watch(iface: str, joins: list[str], label: str) -> None:
    host = Host(iface)
    for spec in joins:
        group, _, source = spec.partition("@")
        host.join(group, source or None)
        how = f"source {source} only (IGMPv3 INCLUDE)" if source else "any source"
        print(f"{label}: joined {group}, {how}", flush=True)
    print(f"{label}: packets/s arriving at {iface}, by group, once a second (Ctrl-C to stop"
          f"{' and leave' if joins else ''})", flush=True)
    before: dict[str, int] = {}
    next_tick = time.monotonic() + 1.0
    while True:
        while (remaining := next_tick - time.monotonic()) > 0:
            host.poll(remaining)
        next_tick += 1.0
        counts = host.counts()["wire"]
        groups = sorted(set(counts) | set(host.members), key=lambda g: socket.inet_aton(g))
        cells = []
        for g in groups:
            mark = "*" if g in host.members else " "
            cells.append(f"{g}{mark} {counts.get(g, 0) - before.get(g, 0):>5}")
        before = dict(counts)
        print(time.strftime("%H:%M:%S ") + ("   ".join(cells) if cells else "(nothing arrives)"), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--iface", default="eth0")
    parser.add_argument("--tag", default="", help="a label (the lab host's namespace), for ps")
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("serve")
    p_send = sub.add_parser("send")
    p_send.add_argument("groups", nargs="+")
    p_send.add_argument("--rate", type=float, default=100.0, help="packets/s to each group")
    p_watch = sub.add_parser("watch")
    p_watch.add_argument("--join", action="append", default=[], metavar="GROUP[@SOURCE]")
    args = parser.parse_args()

    def terminate(*_: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)
    try:
        if args.mode == "serve":
            serve(args.iface)
        elif args.mode == "send":
            send(args.iface, args.groups, args.rate)
        else:
            watch(args.iface, args.join, args.tag or "host")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
