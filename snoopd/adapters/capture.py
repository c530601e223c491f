"""Capture of IGMP and PIM-hello frames on bridge ports (AF_PACKET, classic BPF).

One ``AF_PACKET``/``SOCK_RAW`` socket per bridge port, bound with ``ETH_P_ALL`` to
the port's ifindex. On a bridge port this is the only binding that sees IGMP: the
bridge's rx handler consumes the frame before any ``ETH_P_IP`` packet handler runs,
while ``ETH_P_ALL`` taps run first.

A classic BPF program (:data:`IGMP_PIM_FILTER`) runs in the kernel on every frame of the
port and passes only IPv4 IGMP (any type) and PIM to 224.0.0.13, so Python never sees
data traffic. Frames the bridge itself sends out of the port (``PACKET_OUTGOING``: our
own queries, reports the bridge floods from other ports) are dropped in the kernel with
``PACKET_IGNORE_OUTGOING`` and, as a second line, by the filter (``SKF_AD_PKTTYPE``).

The kernel strips an 802.1Q tag before the packet taps run (``skb_vlan_untag``), so
the tag reaches us only as ``PACKET_AUXDATA`` (``tp_vlan_tci`` when ``tp_status`` has
``TP_STATUS_VLAN_VALID``); the filter still accepts frames that carry a tag in-band.
Each port therefore has two sockets: one whose filter takes only frames without a tag
in the skb's metadata, read with a plain ``recv_into``, and one for frames with a tag,
read with ``recvmsg_into`` and its auxdata. The split keeps the common case cheap: on
an AF_PACKET socket ``recvmsg_into`` also builds the sender's address, which costs
CPython an ``SIOCGIFNAME`` ioctl per frame; measured here after an idle period (a lone
join), 84 us for ``recvmsg_into`` against 48 us for ``recv_into``. Frames of one port
on different VLANs may be read out of order; frames of one VLAN never are.

The socket survives the port going down and up: on ``NETDEV_DOWN`` the kernel unhooks
it and reports ``ENETDOWN`` once, on ``NETDEV_UP`` it hooks it again. If the port is
deleted the socket goes quiet for good; :meth:`PacketCapture.remove_port` still works.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import functools
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

FrameHandler = Callable[[str, bytes, "int | None"], None]
_MSG_TRUNC = int(socket.MSG_TRUNC)

# <linux/if_ether.h>, <linux/if_packet.h>, <asm-generic/socket.h>
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 1 << 4
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33

RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
FRAMES_PER_WAKEUP = 256
MAX_FRAME_BYTES = 65536
# struct tpacket_auxdata {u32 tp_status, tp_len, tp_snaplen; u16 tp_mac, tp_net,
#                         tp_vlan_tci, tp_vlan_tpid;}
_AUXDATA = struct.Struct("=IIIHHHH")
_ANCILLARY_BYTES = socket.CMSG_SPACE(_AUXDATA.size)
# struct tpacket_stats {unsigned int tp_packets, tp_drops;}
_TPACKET_STATS = struct.Struct("=II")
# struct sockaddr_ll {u16 sll_family; be16 sll_protocol; int sll_ifindex; u16 sll_hatype;
#                     u8 sll_pkttype, sll_halen; u8 sll_addr[8];}
SOCKADDR_LL = struct.Struct("=H2siHBB8s")

# Classic BPF opcodes (<linux/filter.h>): class | size | mode.
_LDH_ABS = 0x28  # BPF_LD | BPF_H | BPF_ABS: A = u16 at packet[k]
_LDB_ABS = 0x30  # BPF_LD | BPF_B | BPF_ABS: A = u8 at packet[k]
_LDW_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS: A = u32 at packet[k]
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K: pc += 1 + (jt if A == k else jf)
_RET_K = 0x06  # BPF_RET | BPF_K: accept k bytes of the frame (0: drop it)

# Ancillary loads (<linux/filter.h>): SKF_AD_OFF + SKF_AD_PKTTYPE / _VLAN_TAG_PRESENT, as u32.
SKF_AD_PKTTYPE = (-0x1000 + 4) & 0xFFFFFFFF
SKF_AD_VLAN_TAG_PRESENT = (-0x1000 + 48) & 0xFFFFFFFF

ACCEPT_BYTES = 0x40000
IPPROTO_IGMP = 2
IPPROTO_PIM = 103
ALL_PIM_ROUTERS = 0xE000000D  # 224.0.0.13

# (code, jt, jf, k). Offsets count from the Ethernet header (SOCK_RAW). A load past the
# end of the frame makes the kernel return 0, so runts are dropped too.
IGMP_PIM_FILTER: tuple[tuple[int, int, int, int], ...] = (
    (_LDH_ABS, 0, 0, 12),  # 0  A = EtherType
    (_JEQ_K, 6, 0, 0x8100),  # 1  802.1Q in-band -> 8, else -> 2
    (_JEQ_K, 0, 13, 0x0800),  # 2  IPv4 -> 3, else -> 16 (drop)
    (_LDB_ABS, 0, 0, 14 + 9),  # 3  A = IPv4 protocol
    (_JEQ_K, 10, 0, IPPROTO_IGMP),  # 4  IGMP -> 15 (accept), else -> 5
    (_JEQ_K, 0, 10, IPPROTO_PIM),  # 5  PIM -> 6, else -> 16 (drop)
    (_LDW_ABS, 0, 0, 14 + 16),  # 6  A = IPv4 destination
    (_JEQ_K, 7, 8, ALL_PIM_ROUTERS),  # 7  224.0.0.13 -> 15 (accept), else -> 16 (drop)
    (_LDH_ABS, 0, 0, 16),  # 8  A = EtherType after the 4-byte tag
    (_JEQ_K, 0, 6, 0x0800),  # 9  IPv4 -> 10, else -> 16 (drop)
    (_LDB_ABS, 0, 0, 18 + 9),  # 10 A = IPv4 protocol
    (_JEQ_K, 3, 0, IPPROTO_IGMP),  # 11 IGMP -> 15 (accept), else -> 12
    (_JEQ_K, 0, 3, IPPROTO_PIM),  # 12 PIM -> 13, else -> 16 (drop)
    (_LDW_ABS, 0, 0, 18 + 16),  # 13 A = IPv4 destination
    (_JEQ_K, 0, 1, ALL_PIM_ROUTERS),  # 14 224.0.0.13 -> 15 (accept), else -> 16 (drop)
    (_RET_K, 0, 0, ACCEPT_BYTES),  # 15 accept the whole frame
    (_RET_K, 0, 0, 0),  # 16 drop
)


def _split_by_tag(tagged: bool) -> tuple[tuple[int, int, int, int], ...]:
    """IGMP_PIM_FILTER behind two tests: frames the bridge sends (``PACKET_OUTGOING``;
    ``PACKET_IGNORE_OUTGOING`` drops them already, this is the second line) are dropped,
    and so are those with (untagged socket) or without (``tagged``) an 802.1Q tag."""
    drop = len(IGMP_PIM_FILTER) - 1  # from the instruction after the tag test to the last
    tag_test = (_JEQ_K, drop, 0, 0) if tagged else (_JEQ_K, 0, drop, 0)  # A == 0: no tag
    return (
        (_LDW_ABS, 0, 0, SKF_AD_PKTTYPE),  # A = sll_pkttype
        (_JEQ_K, drop + 2, 0, PACKET_OUTGOING),  # sent by the bridge -> drop
        (_LDW_ABS, 0, 0, SKF_AD_VLAN_TAG_PRESENT),  # A = 1 if the skb carries a tag
        tag_test,
        *IGMP_PIM_FILTER,
    )


UNTAGGED_FILTER = _split_by_tag(tagged=False)
TAGGED_FILTER = _split_by_tag(tagged=True)


@functools.cache
def libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def sockaddr_ll(ifindex: int, protocol: bytes) -> bytes:
    """A ``struct sockaddr_ll`` for ``ifindex``; ``protocol`` is the EtherType, network order."""
    return SOCKADDR_LL.pack(socket.AF_PACKET, protocol, ifindex, 0, 0, 0, b"")


def bind_to_ifindex(sock: socket.socket, ifindex: int, protocol: int) -> None:
    """``bind(2)`` an AF_PACKET socket by ifindex (Python's own bind takes a name)."""
    address = sockaddr_ll(ifindex, protocol.to_bytes(2, "big"))
    if libc().bind(sock.fileno(), address, len(address)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"bind to ifindex {ifindex}: {errno.errorcode.get(code, code)}")


def attach_filter(sock: socket.socket, program: tuple[tuple[int, int, int, int], ...]) -> None:
    """``SO_ATTACH_FILTER`` a classic BPF program (the kernel copies it)."""
    code = b"".join(struct.pack("=HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    # struct sock_fprog {unsigned short len; struct sock_filter *filter;}
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


@dataclass(slots=True)
class _Port:
    name: str
    ifindex: int
    sock: socket.socket  # frames without an 802.1Q tag (nearly all)
    tagged: socket.socket  # frames with one: the tag comes as auxdata
    loop: asyncio.AbstractEventLoop
    packets: int = 0
    drops: int = 0


class PacketCapture:
    """Capture IGMP/PIM frames on bridge ports and hand each one to ``on_frame``.

    ``on_frame(port_name, frame, vlan)`` receives the whole Ethernet frame as bytes and
    the VLAN id from the kernel's auxdata (None when untagged or priority-tagged).
    Runs on one asyncio loop; up to ``frames_per_wakeup`` frames are read per wake-up.
    """

    def __init__(
        self,
        on_frame: FrameHandler,
        *,
        frames_per_wakeup: int = FRAMES_PER_WAKEUP,
        receive_buffer_bytes: int = RECEIVE_BUFFER_BYTES,
        on_drained: Callable[[], None] | None = None,
    ) -> None:
        self._on_frame = on_frame
        self._on_drained = on_drained
        self._frames_per_wakeup = frames_per_wakeup
        self._receive_buffer_bytes = receive_buffer_bytes
        self._ports: dict[str, _Port] = {}
        self._buffer = bytearray(MAX_FRAME_BYTES)
        self._view = memoryview(self._buffer)
        self._retired_packets = 0
        self._retired_drops = 0
        self.frames = 0  # frames handed to on_frame
        self.truncated = 0  # frames larger than MAX_FRAME_BYTES (dropped)
        self.receive_errors = 0  # ENETDOWN after a port went down, and the like
        self.handler_errors = 0  # exceptions raised by on_frame (logged, then dropped)

    @property
    def ports(self) -> dict[str, int]:
        """Captured ports: name -> ifindex."""
        return {name: port.ifindex for name, port in self._ports.items()}

    def add_port(self, name: str, ifindex: int, loop: asyncio.AbstractEventLoop) -> None:
        """Start capturing on a port; idempotent for the same (name, ifindex).

        Raises OSError if the socket cannot be set up (no such ifindex, no privilege).
        """
        current = self._ports.get(name)
        if current is not None:
            if current.ifindex == ifindex:
                return
            self.remove_port(name)
        sock = open_capture_socket(ifindex, self._receive_buffer_bytes)
        try:
            tagged = open_capture_socket(ifindex, self._receive_buffer_bytes, tagged=True)
        except BaseException:
            sock.close()
            raise
        loop.add_reader(sock.fileno(), self._drain, name)
        loop.add_reader(tagged.fileno(), self._drain, name, True)
        self._ports[name] = _Port(name, ifindex, sock, tagged, loop)
        log.debug("capture.added port=%s ifindex=%d", name, ifindex)

    def remove_port(self, name: str) -> None:
        """Stop capturing on a port; unknown names and vanished ports are fine."""
        port = self._ports.pop(name, None)
        if port is None:
            return
        self._read_statistics(port)
        self._retired_packets += port.packets
        self._retired_drops += port.drops
        for sock in (port.sock, port.tagged):
            port.loop.remove_reader(sock.fileno())  # a closed loop just returns False
            sock.close()
        log.debug("capture.removed port=%s", name)

    def close(self) -> None:
        """Stop capturing on every port."""
        for name in list(self._ports):
            self.remove_port(name)

    def stats(self) -> dict[str, tuple[int, int]]:
        """Per port: (packets, drops) since the port was added.

        ``packets`` counts every frame that passed the filter, including dropped ones;
        ``drops`` counts frames the kernel dropped because the receive queue was full.
        The kernel resets its counters on each read; they are accumulated here.
        """
        for port in self._ports.values():
            self._read_statistics(port)
        return {name: (port.packets, port.drops) for name, port in self._ports.items()}

    @property
    def total_drops(self) -> int:
        """Frames dropped by the kernel on all ports, ever (removed ports included)."""
        return self._retired_drops + sum(drops for _, drops in self.stats().values())

    @property
    def total_packets(self) -> int:
        """Frames that passed the filter on all ports, ever, drops included."""
        return self._retired_packets + sum(packets for packets, _ in self.stats().values())

    def _read_statistics(self, port: _Port) -> None:
        for sock in (port.sock, port.tagged):
            try:
                raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _TPACKET_STATS.size)
            except OSError:
                continue
            packets, drops = _TPACKET_STATS.unpack(raw)
            port.packets += packets
            port.drops += drops

    def _drain(self, name: str, tagged: bool = False) -> None:
        """Reader callback: read up to ``frames_per_wakeup`` frames from one of a port's
        sockets, then tell ``on_drained`` (so the caller can act once per burst, not per frame)."""
        try:
            self._drain_port(name, tagged)
        finally:
            if self._on_drained is not None:
                self._on_drained()

    def _drain_port(self, name: str, tagged: bool = False) -> None:
        port = self._ports.get(name)
        if port is None:
            return
        recv_into = port.sock.recv_into
        recvmsg_into = port.tagged.recvmsg_into
        buffer, view = self._buffer, self._view
        buffers = [buffer]
        first = self._on_drained  # called after the first frame too: see below
        vlan = None
        for _ in range(self._frames_per_wakeup):
            try:
                if tagged:
                    size, ancillary, _, _ = recvmsg_into(buffers, _ANCILLARY_BYTES, _MSG_TRUNC)
                    vlan = _vlan(ancillary)
                else:
                    size = recv_into(buffer, 0, _MSG_TRUNC)  # MSG_TRUNC: the frame's real length
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                # ENETDOWN once after the port went down; the kernel re-hooks on up.
                self.receive_errors += 1
                log.debug("capture.receive_error port=%s error=%s", name, error)
                return
            if size > MAX_FRAME_BYTES:
                self.truncated += 1
                continue
            self.frames += 1
            try:
                self._on_frame(name, bytes(view[:size]), vlan)
            except Exception:
                self.handler_errors += 1
                log.exception("capture.handler_error port=%s", name)
            if first is not None:
                # A lone report (a join, a leave) is acted on before the next receive
                # (its EAGAIN alone costs tens of microseconds); the rest of a burst is
                # batched and acted on once, after the last frame.
                first()
                first = None


def _vlan(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The VLAN id in a frame's PACKET_AUXDATA (None: no tag, or a priority tag, VID 0)."""
    for level, kind, data in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= _AUXDATA.size:
            status, _, _, _, _, tci, _ = _AUXDATA.unpack_from(data)
            if status & TP_STATUS_VLAN_VALID and tci & 0x0FFF:
                return int(tci & 0x0FFF)
    return None


def open_capture_socket(ifindex: int, receive_buffer_bytes: int = RECEIVE_BUFFER_BYTES,
                        *, tagged: bool = False) -> socket.socket:
    """A non-blocking packet socket on ``ifindex`` with the IGMP/PIM filter attached, for
    frames without an 802.1Q tag in their metadata, or (``tagged``) only those with one.

    The socket is created with protocol 0 (it receives nothing), the filter is attached,
    and only then is it bound to ETH_P_ALL: no unfiltered frame can slip in between.
    """
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        attach_filter(sock, TAGGED_FILTER if tagged else UNTAGGED_FILTER)
        if tagged:
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, receive_buffer_bytes)
        except PermissionError:  # without CAP_NET_ADMIN: capped by net.core.rmem_max
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
        bind_to_ifindex(sock, ifindex, ETH_P_ALL)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
