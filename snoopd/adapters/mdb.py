"""NetlinkMdb: snoopd's port-group entries in the kernel bridge's MDB.

Every entry snoopd writes is permanent and tagged with routing protocol
``protocol`` (200 by default; ``bridge -d mdb show`` prints ``proto 200``), so it
is told apart from the kernel's own (``proto kernel``) and static ones, and
``flush_own`` removes only snoopd's.

How an InstallGroup is expressed (kernel >= 6.3, checked on 6.18): one (*,G)
port entry with MDBE_ATTR_GROUP_MODE and MDBE_ATTR_SRC_LIST, written with
NLM_F_CREATE|NLM_F_REPLACE so the same message installs or replaces:

- EXCLUDE, sources Y: group mode MCAST_EXCLUDE, source list Y. The kernel adds
  one (S,G) entry per blocked source with the ``blocked`` flag.
- INCLUDE, sources A: group mode MCAST_INCLUDE, source list A (never empty: the
  kernel refuses it). The kernel adds one forwarding (S,G) entry per source.

The kernel creates (and on replace or delete removes) those (S,G) entries itself,
always after their (*,G). Deleting the (*,G) deletes them. Source filtering only
takes effect with ``mcast_igmp_version 3``. The kernel's own ``added_by_star_ex``
(S,G) entries (proto kernel, temp) are left alone.

Requests go out batched on a raw NETLINK_ROUTE socket (``rtnl.RtnlSocket``);
messages are declared pyroute2-style in ``mdb_msg`` and packed and unpacked by
the struct codec in ``mdb_codec``.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from snoopd.adapters import mdb_msg as m
from snoopd.adapters.bridge import BridgeGone, NotABridge
from snoopd.adapters.mdb_codec import (
    GROUP_OFFSET,
    SEQ_OFFSET,
    MdbInfo,
    RouterPortInfo,
    decode_mdb_dump,
    encode_mdb_dump_request,
    encode_mdb_request,
)
from snoopd.adapters.rtnl import NLM_F_ACK, DumpInterrupted, Link, RtnlSocket
from snoopd.core.actions import FilterMode

log = logging.getLogger(__name__)

SNOOPD_RTPROT = 200
USER_HZ = os.sysconf("SC_CLK_TCK")  # netlink MDB timers are clock_t (centiseconds)
RTPROT_NAMES = {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static"}

_MODE_TO_KERNEL = {FilterMode.EXCLUDE: m.MCAST_EXCLUDE, FilterMode.INCLUDE: m.MCAST_INCLUDE}
_MODE_FROM_KERNEL = {v: k for k, v in _MODE_TO_KERNEL.items()}
_INSTALL_FLAGS = m.NLM_F_REQUEST | m.NLM_F_CREATE | m.NLM_F_REPLACE  # what MdbOp.install encodes
_SEQ = struct.Struct("=I")


class MdbOpKind(Enum):
    ADD = "add"  # NLM_F_CREATE|NLM_F_EXCL: fails with EEXIST if the port entry exists
    REPLACE = "replace"  # NLM_F_CREATE|NLM_F_REPLACE: install or replace
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class MdbOp:
    """One change to one port-group entry.

    ``source`` None is the (*,G) entry, which carries ``mode`` and ``sources``;
    with ``source`` set it is a plain (S,G) entry (mode and sources unused).
    """

    kind: MdbOpKind
    port_ifindex: int
    group: str
    mode: FilterMode = FilterMode.EXCLUDE
    sources: frozenset[str] = frozenset()
    source: str | None = None
    vid: int = 0

    def __post_init__(self) -> None:
        if (
            self.kind is not MdbOpKind.DELETE
            and self.source is None
            and self.mode is FilterMode.INCLUDE
            and not self.sources
        ):
            raise ValueError(f"INCLUDE with no sources for {self.group}: that is a delete")

    @classmethod
    def install(
        cls, port_ifindex: int, group: str, mode: FilterMode, sources: frozenset[str] = frozenset()
    ) -> MdbOp:
        """The op for an InstallGroup: install or replace the (*,G) port entry."""
        return cls(MdbOpKind.REPLACE, port_ifindex, group, mode, frozenset(sources))

    @classmethod
    def remove(cls, port_ifindex: int, group: str, source: str | None = None) -> MdbOp:
        """The op for a RemoveGroup: delete the port entry (and the kernel's (S,G)s under it)."""
        return cls(MdbOpKind.DELETE, port_ifindex, group, source=source)

    def encode(self, seq: int, bridge_ifindex: int, protocol: int) -> bytes:
        flags = m.NLM_F_REQUEST  # RtnlSocket.transact asks for the acks it needs
        if self.kind is MdbOpKind.DELETE:
            return encode_mdb_request(
                m.RTM_DELMDB, flags, seq, bridge_ifindex, self.port_ifindex, self.group,
                vid=self.vid, source=self.source,
            )  # fmt: skip
        flags |= m.NLM_F_CREATE | (m.NLM_F_EXCL if self.kind is MdbOpKind.ADD else m.NLM_F_REPLACE)
        star_g = self.source is None
        return encode_mdb_request(
            m.RTM_NEWMDB, flags, seq, bridge_ifindex, self.port_ifindex, self.group,
            vid=self.vid,
            source=self.source,
            group_mode=_MODE_TO_KERNEL[self.mode] if star_g else None,
            src_list=tuple(sorted(self.sources)) if star_g and self.sources else None,
            rtprot=protocol,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class MdbError:
    """The kernel refused ``op``: positive ``errno`` and its extack ``message``."""

    op: MdbOp
    errno: int
    message: str

    def __str__(self) -> str:
        return f"{self.op.kind.value} {self.op.group} port {self.op.port_ifindex}: {self.message}"


@dataclass(frozen=True, slots=True)
class MdbSource:
    address: str
    timer: float  # seconds left; 0 for permanent entries


@dataclass(frozen=True, slots=True)
class MdbEntry:
    """One kernel MDB entry, as ``bridge -d -s mdb show`` lists it.

    ``port_ifindex`` equal to the bridge's is a host join (the bridge itself).
    ``mode`` and ``source_list`` are None/empty unless the bridge runs IGMPv3 (MLDv2).
    ``protocol`` is None for host joins.
    """

    bridge_ifindex: int
    bridge: str
    port_ifindex: int
    port: str
    group: str
    source: str | None
    mode: FilterMode | None
    source_list: tuple[MdbSource, ...]
    protocol: int | None
    flags: frozenset[str]
    permanent: bool
    vid: int
    timer: float

    @property
    def is_star_g(self) -> bool:
        return self.source is None

    @property
    def added_by_star_ex(self) -> bool:
        return "added_by_star_ex" in self.flags


@dataclass(frozen=True, slots=True)
class MdbRouterPort:
    """A multicast-router port of the bridge (MDBA_ROUTER_PORT)."""

    port_ifindex: int
    port: str
    router_type: int  # MDB_RTR_TYPE_*: 1 learnt from queries, 2 permanent, 3 temporary
    timer: float


class NetlinkMdb:
    """The MDB of bridge ``bridge_ifname`` (in network namespace ``netns``, if given)."""

    def __init__(
        self,
        bridge_ifname: str,
        protocol: int = SNOOPD_RTPROT,
        *,
        netns: str | None = None,
        chunk: int = 512,
    ) -> None:
        if not 4 <= protocol <= 255:  # the kernel takes RTPROT_STATIC (4) and above
            raise ValueError(f"routing protocol {protocol} out of 4..255")
        self.bridge_ifname = bridge_ifname
        self.protocol = protocol
        self.chunk = chunk
        self._sock = RtnlSocket(netns)
        self._install_templates: dict[int, bytes] = {}  # port ifindex -> install_any_source's request
        try:
            self.bridge_ifindex = self._lookup_bridge()
        except BaseException:
            self._sock.close()
            raise

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> NetlinkMdb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _lookup_bridge(self) -> int:
        link = self._sock.link(name=self.bridge_ifname)
        if link is None:
            raise BridgeGone(f"{self.bridge_ifname}: no such device")
        if link.kind != "bridge":
            raise NotABridge(f"{self.bridge_ifname} is a {link.kind or 'plain'} device, not a bridge")
        return link.ifindex

    def _check_bridge(self) -> Link:
        """The bridge's link; BridgeGone if it has disappeared or its ifindex is now another link."""
        link = self._sock.link(ifindex=self.bridge_ifindex)
        if link is None or link.kind != "bridge":
            raise BridgeGone(f"{self.bridge_ifname} (ifindex {self.bridge_ifindex}) is gone")
        return link

    def snooping_enabled(self) -> bool:
        """False if the bridge's snooping is off (the kernel turns it off at mcast_hash_max).
        One RTM_GETLINK read without pyroute2: cheap enough to ask every second. A renamed
        bridge is BridgeGone here, as BridgeControl sees it."""
        link = self._check_bridge()
        if link.name != self.bridge_ifname:
            raise BridgeGone(f"{self.bridge_ifname} (ifindex {self.bridge_ifindex}) is now called {link.name}")
        return bool(link.mcast_snooping)

    def apply(self, ops: Sequence[MdbOp]) -> list[MdbError]:
        """Carry out ``ops`` in order, batched; return the ones the kernel refused.

        Raises BridgeGone if the bridge has disappeared.
        """
        messages = []
        for op in ops:
            seq = self._sock.next_seq()
            messages.append((seq, op.encode(seq, self.bridge_ifindex, self.protocol)))
        acks = self._sock.transact(messages, chunk=self.chunk)
        errors = [
            MdbError(op, err, message or os.strerror(err))
            for op, (err, message) in zip(ops, acks, strict=True)
            if err
        ]
        if any(e.errno == errno.ENODEV for e in errors):
            self._check_bridge()
        return errors

    def install_any_source(self, port_ifindex: int, groups: Sequence[str]) -> list[MdbError]:
        """Install or replace (*,G) EXCLUDE {} entries of one port: ``apply`` of
        ``MdbOp.install(port_ifindex, g, EXCLUDE)`` for each group; errors name such ops.

        The join's hot path: one IPv4 group (a join) is written from a per-port template
        with its sequence number and group filled in, no op object on the way."""
        if len(groups) != 1 or ":" in groups[0]:
            return self.apply([MdbOp.install(port_ifindex, group, FilterMode.EXCLUDE) for group in groups])
        group = groups[0]
        template = self._install_templates.get(port_ifindex) or self.prepare_port(port_ifindex)
        message = bytearray(template)
        seq = self._sock.next_seq()
        _SEQ.pack_into(message, SEQ_OFFSET, seq)
        message[GROUP_OFFSET : GROUP_OFFSET + 4] = socket.inet_aton(group)
        err, text = self._sock.transact_one(message, seq)
        if not err:
            return []
        if err == errno.ENODEV:
            self._check_bridge()
        return [MdbError(MdbOp.install(port_ifindex, group, FilterMode.EXCLUDE), err, text or os.strerror(err))]

    def prepare_port(self, port_ifindex: int) -> bytes:
        """Encode ``install_any_source``'s request for a port before its first join needs
        it (the first encoding is a cold code path: ~0.4 ms of a first join here)."""
        template = self._install_templates[port_ifindex] = encode_mdb_request(
            m.RTM_NEWMDB, _INSTALL_FLAGS | NLM_F_ACK, 0, self.bridge_ifindex, port_ifindex, "0.0.0.0",
            group_mode=m.MCAST_EXCLUDE, rtprot=self.protocol)
        return template

    def forget_port(self, port_ifindex: int) -> None:
        self._install_templates.pop(port_ifindex, None)

    def _dump(self) -> tuple[list[MdbInfo], list[RouterPortInfo]]:
        for _ in range(5):
            seq = self._sock.next_seq()
            try:
                replies = self._sock.dump(encode_mdb_dump_request(seq), seq)
                break
            except DumpInterrupted:
                continue
        else:
            raise DumpInterrupted()
        infos: list[MdbInfo] = []
        routers: list[RouterPortInfo] = []
        seen = False
        for raw in replies:
            bridge_ifindex, more_infos, more_routers = decode_mdb_dump(raw)
            if bridge_ifindex == self.bridge_ifindex:
                seen = True
                infos.extend(more_infos)
                routers.extend(more_routers)
        if not seen:
            self._check_bridge()
        return infos, routers

    def dump(self) -> list[MdbEntry]:
        """Every MDB entry of the bridge: snoopd's, the kernel's, static ones, host joins."""
        infos, _ = self._dump()
        names = {link.ifindex: link.name for link in self._sock.links()}
        return [self._entry(info, names) for info in infos]

    def _entry(self, info: MdbInfo, names: dict[int, str]) -> MdbEntry:
        return MdbEntry(
            bridge_ifindex=self.bridge_ifindex,
            bridge=self.bridge_ifname,
            port_ifindex=info.ifindex,
            port=names.get(info.ifindex, ""),
            group=info.group,
            source=info.source,
            mode=None if info.group_mode is None else _MODE_FROM_KERNEL.get(info.group_mode),
            source_list=tuple(MdbSource(a, t / USER_HZ) for a, t in info.src_list),
            protocol=info.rtprot,
            flags=frozenset(name for bit, name in m.MDB_FLAG_NAMES if info.flags & bit),
            permanent=info.state == m.MDB_PERMANENT,
            vid=info.vid,
            timer=info.timer / USER_HZ,
        )

    def dump_router_ports(self) -> list[MdbRouterPort]:
        """The bridge's multicast-router ports as the MDB dump reports them."""
        _, routers = self._dump()
        names = {link.ifindex: link.name for link in self._sock.links()}
        return [
            MdbRouterPort(r.ifindex, names.get(r.ifindex, ""), r.router_type, r.timer / USER_HZ)
            for r in routers
        ]

    def own_entries(self) -> list[MdbEntry]:
        """snoopd's entries: port entries with our protocol (includes the kernel-made (S,G)s)."""
        return [
            e for e in self.dump()
            if e.protocol == self.protocol and e.port_ifindex != self.bridge_ifindex
        ]  # fmt: skip

    def flush_own(self) -> list[MdbError]:
        """Remove every entry with our protocol; leave the kernel's and static ones alone.

        (*,G) entries are deleted, which takes the kernel's (S,G) entries for their
        source lists with them; (S,G) entries with no (*,G) of ours on the same
        port are deleted on their own.
        """
        own = self.own_entries()
        star_g = {(e.port_ifindex, e.group, e.vid) for e in own if e.is_star_g}
        ops = [
            MdbOp(MdbOpKind.DELETE, e.port_ifindex, e.group, source=e.source, vid=e.vid)
            for e in own
            if e.source is not None and (e.port_ifindex, e.group, e.vid) not in star_g
        ]
        ops += [MdbOp(MdbOpKind.DELETE, p, g, vid=v) for p, g, v in sorted(star_g)]
        errors = self.apply(ops)
        log.info("mdb.flushed bridge=%s entries=%d errors=%d", self.bridge_ifname, len(ops), len(errors))
        return errors


def _seconds(seconds: float) -> float:
    return round(seconds, 2)


def mdb_entries_to_json(entries: list[MdbEntry]) -> list[dict[str, Any]]:
    """Entries as ``bridge -j -s -d mdb show`` lists them (same keys), timers as float seconds.

    Keys: index, dev, port, grp, src, state, filter_mode, source_list [{address,
    timer}], protocol, flags, vid, timer; src/filter_mode/source_list/protocol/vid
    only where the kernel reports them, as ``bridge`` does.
    """
    out: list[dict[str, Any]] = []
    for e in entries:
        item: dict[str, Any] = {"index": e.bridge_ifindex, "dev": e.bridge, "port": e.port, "grp": e.group}
        if e.source is not None:
            item["src"] = e.source
        item["state"] = "permanent" if e.permanent else "temp"
        if e.mode is not None:
            item["filter_mode"] = e.mode.value
        if e.source_list:
            item["source_list"] = [
                {"address": s.address, "timer": _seconds(s.timer)} for s in e.source_list
            ]
        if e.protocol is not None:
            item["protocol"] = RTPROT_NAMES.get(e.protocol, str(e.protocol))
        item["flags"] = [name for _, name in m.MDB_FLAG_NAMES if name in e.flags]
        if e.vid:
            item["vid"] = e.vid
        item["timer"] = _seconds(e.timer)
        out.append(item)
    return out
