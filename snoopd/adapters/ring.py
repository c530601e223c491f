"""Software replication mechanics: one TPACKET_V3 receive ring for all ports, and batched
sending with ``sendmmsg(2)`` whose iovecs point into the ring.

Receive (:class:`RxRing`): one ``AF_PACKET``/``SOCK_RAW`` socket for all bridge ports,
bound with ``ETH_P_ALL`` to no interface (``ETH_P_ALL`` taps see frames the bridge
consumes, and run before tc ingress, so frames our ingress filter drops are still seen).
A classic BPF program (:func:`ports_program`) passes only frames received on the ports,
untagged IPv4 to a multicast MAC and a routable group (224.0.1.0-239.255.255.255), not
IGMP: Python never sees anything else. The ring is ``TPACKET_V3``: the kernel packs frames
into blocks and hands a block over when it is full or ``retire_timeout_ms`` after it was
opened, so one wake-up carries many frames (each with its ``sll_ifindex``).
``PACKET_IGNORE_OUTGOING`` keeps frames leaving a port (ours, the bridge's) out of the ring.

``PACKET_VNET_HDR`` makes the kernel put a ``struct virtio_net_hdr`` (10 bytes) right
before each frame: frames from a local sender on a veth carry a partial checksum
(CHECKSUM_PARTIAL, the UDP checksum not yet computed); the header says so
(``VIRTIO_NET_HDR_F_NEEDS_CSUM``, csum_start, csum_offset) and the send sockets, which
also have ``PACKET_VNET_HDR``, give it back to the kernel. So each copy is one iovec,
``[header + frame]``, taken from the ring as it is: no per-frame work in Python.

The same frames must never reach the kernel bridge: :data:`SOFTWARE_INGRESS_DROP` is the
classic BPF program for snoopd's tc ingress filter in software mode (loaded through
``snoopd.adapters.ingress.IngressFilter``). The two programs are kept side by side: what
the ring takes, the ingress filter drops (tests/test_software_plane.py checks both on the
same frames).

Send (:class:`MmsgSender`): one ``AF_PACKET`` socket per egress port, bound to it with
protocol 0 (it receives nothing) and ``PACKET_QDISC_BYPASS``; one shared array of
``struct mmsghdr`` prebuilt to point at one shared iovec array. Sending a batch is: copy
the (address, length) pairs into the iovec array once, then one ``sendmmsg`` per egress
port. Frames leave the port directly (``dev_queue_xmit`` of the port, not the bridge).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import socket
import struct
from array import array
from collections import Counter
from collections.abc import Iterable

from snoopd.adapters.capture import ETH_P_ALL, SOL_PACKET, attach_filter, bind_to_ifindex, libc
from snoopd.adapters.ingress import IngressFilter, encode_program

# <linux/if_packet.h>
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_VNET_HDR = 15
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_LOSING = 4
SO_SNDBUFFORCE = 32
MSG_DONTWAIT = 0x40
VNET_HDR_BYTES = 10  # struct virtio_net_hdr

# struct tpacket_req3 {tp_block_size, tp_block_nr, tp_frame_size, tp_frame_nr,
#                      tp_retire_blk_tov, tp_sizeof_priv, tp_feature_req_word} (all u32)
_TPACKET_REQ3 = struct.Struct("=7I")
# struct tpacket_stats_v3 {tp_packets, tp_drops, tp_freeze_q_cnt}
_TPACKET_STATS_V3 = struct.Struct("=III")
# struct tpacket_block_desc {u32 version, offset_to_priv; struct tpacket_hdr_v1 {u32 block_status,
#     num_pkts, offset_to_first_pkt, blk_len; u64 seq_num; ...}}
BLOCK_STATUS_OFFSET = 8
BLOCK_HEADER = struct.Struct("=8xIII")  # block_status, num_pkts, offset_to_first_pkt
# struct tpacket3_hdr {u32 tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_status;
#     u16 tp_mac, tp_net; ...} (48 bytes, then struct sockaddr_ll: sll_ifindex at 52)
TPACKET3_HDRLEN = 48 + 20  # TPACKET_ALIGN(sizeof(tpacket3_hdr)) + sizeof(sockaddr_ll)


def tpacket_align(n: int) -> int:
    return (n + 15) & ~15


def expected_mac_offset(vnet: bool) -> int:
    """tp_mac of an Ethernet frame in a TPACKET_V3 ring (af_packet.c tpacket_rcv: netoff =
    TPACKET_ALIGN(tp_hdrlen + max(maclen, 16)) [+ vnet header], macoff = netoff - maclen)."""
    return tpacket_align(TPACKET3_HDRLEN + 16) + (VNET_HDR_BYTES if vnet else 0) - 14


# Classic BPF (<linux/filter.h>), (code, jt, jf, k); offsets from the Ethernet header.
_LDB_ABS, _LDW_ABS, _LDH_ABS, _AND_K, _JEQ_K, _JSET_K, _RET_K = 0x30, 0x20, 0x28, 0x54, 0x15, 0x45, 0x06
_LDXB_MSH, _LDB_IND, _JA = 0xB1, 0x50, 0x05
SKF_AD_IFINDEX = (-0x1000 + 8) & 0xFFFFFFFF  # SKF_AD_OFF + SKF_AD_IFINDEX: the receiving interface
SKF_AD_VLAN_TAG_PRESENT = (-0x1000 + 48) & 0xFFFFFFFF  # SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT
ACCEPT_BYTES = 0x40000
TC_ACT_PASS_ON = 0xFFFFFFFF  # TC_ACT_UNSPEC (-1): not ours, the frame goes on to the bridge
TC_ACT_SHOT = 2

MULTICAST_DATA_FILTER: tuple[tuple[int, int, int, int], ...] = (
    (_LDH_ABS, 0, 0, 12),                   # 0  A = EtherType
    (_JEQ_K, 0, 11, 0x0800),                # 1  IPv4 -> 2, else -> 13 drop
    (_LDW_ABS, 0, 0, SKF_AD_VLAN_TAG_PRESENT),  # 2  A = 1 if the frame had an 802.1Q tag
    (_JEQ_K, 0, 9, 0),                      # 3  untagged -> 4, else -> 13 (left to the bridge)
    (_LDB_ABS, 0, 0, 0),                    # 4  A = first byte of the destination MAC
    (_JSET_K, 0, 7, 1),                     # 5  multicast MAC -> 6, else -> 13
    (_LDB_ABS, 0, 0, 14 + 9),               # 6  A = IPv4 protocol
    (_JEQ_K, 5, 0, 2),                      # 7  IGMP -> 13 (snoopd's capture handles it)
    (_LDW_ABS, 0, 0, 14 + 16),              # 8  A = IPv4 destination
    (_AND_K, 0, 0, 0xF0000000),             # 9
    (_JEQ_K, 0, 2, 0xE0000000),             # 10 224.0.0.0/4 -> 11, else -> 13
    (_LDW_ABS, 0, 0, 14 + 16),              # 11 A = IPv4 destination
    (_JSET_K, 1, 0, 0x0FFFFF00),            # 12 not 224.0.0.0/24 -> 14 accept, else -> 13
    (_RET_K, 0, 0, 0),                      # 13 drop
    (_RET_K, 0, 0, ACCEPT_BYTES),           # 14 accept
)  # fmt: skip

# At tc ingress (cls_bpf, direct action): the IGMP part is ingress.IGMP_REPORT_DROP's
# (reports and leaves dropped, as in kernel mode); the data part drops exactly what
# MULTICAST_DATA_FILTER accepts.
SOFTWARE_INGRESS_DROP: tuple[tuple[int, int, int, int], ...] = (
    (_LDH_ABS, 0, 0, 12),                   # 0  A = EtherType
    (_JEQ_K, 0, 19, 0x0800),                # 1  not IPv4 -> 21 pass
    (_LDB_ABS, 0, 0, 14 + 9),               # 2  A = IPv4 protocol
    (_JEQ_K, 0, 8, 2),                      # 3  not IGMP -> 12 (data)
    (_LDH_ABS, 0, 0, 20),                   # 4  A = flags | fragment offset
    (_JSET_K, 15, 0, 0x1FFF),               # 5  not the first fragment -> 21 pass
    (_LDXB_MSH, 0, 0, 14),                  # 6  X = IHL * 4
    (_LDB_IND, 0, 0, 14),                   # 7  A = IGMP type
    (_JEQ_K, 13, 0, 0x12),                  # 8  v1 report -> 22 drop
    (_JEQ_K, 12, 0, 0x16),                  # 9  v2 report -> 22 drop
    (_JEQ_K, 11, 0, 0x17),                  # 10 leave -> 22 drop
    (_JEQ_K, 10, 9, 0x22),                  # 11 v3 report -> 22 drop, else -> 21 pass
    (_LDW_ABS, 0, 0, SKF_AD_VLAN_TAG_PRESENT),  # 12 A = 1 if 802.1Q-tagged
    (_JEQ_K, 0, 7, 0),                      # 13 tagged -> 21 pass (the bridge floods it)
    (_LDB_ABS, 0, 0, 0),                    # 14 A = first byte of the destination MAC
    (_JSET_K, 0, 5, 1),                     # 15 unicast MAC -> 21 pass
    (_LDW_ABS, 0, 0, 14 + 16),              # 16 A = IPv4 destination
    (_AND_K, 0, 0, 0xF0000000),             # 17
    (_JEQ_K, 0, 2, 0xE0000000),             # 18 not 224.0.0.0/4 -> 21 pass
    (_LDW_ABS, 0, 0, 14 + 16),              # 19 A = IPv4 destination
    (_JSET_K, 1, 0, 0x0FFFFF00),            # 20 not 224.0.0.0/24 -> 22 drop, else -> 21 pass
    (_RET_K, 0, 0, TC_ACT_PASS_ON),         # 21 pass
    (_RET_K, 0, 0, TC_ACT_SHOT),            # 22 drop
)  # fmt: skip


def software_ingress_filter() -> IngressFilter:
    """An IngressFilter with SOFTWARE_INGRESS_DROP (same handle and priority as kernel
    mode's, so either mode's ``remove_stale`` finds the other's)."""
    ingress = IngressFilter()
    ingress._program = encode_program(SOFTWARE_INGRESS_DROP)
    return ingress


def ports_program(ifindexes: Iterable[int]) -> tuple[tuple[int, int, int, int], ...]:
    """MULTICAST_DATA_FILTER for an unbound socket: what it accepts, from these ports only
    (a chain of ``jeq ifindex`` / ``ja accept`` pairs in place of its accept)."""
    ports = sorted(set(ifindexes))
    base = MULTICAST_DATA_FILTER[:-1]  # its last instruction is the accept
    chain: list[tuple[int, int, int, int]] = [(_LDW_ABS, 0, 0, SKF_AD_IFINDEX)]
    for i, ifindex in enumerate(ports):
        chain += [(_JEQ_K, 0, 1, ifindex), (_JA, 0, 0, 2 * (len(ports) - i) - 1)]
    return (*base, *chain, (_RET_K, 0, 0, 0), (_RET_K, 0, 0, ACCEPT_BYTES))


class RxRing:
    """A TPACKET_V3 receive ring of an unbound socket (every interface of the namespace)
    that takes, with :func:`ports_program`, routable multicast data from the ports given
    to :meth:`set_ports` (none at first).

    One ring for all ports: one fd to wait on, memory that does not grow with the ports,
    and one block-retire timer (``retire_timeout_ms``; Linux 6.18 runs it as an hrtimer
    even while no frame arrives). Blocks are ``block_size`` bytes at ``index * block_size``
    of :attr:`view`; :meth:`take` returns the next block's offset once user space owns it,
    :meth:`release` hands it back. :attr:`address` is the mapping's address (for iovecs);
    :attr:`mac_offset` is where the Ethernet header starts in a frame.
    """

    def __init__(self, *, block_size: int = 1 << 15, block_count: int = 256, retire_timeout_ms: int = 1) -> None:
        self.block_size = block_size
        self.block_count = block_count
        self.mac_offset = expected_mac_offset(vnet=True)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # receives nothing until bound
        try:
            self.set_ports(())
            self.sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            self.sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            self.sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            frame_size = 1 << 11  # V3 ignores it (frames are packed), but checks it
            request = _TPACKET_REQ3.pack(block_size, block_count, frame_size,
                                         block_size // frame_size * block_count, retire_timeout_ms, 0, 0)
            self.sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
            self.map = mmap.mmap(self.sock.fileno(), block_size * block_count, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
            self._anchor: ctypes.c_char | None = ctypes.c_char.from_buffer(self.map)
            self.address = ctypes.addressof(self._anchor)
            self.view = memoryview(self.map)
            self._words = self.view.cast("I")
            bind_to_ifindex(self.sock, 0, ETH_P_ALL)  # ifindex 0: every interface
            self.sock.setblocking(False)
        except BaseException:
            self.close()
            raise
        self.current = 0  # index of the next block to read
        self.packets = 0  # frames that passed the filter (from PACKET_STATISTICS)
        self.drops = 0  # frames lost because the ring was full

    def set_ports(self, ifindexes: Iterable[int]) -> None:
        """Take frames from these ports (the filter is replaced atomically)."""
        attach_filter(self.sock, ports_program(ifindexes))

    def fileno(self) -> int:
        return self.sock.fileno()

    def take(self) -> int:
        """The offset of the next block if the kernel has handed it over (and move on to
        the one after), else -1. Give it back with :meth:`release`."""
        offset = self.current * self.block_size
        if not self._words[(offset + BLOCK_STATUS_OFFSET) >> 2] & TP_STATUS_USER:
            return -1
        self.current = (self.current + 1) % self.block_count
        return offset

    def release(self, offset: int) -> None:
        """Give the block at ``offset`` back to the kernel."""
        self._words[(offset + BLOCK_STATUS_OFFSET) >> 2] = TP_STATUS_KERNEL

    def read_statistics(self) -> int:
        """Add the kernel's counters (reset by each read) to ours; returns new drops."""
        try:
            raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _TPACKET_STATS_V3.size)
        except OSError:
            return 0
        packets, drops, _ = _TPACKET_STATS_V3.unpack(raw)
        self.packets += packets
        self.drops += drops
        return int(drops)

    def close(self) -> None:
        words = getattr(self, "_words", None)
        if words is not None:
            words.release()
        view = getattr(self, "view", None)
        if view is not None:
            view.release()
        self._anchor = None
        ring = getattr(self, "map", None)
        if ring is not None:
            ring.close()
        self.sock.close()


class _MsgHdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


IOVEC_BYTES = 16  # struct iovec {void *iov_base; size_t iov_len;}
UIO_MAXIOV = 1024  # sendmmsg sends at most this many messages per call
_DEAD_PORT_ERRORS = frozenset({errno.ENETDOWN, errno.ENXIO, errno.ENODEV, errno.EAGAIN})


def open_send_socket(ifindex: int, *, qdisc_bypass: bool = True, send_buffer_bytes: int = 4 << 20) -> socket.socket:
    """A packet socket that sends out of ``ifindex`` (bound with protocol 0: it receives
    nothing); each message starts with a virtio_net_hdr."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        if qdisc_bypass:
            sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, send_buffer_bytes)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
        bind_to_ifindex(sock, ifindex, 0)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class MmsgSender:
    """Send up to ``capacity`` messages per call with ``sendmmsg``, one iovec each.

    :meth:`load` copies an ``array('Q')`` of (address, length) pairs into the shared iovec
    array; :meth:`send` sends the first ``count`` loaded messages on one socket and returns
    (sent, failed). A refused message is counted and skipped; a port that is down or gone
    (ENETDOWN, ENXIO, ENODEV) or a full socket buffer (EAGAIN) fails the rest of the batch.
    """

    def __init__(self, capacity: int = 8192) -> None:
        self.capacity = capacity
        self._iov = ctypes.create_string_buffer(capacity * IOVEC_BYTES)
        self._iov_address = ctypes.addressof(self._iov)
        self._msgs = (_MMsgHdr * capacity)()
        for i in range(capacity):
            self._msgs[i].msg_hdr.msg_iov = self._iov_address + i * IOVEC_BYTES
            self._msgs[i].msg_hdr.msg_iovlen = 1
        self._msgs_address = ctypes.addressof(self._msgs)
        self._sendmmsg = libc().sendmmsg
        self._sendmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
        self._sendmmsg.restype = ctypes.c_int
        self._memmove = ctypes.memmove
        self.last_error = 0

    def load(self, pairs: array[int]) -> int:
        """Copy (address, length) pairs into the iovec array; returns the message count."""
        count = len(pairs) >> 1
        if count > self.capacity:
            raise ValueError(f"{count} messages, capacity {self.capacity}")
        address, _ = pairs.buffer_info()
        self._memmove(self._iov_address, address, count * IOVEC_BYTES)
        return count

    def send_all(self, targets: Iterable[tuple[int, str]], pairs: list[int], counters: Counter[str]) -> None:
        """Send the frames of ``pairs`` (address, length, ...) on each (socket fd, counter
        name) of ``targets``, ``capacity`` at a time; count into ``counters``: sw.sent, the
        target's own counter, sw.send_errors."""
        step = self.capacity * 2
        for start in range(0, len(pairs), step):
            count = self.load(array("Q", pairs[start:start + step] if len(pairs) > step else pairs))
            for fd, counter in targets:
                sent, failed = self.send(fd, count)
                counters["sw.sent"] += sent
                counters[counter] += sent
                if failed:
                    counters["sw.send_errors"] += failed

    def send(self, fd: int, count: int) -> tuple[int, int]:
        sendmmsg, base = self._sendmmsg, self._msgs_address
        sent = failed = start = 0
        while start < count:
            n = min(count - start, UIO_MAXIOV)
            done = sendmmsg(fd, base + start * ctypes.sizeof(_MMsgHdr), n, MSG_DONTWAIT)
            if done == n:
                sent += n
                start += n
                continue
            if done < 0:
                self.last_error = ctypes.get_errno()
                if self.last_error in _DEAD_PORT_ERRORS:
                    return sent, failed + count - start
                failed += 1  # this message was refused (ENOBUFS, EMSGSIZE...): skip it
                start += 1
            else:
                sent += done
                start += done
        return sent, failed
