"""Watching a bridge's ports and IPv4 addresses over rtnetlink.

Two plain ``NETLINK_ROUTE`` sockets, parsed with pyroute2's message classes
(``ifinfmsg``, ``ifaddrmsg``): one bound to ``RTMGRP_LINK | RTMGRP_IPV4_IFADDR``,
non-blocking, read from the asyncio loop with ``add_reader``; one blocking socket for the
link and address dumps. (pyroute2 0.9's ``IPRoute`` runs its own event loop and its
``AsyncIPRoute`` hides ENOBUFS inside its transport; the raw sockets keep the one loop,
and an overflow visible.) Both are opened in :meth:`LinkWatcher.start`, so they belong
to the network namespace the caller is in at that moment.

Start-up binds the event socket first, then dumps: no change can fall between the two.
If the kernel drops notifications (``ENOBUFS``), the queued, now stale ones are
discarded, the state is dumped again and only the differences are reported.

Events are reported only as differences from the state known so far:

- ``on_port(name, ifindex, up, present)``: a port joined the bridge or changed
  (``present=True``), or left it or vanished (``present=False``). ``up`` is
  ``IFF_UP and IFF_RUNNING`` (administratively up and operationally up or unknown).
  A rename is reported as the old name leaving and the new name joining.
- ``on_address(addresses)``: the bridge's IPv4 addresses changed; primaries first,
  in kernel order.
- ``on_bridge_gone()``: the bridge was deleted (its ports are reported gone first);
  the watcher stops.

:meth:`LinkWatcher.start` reports the initial state through the same callbacks: every
port with ``present=True`` and the address list, once.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink.rtnl.marshal import MarshalRtnl

log = logging.getLogger(__name__)

# <linux/rtnetlink.h>, <linux/netlink.h>, <linux/if.h>, <linux/if_addr.h>
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP, NLM_F_DUMP_INTR = 0x1, 0x300, 0x10
IFF_UP, IFF_RUNNING = 0x1, 0x40
IFA_F_SECONDARY = 0x1
AF_UNSPEC = 0
SO_RCVBUFFORCE = 33

RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
DATAGRAMS_PER_WAKEUP = 64
DUMP_TIMEOUT = 5.0
DUMP_ATTEMPTS = 5
_NLMSGHDR = struct.Struct("=IHHII")

PortHandler = Callable[[str, int, bool, bool], None]
AddressHandler = Callable[[list[str]], None]
GoneHandler = Callable[[], None]


class BridgeError(LookupError):
    """The bridge to watch does not exist, or the interface is not a bridge."""


@dataclass(frozen=True, slots=True)
class PortState:
    name: str
    ifindex: int
    up: bool


@dataclass(slots=True)
class _Snapshot:
    bridge_ifindex: int | None
    ports: dict[int, PortState]
    addresses: list[str]


class LinkWatcher:
    """Follow one bridge's ports and IPv4 addresses; report changes through callbacks."""

    def __init__(
        self,
        bridge: str,
        on_port: PortHandler,
        on_address: AddressHandler,
        on_bridge_gone: GoneHandler,
        *,
        receive_buffer_bytes: int = RECEIVE_BUFFER_BYTES,
    ) -> None:
        self.bridge = bridge
        self._receive_buffer_bytes = receive_buffer_bytes
        self._on_port = on_port
        self._on_address = on_address
        self._on_bridge_gone = on_bridge_gone
        self._marshal = MarshalRtnl()
        self._events: socket.socket | None = None
        self._dumps: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sequence = 0
        self.bridge_ifindex = 0
        self._ports: dict[int, PortState] = {}
        self._addresses: list[str] = []
        self._secondary: set[str] = set()
        self.resyncs = 0  # re-dumps after ENOBUFS

    @property
    def ports(self) -> dict[int, PortState]:
        """Current ports of the bridge, by ifindex."""
        return dict(self._ports)

    @property
    def running(self) -> bool:
        """Started and not closed (a deleted bridge closes the watcher)."""
        return self._events is not None

    @property
    def addresses(self) -> list[str]:
        """Current IPv4 addresses of the bridge, primaries first."""
        return list(self._addresses)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open the sockets, report the initial state, then follow events on ``loop``.

        Raises BridgeError if the bridge does not exist or is not a bridge.
        """
        self._events = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self._dumps = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            try:
                self._events.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self._receive_buffer_bytes)
            except PermissionError:
                self._events.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer_bytes)
            self._events.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR))
            self._events.setblocking(False)
            self._dumps.settimeout(DUMP_TIMEOUT)
            snapshot = self._dump(by_name=True)
        except BaseException:
            self.close()
            raise
        assert snapshot.bridge_ifindex is not None
        self.bridge_ifindex = snapshot.bridge_ifindex
        self._loop = loop
        loop.add_reader(self._events.fileno(), self._read_events)
        self._apply_snapshot(snapshot, initial=True)

    def close(self) -> None:
        """Stop watching; idempotent."""
        if self._events is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._events.fileno())
            self._events.close()
        if self._dumps is not None:
            self._dumps.close()
        self._events = self._dumps = self._loop = None

    # -- dumps -------------------------------------------------------------------------

    def _request(self, kind: int, body: bytes) -> list[Any]:
        """One dump request; every message of the reply. Retries interrupted dumps."""
        assert self._dumps is not None
        for _ in range(DUMP_ATTEMPTS):
            self._sequence += 1
            header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, self._sequence, 0)
            self._dumps.send(header + body)
            messages: list[Any] = []
            interrupted = False
            while True:
                data = self._dumps.recv(1 << 20)
                done = False
                for message in self._marshal.parse(data):
                    header_fields = message["header"]
                    if header_fields["sequence_number"] != self._sequence:
                        continue
                    interrupted |= bool(header_fields["flags"] & NLM_F_DUMP_INTR)
                    if header_fields["type"] == NLMSG_DONE:
                        done = True
                    elif header_fields["type"] == NLMSG_ERROR:
                        raise header_fields["error"] or OSError(errno.EIO, "netlink dump failed")
                    else:
                        messages.append(message)
                if done:
                    break
            if not interrupted:
                return messages
        raise OSError(errno.EINTR, "netlink dump kept being interrupted")

    def _dump(self, by_name: bool = False) -> _Snapshot:
        """The bridge, its ports and addresses as the kernel has them now."""
        links = self._request(RTM_GETLINK, bytes(16))  # struct ifinfomsg, AF_UNSPEC
        bridge: int | None = None
        for message in links:
            if by_name and message.get_attr("IFLA_IFNAME") == self.bridge:
                if message.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") != "bridge":
                    raise BridgeError(f"{self.bridge!r} is not a bridge")
                bridge = message["index"]
            elif not by_name and message["index"] == self.bridge_ifindex:
                bridge = self.bridge_ifindex
        if bridge is None:
            if by_name:
                raise BridgeError(f"bridge {self.bridge!r} does not exist")
            return _Snapshot(None, {}, [])
        ports = {}
        for message in links:
            if message.get_attr("IFLA_MASTER") == bridge:
                port = _port_state(message)
                ports[port.ifindex] = port
        # struct ifaddrmsg {u8 family, prefixlen, flags, scope; u32 index;}
        replies = self._request(RTM_GETADDR, struct.pack("=BBBBI", socket.AF_INET, 0, 0, 0, 0))
        primaries: list[str] = []
        secondaries: list[str] = []
        for message in replies:
            if message["index"] == bridge and message["family"] == socket.AF_INET:
                address = _address(message)
                (secondaries if message["flags"] & IFA_F_SECONDARY else primaries).append(address)
        self._secondary = set(secondaries)
        return _Snapshot(bridge, ports, primaries + secondaries)

    def _apply_snapshot(self, snapshot: _Snapshot, initial: bool = False) -> None:
        """Report the differences between what we knew and ``snapshot``."""
        if snapshot.bridge_ifindex is None:
            self._bridge_gone()
            return
        for ifindex in [i for i in self._ports if i not in snapshot.ports]:
            self._port_left(ifindex)
        for port in snapshot.ports.values():
            self._port_seen(port)
        if initial or snapshot.addresses != self._addresses:
            self._addresses = snapshot.addresses
            self._notify(self._on_address, list(self._addresses))

    # -- events ------------------------------------------------------------------------

    def _read_events(self) -> None:
        """Reader callback: apply up to ``DATAGRAMS_PER_WAKEUP`` notification datagrams."""
        for _ in range(DATAGRAMS_PER_WAKEUP):
            if self._events is None:  # closed by a callback (bridge gone)
                return
            try:
                data = self._events.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    raise
                self._resync()
                continue
            for message in self._marshal.parse(data):
                if self._events is None:  # the bridge went away mid-datagram
                    return
                self._apply_message(message)

    def _resync(self) -> None:
        """After lost notifications: drop the stale queue, dump, report differences."""
        assert self._events is not None
        self.resyncs += 1
        log.warning("links.resync bridge=%s reason=ENOBUFS", self.bridge)
        while True:
            try:
                self._events.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    raise
        self._apply_snapshot(self._dump())

    def _apply_message(self, message: Any) -> None:
        kind = message["header"]["type"]
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            # AF_BRIDGE copies (port state, VLANs) come from the bridge itself; the
            # AF_UNSPEC messages carry everything we need.
            if message["family"] != AF_UNSPEC:
                return
            ifindex = message["index"]
            if ifindex == self.bridge_ifindex:
                if kind == RTM_DELLINK:
                    self._bridge_gone()
            elif kind == RTM_NEWLINK and message.get_attr("IFLA_MASTER") == self.bridge_ifindex:
                self._port_seen(_port_state(message))
            elif ifindex in self._ports:
                self._port_left(ifindex)
        elif kind in (RTM_NEWADDR, RTM_DELADDR):
            if message["index"] != self.bridge_ifindex or message["family"] != socket.AF_INET:
                return
            address = _address(message)
            addresses = [a for a in self._addresses if a != address]
            self._secondary.discard(address)
            if kind == RTM_NEWADDR:
                if message["flags"] & IFA_F_SECONDARY:
                    self._secondary.add(address)
                addresses.append(address)
            addresses.sort(key=lambda a: a in self._secondary)  # stable: primaries first
            if addresses != self._addresses:
                self._addresses = addresses
                self._notify(self._on_address, list(addresses))

    def _port_seen(self, port: PortState) -> None:
        known = self._ports.get(port.ifindex)
        if known == port:
            return
        if known is not None and known.name != port.name:
            log.info("port.renamed old=%s new=%s ifindex=%d", known.name, port.name, port.ifindex)
            self._port_left(port.ifindex)
        self._ports[port.ifindex] = port
        self._notify(self._on_port, port.name, port.ifindex, port.up, True)

    def _port_left(self, ifindex: int) -> None:
        port = self._ports.pop(ifindex)
        self._notify(self._on_port, port.name, ifindex, False, False)

    def _bridge_gone(self) -> None:
        for ifindex in list(self._ports):
            self._port_left(ifindex)
        log.info("bridge.gone bridge=%s ifindex=%d", self.bridge, self.bridge_ifindex)
        self.close()
        self._notify(self._on_bridge_gone)

    def _notify(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("links.callback_error callback=%s", getattr(callback, "__name__", callback))


def _port_state(message: Any) -> PortState:
    up = message["flags"] & (IFF_UP | IFF_RUNNING) == (IFF_UP | IFF_RUNNING)
    return PortState(message.get_attr("IFLA_IFNAME"), message["index"], up)


def _address(message: Any) -> str:
    # IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on point-to-point).
    return str(message.get_attr("IFA_LOCAL") or message.get_attr("IFA_ADDRESS"))
