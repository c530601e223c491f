"""Software mode: snoopd replicates routable multicast itself; the kernel bridge does not.

An ingress filter on every port (cls_bpf, ``ring.SOFTWARE_INGRESS_DROP``) drops, after the
packet taps, IGMP reports and leaves (as in kernel mode) and untagged IPv4 multicast data
to 224.0.1.0-239.255.255.255, so the bridge neither forwards nor learns from them. The
rest passes to the bridge: 224.0.0.0/24 (RFC 4541 §2.1.2: always flooded), queries,
non-IP and tagged frames, unicast. One TPACKET_V3 ring for all ports still sees the
dropped data, and each frame goes to exactly the ports of the table (RFC 4541 §2.1.2):
ports with a (*,G) entry whose filter admits the source (RFC 3376 §6.2.1), router ports,
and for unregistered groups router ports and :attr:`flood_unregistered`; never the port
it came in on.

Per frame: one struct unpack, one dict lookup (:class:`ForwardingTable` compiles the table
when it changes into ``{group bytes: Egress}``, or for groups with source filters ``{group:
(default Egress, {source bytes: Egress})}``), two list appends. A wake-up's frames are
grouped by ingress port and Egress (interned port sets, hashed by identity) and go out with
one ``sendmmsg`` per egress port, the iovecs pointing into the ring.

No bridge or port option changes, except ``mcast_querier`` (off while snoopd is the
querier, with ``take_over_querier``); ``stop()`` removes the filters and puts it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from snoopd.adapters.bridge import BridgeControl
from snoopd.adapters.ring import (
    BLOCK_HEADER,
    TP_STATUS_LOSING,
    VNET_HDR_BYTES,
    MmsgSender,
    RxRing,
    open_send_socket,
    software_ingress_filter,
)
from snoopd.adapters.threaded import InThread
from snoopd.core.actions import (
    Action,
    FilterMode,
    ForwardControl,
    InstallGroup,
    Notice,
    RemoveGroup,
    SendQuery,
    SetRouterPort,
)
from snoopd.outbound import Outbound, log_notices

log = logging.getLogger(__name__)

# The ring: blocks are handed over full or 1 ms after they open, so at low rates a block
# holds few frames and the ring's reach in time is about block_count milliseconds: many
# small blocks (256 x 32 KiB, 8 MiB) ride out a quarter second without the CPU. Frames
# longer than a block can hold (GSO) arrive truncated and are dropped.
RING_BLOCK_SIZE = 1 << 15
RING_BLOCK_COUNT = 256
BLOCKS_PER_WAKEUP = 8  # then back to the event loop (the control socket, the core's timer)


class Egress:
    """A set of egress ports, interned by ForwardingTable (identity hash: a cheap dict key).
    ``targets`` caches, per ingress port, the (socket fd, counter name) pairs to send to."""

    __slots__ = ("ports", "targets")

    def __init__(self, ports: frozenset[str]) -> None:
        self.ports = ports
        self.targets: dict[str, tuple[tuple[int, str], ...]] = {}


class ForwardingTable:
    """The core's table (InstallGroup / RemoveGroup / SetRouterPort) and the unregistered-
    flood ports, compiled for the per-frame lookup. Pure: no sockets."""

    def __init__(self) -> None:
        self.members: dict[str, dict[str, tuple[FilterMode, frozenset[str]]]] = {}
        self.routers: set[str] = set()
        self.flood_unregistered: set[str] = set()
        self.interned: dict[frozenset[str], Egress] = {}
        self.simple: dict[bytes, Egress] = {}  # groups without source filters
        self.filtered: dict[bytes, tuple[Egress, dict[bytes, Egress]]] = {}
        self.unregistered = self._intern(frozenset())
        self.nowhere = Egress(frozenset())  # for frames that must not go out (not interned)

    def install(self, port: str, group: str, mode: FilterMode, sources: frozenset[str]) -> None:
        self.members.setdefault(group, {})[port] = (mode, sources)
        self.compile(group)

    def remove(self, port: str, group: str) -> None:
        entries = self.members.get(group)
        if entries is not None and entries.pop(port, None) is not None:
            if not entries:
                del self.members[group]
            self.compile(group)

    def lookup(self, group: str, source: str) -> frozenset[str]:
        """The egress ports of a frame (before the ingress port is taken out)."""
        key = socket.inet_aton(group)
        egress = self.simple.get(key)
        if egress is None:
            entry = self.filtered.get(key)
            egress = self.unregistered if entry is None else entry[1].get(socket.inet_aton(source), entry[0])
        return egress.ports

    def _intern(self, ports: frozenset[str]) -> Egress:
        egress = self.interned.get(ports)
        if egress is None:
            egress = self.interned[ports] = Egress(ports)
        return egress

    def rebuild(self) -> None:
        """Recompile everything (router or flood ports changed, or the ports did)."""
        self.interned = {}
        self.simple = {}
        self.filtered = {}
        self.unregistered = self._intern(frozenset(self.routers | self.flood_unregistered))
        for group in self.members:
            self.compile(group)

    def compile(self, group: str) -> None:
        key = socket.inet_aton(group)
        self.simple.pop(key, None)
        self.filtered.pop(key, None)
        entries = self.members.get(group)
        if not entries:
            return
        routers = frozenset(self.routers)
        # RFC 3376 §6.2.1: a source no entry lists is admitted by EXCLUDE entries only.
        default = self._intern(routers | {p for p, (mode, _) in entries.items() if mode is FilterMode.EXCLUDE})
        listed: set[str] = set().union(*(sources for _, sources in entries.values()))
        if not listed:
            self.simple[key] = default
            return
        by_source = {}
        for source in listed:
            admitted = {p for p, (mode, sources) in entries.items()
                        if (source in sources) == (mode is FilterMode.INCLUDE)}
            by_source[socket.inet_aton(source)] = self._intern(routers | admitted)
        self.filtered[key] = (default, by_source)


@dataclass(slots=True)
class _Port:
    name: str
    ifindex: int
    tx: socket.socket | None = None


class SoftwarePlane:
    """Replicate routable multicast in snoopd, by the core's table (a DataPlane)."""

    health_interval = 5.0  # the ring's drop counter, ingress filters still in place

    def __init__(self, bridge: str, *, max_groups: int, counters: Counter[str], take_over_querier: bool = False,
                 block_size: int = RING_BLOCK_SIZE, block_count: int = RING_BLOCK_COUNT, retire_timeout_ms: int = 1,
                 blocks_per_wakeup: int = BLOCKS_PER_WAKEUP) -> None:
        self.bridge = bridge
        self.counters = counters
        self.max_groups = max_groups  # the core enforces it; nothing here grows with it
        self._take_over_querier = take_over_querier
        self._ring_shape = (block_size, block_count, retire_timeout_ms)
        self._blocks_per_wakeup = blocks_per_wakeup
        # pyroute2's IPRoute must live off the daemon's event-loop thread (see threaded.py).
        self.control: Any = InThread(BridgeControl, bridge)  # raises BridgeGone / NotABridge
        self.ingress: Any = InThread(software_ingress_filter)
        self.mmsg = MmsgSender(min(blocks_per_wakeup * block_size // 128, 4096))  # 128: the smallest slot
        self.ifindex = self.control.ifindex
        self.out = Outbound(bridge, self.ifindex, counters)
        self.ports: dict[str, int] = {}  # name -> ifindex
        self._ports: dict[str, _Port] = {}
        self._names: dict[int, str] = {}  # ifindex -> name
        self.ring: RxRing | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._saved_bridge: dict[str, float] = {}
        self.table = ForwardingTable()

    # ----------------------------------------------------------- start / stop

    def start(self) -> None:
        """Open the ring (on the running event loop), clean up after a crash, take the querier."""
        cleaned = self.ingress.remove_stale()
        if cleaned:
            log.info("ingress.stale_removed bridge=%s ports=%d", self.bridge, len(cleaned))
        block_size, block_count, retire_timeout_ms = self._ring_shape
        self.ring = RxRing(block_size=block_size, block_count=block_count, retire_timeout_ms=retire_timeout_ms)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.ring.fileno(), self._drain)
        if self._take_over_querier:
            self._saved_bridge = self.control.ensure({"mcast_querier": 0})  # snoopd is the querier

    def stop(self, bridge_gone: bool = False) -> None:
        """Put the bridge back as it was: replication stops first, then the filters go (so
        for a moment nothing forwards routable multicast, rather than both of us). Each step
        runs even if an earlier one failed. With the bridge gone only sockets are closed."""
        if self.ring is not None:
            self._count_overrun(self.ring)
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self.ring.fileno())
            self.ring.close()
            self.ring = None
        for name in list(self._ports):
            try:
                self._close_port(name, remove_filter=not bridge_gone)
            except Exception as exc:  # keep going: leave as little behind as possible
                log.error("stop.failed step=%r error=%s", f"port {name}", exc)
        if not bridge_gone:
            try:
                self.control.restore(self._saved_bridge)
            except Exception as exc:
                log.error("stop.failed step='bridge options' error=%s", exc)
        for closer in (self.ingress.close, self.out.close, self.control.close):
            with contextlib.suppress(Exception):
                closer()

    def health_check(self) -> None:
        """Periodic: bring the ring's drop counter up to date, and put back an ingress filter
        that someone removed (the bridge would forward routable multicast too: twice)."""
        if self.ring is not None:
            self._count_overrun(self.ring)
        for name, ifindex in list(self.ports.items()):
            if not self.ingress.installed(ifindex):
                self.counters["ingress.reinstalled"] += 1
                log.warning("ingress.missing port=%s: the filter was removed; installing it again", name)
                self.ingress.install(ifindex)

    # ------------------------------------------------------------------ ports

    def add_port(self, name: str, ifindex: int) -> None:
        """A port joined the bridge: its send socket, the ring takes its frames, then the
        ingress filter keeps them from the bridge (in this order: none is dropped unseen)."""
        if name in self._ports:
            self._close_port(name, remove_filter=False)
        self.ports[name] = ifindex
        port = self._ports[name] = _Port(name, ifindex)
        self._names[ifindex] = name
        try:
            port.tx = open_send_socket(ifindex)
            self._ring_ports()
            self.ingress.install(ifindex)
        except OSError as exc:
            self.counters["port.setup_failed"] += 1
            log.error("port.setup_failed port=%s error=%s", name, exc)
        self._ports_changed()

    def remove_port(self, name: str, still_exists: bool) -> None:
        if name not in self._ports:
            return
        self._close_port(name, remove_filter=still_exists)
        self._ports_changed()

    def _close_port(self, name: str, remove_filter: bool) -> None:
        port = self._ports.pop(name)
        self.ports.pop(name, None)
        if self._names.get(port.ifindex) == name:
            del self._names[port.ifindex]
        try:
            if remove_filter:
                self.ingress.remove(port.ifindex)
        finally:
            self._ring_ports()
            if port.tx is not None:
                port.tx.close()

    def _ring_ports(self) -> None:
        if self.ring is not None:
            self.ring.set_ports(port.ifindex for port in self._ports.values())

    def _ports_changed(self) -> None:
        for egress in self.table.interned.values():
            egress.targets.clear()  # they name socket fds

    # ------------------------------------------------------------------ table

    @property
    def flood_unregistered(self) -> set[str]:
        """Ports that also get unregistered groups (router ports always do)."""
        return set(self.table.flood_unregistered)

    @flood_unregistered.setter
    def flood_unregistered(self, ports: Iterable[str]) -> None:
        self.table.flood_unregistered = set(ports)
        self.table.rebuild()

    def apply_now(self, port: str, joins: list[str], leaves: list[str]) -> None:
        """Kernel mode carries out admitted joins and leaves early; here the table is
        rebuilt once per burst of actions (``apply``), which follows at once."""

    def apply(self, actions: Iterable[Action]) -> None:
        """Carry out actions in order; log lines last."""
        table = self.table
        notices: list[Notice] = []
        for action in actions:
            if isinstance(action, InstallGroup):
                table.install(action.port, action.group, action.mode, action.sources)
            elif isinstance(action, RemoveGroup):
                table.remove(action.port, action.group)
            elif isinstance(action, SetRouterPort):
                (table.routers.add if action.is_router else table.routers.discard)(action.port)
                table.rebuild()
            elif isinstance(action, ForwardControl):
                self.out.forward_control(action, self.ports)
            elif isinstance(action, SendQuery):
                self.out.send_to_bridge(self.out.query_frame(action))
            elif isinstance(action, Notice):
                notices.append(action)
        log_notices(notices)

    # ------------------------------------------------------------- forwarding

    def _count_overrun(self, ring: RxRing) -> None:
        drops = ring.read_statistics()
        if drops:
            self.counters["sw.drop.ring_overrun"] += drops

    def _drain(self) -> None:
        """Reader callback of the ring: the boundary that keeps a bug from the loop."""
        if self.ring is None:
            return
        try:
            self._forward(self.ring)
        except Exception:
            self.counters["errors.forward"] += 1
            log.exception("forward.error")

    def _forward(self, ring: RxRing) -> None:
        """The hot path: per frame one unpack, one dict lookup and two list appends."""
        view = ring.view
        mac = ring.mac_offset
        unpack = _frame_header(mac).unpack_from
        simple_get = self.table.simple.get
        batches: dict[int, dict[Egress, list[int]]] = {}  # by ingress ifindex
        batch: dict[Egress, list[int]] = {}
        taken: list[int] = []
        frames = 0
        current_ifindex = -1  # the ingress port of the current run of frames
        last: Egress | None = None
        append = taken.append  # rebound to the current Egress's list before first use
        first_iov = ring.address + mac - VNET_HDR_BYTES  # + the frame's offset: its vnet header
        try:
            for _ in range(self._blocks_per_wakeup):
                block = ring.take()
                if block < 0:
                    break
                taken.append(block)
                status, count, offset = BLOCK_HEADER.unpack_from(view, block)
                if status & TP_STATUS_LOSING:
                    self._count_overrun(ring)
                offset += block
                frames += count
                for _ in range(count):
                    step, length, full, frame_mac, ifindex, source, group = unpack(view, offset)
                    egress = simple_get(group)
                    if egress is None or frame_mac != mac or length != full:
                        egress, address = self._classify(view, offset, frame_mac, mac, source, group, length != full)
                        address += first_iov
                    else:
                        address = first_iov + offset
                    if ifindex != current_ifindex:
                        current_ifindex = ifindex
                        batch = batches.setdefault(ifindex, {})
                        last = None
                    if egress is not last:
                        pairs = batch.get(egress)
                        if pairs is None:
                            pairs = batch[egress] = []
                        append = pairs.append
                        last = egress
                    append(address)
                    append(length + VNET_HDR_BYTES)
                    offset += step
            for ifindex, batch in batches.items():
                self._send_batch(self._names.get(ifindex, ""), batch)
        finally:
            for block in taken:
                ring.release(block)
            self.counters["sw.forwarded"] += frames

    def _classify(self, view: memoryview, offset: int, frame_mac: int, mac: int, source: bytes,
                  group: bytes, truncated: bool) -> tuple[Egress, int]:
        """The rest of the lookup: groups with source filters, unregistered groups, frames
        the ring truncated (to the Egress that sends nowhere), and an unexpected tp_mac
        (never seen: the layout is fixed per socket). Returns the Egress and the frame's
        offset as the fast path counts it."""
        if truncated:
            self.counters["sw.drop.truncated"] += 1
            return self.table.nowhere, offset + frame_mac - mac
        if frame_mac != mac:
            source = bytes(view[offset + frame_mac + 26:offset + frame_mac + 30])
            group = bytes(view[offset + frame_mac + 30:offset + frame_mac + 34])
        table = self.table
        egress = table.simple.get(group)
        if egress is None:
            entry = table.filtered.get(group)
            egress = table.unregistered if entry is None else entry[1].get(source, entry[0])
        return egress, offset + frame_mac - mac

    def _targets(self, egress: Egress, ingress: str) -> tuple[tuple[int, str], ...]:
        targets = tuple((port.tx.fileno(), f"sw.sent.{name}") for name in sorted(egress.ports)
                        if name != ingress and (port := self._ports.get(name)) is not None and port.tx is not None)
        egress.targets[ingress] = targets
        return targets

    def _send_batch(self, ingress: str, batch: dict[Egress, list[int]]) -> None:
        counters, mmsg, nowhere = self.counters, self.mmsg, self.table.nowhere
        for egress, pairs in batch.items():
            if egress is nowhere:
                continue
            targets = egress.targets.get(ingress)
            if targets is None:
                targets = self._targets(egress, ingress)
            if targets:
                mmsg.send_all(targets, pairs, counters)
            else:
                counters["sw.drop.no_member"] += len(pairs) >> 1


_HEADERS: dict[int, struct.Struct] = {}


def _frame_header(mac: int) -> struct.Struct:
    """tpacket3_hdr's tp_next_offset, tp_snaplen, tp_len and tp_mac, sockaddr_ll's sll_ifindex,
    then the IPv4 source and destination of a frame whose Ethernet header starts ``mac`` in."""
    found = _HEADERS.get(mac)
    if found is None:
        # tp_next_offset @0, tp_snaplen @12, tp_len @16, tp_mac @24, sll_ifindex @52, source @mac+26
        found = _HEADERS[mac] = struct.Struct(f"=I8xII4xH26xi{mac - 30}x4s4s")
    return found
