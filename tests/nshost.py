"""A test agent that lives inside one network namespace and acts through its real kernel.

Started by tests/lab.py as ``ip netns exec NS python3 -u tests/nshost.py``; standard library
only. It reads one JSON object per line on stdin and answers one JSON line on stdout:

    -> {"id": 7, "cmd": "join", "group": "239.1.1.1", "source": null, "iface": "eth0"}
    <- {"id": 7, "ok": true, "result": null}
    <- {"id": 8, "ok": false, "error": "OSError: [Errno 99] ..."}

Its first line is ``{"ready": true, "pid": PID}``. It exits on end of input.

Commands (``iface`` defaults to "eth0", ``port`` to 5000):

- ``join(group, source=None, iface, port)``: IP_ADD_MEMBERSHIP, or IP_ADD_SOURCE_MEMBERSHIP
  (struct ip_mreq_source) when ``source`` is given, on a UDP socket bound to group:port.
  One socket per (group, port), so the kernel keeps one filter per group and counts are
  per group.
- ``leave(group, iface, port)``: closes that socket; the kernel drops every membership of it
  at once (IGMPv2 leave, IGMPv3 TO_IN({}) or BLOCK report).
- ``drop_source(group, source, ...)``: IP_DROP_SOURCE_MEMBERSHIP for one source.
- ``block(group, source, ...)`` / ``unblock(...)``: IP_BLOCK_SOURCE / IP_UNBLOCK_SOURCE on an
  any-source membership (IGMPv3 EXCLUDE mode with sources).
- ``counts()``: ``{"received": {G: {S: n}}, "seen": {IFACE: {G: {S: n}}}}`` -- datagrams
  delivered to the member sockets, and UDP frames to a multicast group seen on each sniffed
  interface (incoming only), since start or the last ``reset``.
- ``reset(group=None)``: zero the counts (of one group, or all).
- ``sniff(iface)``: open an AF_PACKET/ETH_P_ALL socket on ``iface`` ("*": unbound, every
  interface of the namespace, also those created later): counts every incoming UDP frame to
  a multicast group (even if nobody here joined it) and records every IGMP (protocol 2) and
  PIM (103) frame, both directions, for ``captured``.
- ``captured(iface, since=0)``: frames recorded by the sniffer ``iface`` from index
  ``since``: each ``{"i", "t" (CLOCK_MONOTONIC at read), "ts" (kernel receive time,
  CLOCK_REALTIME), "iface", "pkttype" (0 host, 2 multicast, 4 outgoing...), "frame" (hex,
  from the Ethernet header)}``.
- ``send(group, port, rate, count=None, duration=None, size=64, ttl=1, source=None, iface)``:
  start a paced UDP stream (IP_MULTICAST_IF set to ``iface``, loopback off); returns its id.
- ``stream(stream)``: ``{"sent", "errors", "running"}`` of stream number ``stream``;
  ``stop(stream)`` ends it early.
- ``ping()``: liveness.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from collections import defaultdict
from typing import Any

# Linux values (include/uapi/linux/in.h); not all are exported by every Python's socket module.
IP_MULTICAST_IF = 32
IP_MULTICAST_TTL = 33
IP_MULTICAST_LOOP = 34
IP_ADD_MEMBERSHIP = 35
IP_DROP_MEMBERSHIP = 36
IP_UNBLOCK_SOURCE = 37
IP_BLOCK_SOURCE = 38
IP_ADD_SOURCE_MEMBERSHIP = 39
IP_DROP_SOURCE_MEMBERSHIP = 40
IP_MULTICAST_ALL = 49
SIOCGIFADDR = 0x8915
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
MAX_CAPTURED = 20000
CONTROL_PROTOCOLS = (2, 103)  # IGMP, PIM


def iface_address(iface: str) -> str:
    """The interface's primary IPv4 address (SIOCGIFADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16s16x", iface.encode())
        res = fcntl.ioctl(s.fileno(), SIOCGIFADDR, ifreq)
    return socket.inet_ntoa(res[20:24])


def ip_mreqn(group: str, iface: str) -> bytes:
    """struct ip_mreqn { struct in_addr imr_multiaddr, imr_address; int imr_ifindex; }"""
    return socket.inet_aton(group) + socket.inet_aton("0.0.0.0") + struct.pack("=i", socket.if_nametoindex(iface))


def ip_mreq_source(group: str, iface: str, source: str) -> bytes:
    """struct ip_mreq_source { __be32 imr_multiaddr, imr_interface, imr_sourceaddr; }"""
    return socket.inet_aton(group) + socket.inet_aton(iface_address(iface)) + socket.inet_aton(source)


class Member:
    """One UDP socket bound to group:port holding this host's memberships of the group."""

    def __init__(self, group: str, port: int, iface: str) -> None:
        self.group, self.port, self.iface = group, port, iface
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Only datagrams of groups this socket itself joined, with its own source filter.
        self.sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        self.sock.bind((group, port))
        self.sock.setblocking(False)
        self.any_source = False
        self.sources: set[str] = set()

    def join(self, source: str | None) -> None:
        if source is None:
            self.sock.setsockopt(socket.IPPROTO_IP, IP_ADD_MEMBERSHIP, ip_mreqn(self.group, self.iface))
            self.any_source = True
        else:
            opt = ip_mreq_source(self.group, self.iface, source)
            self.sock.setsockopt(socket.IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, opt)
            self.sources.add(source)

    def source_option(self, option: int, source: str) -> None:
        self.sock.setsockopt(socket.IPPROTO_IP, option, ip_mreq_source(self.group, self.iface, source))


class Stream(threading.Thread):
    """A paced UDP multicast stream: packet i leaves at start + i / rate."""

    def __init__(self, stream_id: int, args: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.stream_id = stream_id
        self.group: str = args["group"]
        self.port: int = int(args.get("port", 5000))
        self.rate: float = float(args.get("rate", 100.0))
        count = args.get("count")
        duration = args.get("duration")
        self.count: int | None = None if count is None else int(count)
        self.duration: float | None = None if duration is None else float(duration)
        self.size: int = max(16, int(args.get("size", 64)))
        iface: str = args.get("iface", "eth0")
        source: str = args.get("source") or iface_address(iface)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_IF, ip_mreqn("0.0.0.0", iface))
        self.sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_TTL, int(args.get("ttl", 1)))
        self.sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_LOOP, 0)
        self.sent = 0
        self.errors = 0
        self.last_error = ""
        self.stop_event = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        end = None if self.duration is None else start + self.duration
        pad = b"\0" * (self.size - 16)
        try:
            while not self.stop_event.is_set():
                if self.count is not None and self.sent + self.errors >= self.count:
                    break
                due = start + (self.sent + self.errors) / self.rate
                now = time.monotonic()
                if end is not None and due >= end:
                    break
                if due > now and self.stop_event.wait(due - now):
                    break
                payload = struct.pack("!4sIQ", b"SNPD", self.stream_id, self.sent) + pad
                try:
                    self.sock.sendto(payload, (self.group, self.port))
                    self.sent += 1
                except OSError as e:
                    self.errors += 1
                    self.last_error = str(e)
        finally:
            self.sock.close()

    def status(self) -> dict[str, Any]:
        return {"sent": self.sent, "errors": self.errors, "last_error": self.last_error,
                "running": self.is_alive()}


class Sniffer:
    """AF_PACKET socket on one interface (or on all, iface "*"): data counts and a record of
    control frames."""

    def __init__(self, iface: str) -> None:
        self.iface = iface
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if iface != "*":  # unbound: every interface of the namespace, now and later
            self.sock.bind((iface, ETH_P_ALL))
        self.sock.setblocking(False)
        # seen[iface][group][source]
        self.seen: dict[str, dict[str, dict[str, int]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(int)))
        self.captured: list[dict[str, Any]] = []
        self.dropped_records = 0

    def read(self) -> None:
        for _ in range(256):
            try:
                data, anc, _flags, addr = self.sock.recvmsg(65535, 64)
            except BlockingIOError:
                return
            self.handle(data, anc, addr[0], addr[2])

    def handle(self, data: bytes, anc: list[tuple[int, int, bytes]], iface: str, pkttype: int) -> None:
        offset = 12
        ethertype = int.from_bytes(data[offset:offset + 2], "big") if len(data) >= 14 else 0
        if ethertype == 0x8100 and len(data) >= 18:
            offset += 4
            ethertype = int.from_bytes(data[offset:offset + 2], "big")
        ip = offset + 2
        if ethertype != 0x0800 or len(data) < ip + 20:
            return
        proto = data[ip + 9]
        src = socket.inet_ntoa(data[ip + 12:ip + 16])
        dst = socket.inet_ntoa(data[ip + 16:ip + 20])
        if proto == 17:
            if pkttype != PACKET_OUTGOING and 224 <= data[ip + 16] <= 239:
                self.seen[iface][dst][src] += 1
        elif proto in CONTROL_PROTOCOLS:
            if len(self.captured) >= MAX_CAPTURED:
                self.dropped_records += 1
                return
            ts = None
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("=qq", value[:16])
                    ts = sec + nsec / 1e9
            self.captured.append({"i": len(self.captured), "t": time.monotonic(), "ts": ts,
                                  "iface": iface, "pkttype": pkttype, "frame": data.hex()})


class Agent:
    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.members: dict[tuple[str, int], Member] = {}
        self.received: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.sniffers: dict[str, Sniffer] = {}
        self.streams: dict[int, Stream] = {}
        self.inbuf = b""
        self.running = True

    # --- commands -------------------------------------------------------------------------

    def member(self, args: dict[str, Any], create: bool) -> Member:
        key = (args["group"], int(args.get("port", 5000)))
        member = self.members.get(key)
        if member is None:
            if not create:
                raise KeyError(f"not joined: {key[0]} port {key[1]}")
            member = Member(key[0], key[1], args.get("iface", "eth0"))
            self.members[key] = member
            self.selector.register(member.sock, selectors.EVENT_READ, ("member", member))
        return member

    def cmd_join(self, args: dict[str, Any]) -> None:
        member = self.member(args, create=True)
        try:
            member.join(args.get("source"))
        except OSError:
            if not member.any_source and not member.sources:
                self.close_member(member)
            raise

    def cmd_leave(self, args: dict[str, Any]) -> None:
        self.close_member(self.member(args, create=False))

    def cmd_drop_source(self, args: dict[str, Any]) -> None:
        member = self.member(args, create=False)
        member.source_option(IP_DROP_SOURCE_MEMBERSHIP, args["source"])
        member.sources.discard(args["source"])
        if not member.sources and not member.any_source:
            self.close_member(member)

    def cmd_block(self, args: dict[str, Any]) -> None:
        self.member(args, create=False).source_option(IP_BLOCK_SOURCE, args["source"])

    def cmd_unblock(self, args: dict[str, Any]) -> None:
        self.member(args, create=False).source_option(IP_UNBLOCK_SOURCE, args["source"])

    def close_member(self, member: Member) -> None:
        self.read_member(member)
        self.selector.unregister(member.sock)
        member.sock.close()
        del self.members[(member.group, member.port)]

    def cmd_counts(self, args: dict[str, Any]) -> dict[str, Any]:
        for member in list(self.members.values()):
            self.read_member(member)
        for sniffer in self.sniffers.values():
            sniffer.read()
        seen: dict[str, Any] = {}
        for sniffer in self.sniffers.values():
            seen.update(sniffer.seen)
        return {"received": self.received, "seen": seen}

    def cmd_reset(self, args: dict[str, Any]) -> None:
        self.cmd_counts({})
        group = args.get("group")
        tables = [self.received, *(t for s in self.sniffers.values() for t in s.seen.values())]
        for table in tables:
            if group is None:
                table.clear()
            else:
                table.pop(group, None)

    def cmd_sniff(self, args: dict[str, Any]) -> None:
        iface = args.get("iface", "eth0")
        if self.sniffers and (iface == "*" or "*" in self.sniffers) and iface not in self.sniffers:
            raise ValueError("sniff on all interfaces (*) or on single ones, not both")
        if iface not in self.sniffers:
            sniffer = Sniffer(iface)
            self.sniffers[iface] = sniffer
            self.selector.register(sniffer.sock, selectors.EVENT_READ, ("sniffer", sniffer))

    def cmd_captured(self, args: dict[str, Any]) -> dict[str, Any]:
        sniffer = self.sniffers[args.get("iface", "eth0")]
        sniffer.read()
        since = int(args.get("since", 0))
        return {"frames": sniffer.captured[since:], "dropped": sniffer.dropped_records}

    def cmd_send(self, args: dict[str, Any]) -> int:
        stream_id = len(self.streams) + 1
        stream = Stream(stream_id, args)
        self.streams[stream_id] = stream
        stream.start()
        return stream_id

    def cmd_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.streams[int(args["stream"])].status()

    def cmd_stop(self, args: dict[str, Any]) -> dict[str, Any]:
        stream = self.streams[int(args["stream"])]
        stream.stop_event.set()
        stream.join(5.0)
        return stream.status()

    def cmd_ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"pid": os.getpid(), "members": [f"{g}:{p}" for g, p in self.members]}

    # --- loop -----------------------------------------------------------------------------

    def read_member(self, member: Member) -> None:
        while True:
            try:
                _data, (src, _port) = member.sock.recvfrom(65535)
            except BlockingIOError:
                return
            self.received[member.group][src] += 1

    def handle_line(self, line: bytes) -> None:
        request: dict[str, Any] = {}
        try:
            request = json.loads(line)
            handler = getattr(self, "cmd_" + str(request.get("cmd")), None)
            if handler is None:
                raise ValueError(f"unknown command {request.get('cmd')!r}")
            reply = {"id": request.get("id"), "ok": True, "result": handler(request)}
        except Exception as e:
            reply = {"id": request.get("id"), "ok": False, "error": f"{type(e).__name__}: {e}"}
        self.write(reply)

    def write(self, obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def read_stdin(self) -> None:
        chunk = os.read(0, 65536)
        if not chunk:
            self.running = False
            return
        self.inbuf += chunk
        while b"\n" in self.inbuf:
            line, self.inbuf = self.inbuf.split(b"\n", 1)
            if line.strip():
                self.handle_line(line)

    def run(self) -> None:
        self.selector.register(0, selectors.EVENT_READ, ("stdin", None))
        self.write({"ready": True, "pid": os.getpid()})
        while self.running:
            for key, _ in self.selector.select():
                kind, obj = key.data
                if kind == "stdin":
                    self.read_stdin()
                elif kind == "member":
                    # A command handled earlier in this round may have closed it (leave).
                    member: Member = obj
                    if self.members.get((member.group, member.port)) is member:
                        self.read_member(member)
                else:
                    obj.read()
        for stream in self.streams.values():
            stream.stop_event.set()
        for stream in self.streams.values():
            stream.join(2.0)
        for member in list(self.members.values()):
            with contextlib.suppress(OSError):
                member.sock.close()


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Agent().run()


if __name__ == "__main__":
    main()
