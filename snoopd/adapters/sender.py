"""Sending whole Ethernet frames out of one interface (AF_PACKET, one socket).

Two uses, one mechanism:

- out of a bridge port (its ifindex): the frame leaves on that port only, the bridge's
  forwarding is bypassed. Used to forward reports and leaves to router ports.
- out of the bridge device itself: the frame goes through ``br_dev_xmit``, so the
  bridge's multicast code sees it first (a general query sent this way makes the kernel
  record a querier: ``IFLA_BR_MCAST_QUERIER_STATE`` shows its address and the other-querier
  timer, and the MDB starts to govern forwarding one max-response-time later) and then
  floods it to every port (224.0.0.1 is link-local, always flooded). Used for our queries.

Errors are data, not exceptions: :meth:`FrameSender.send` returns False and counts the
errno (ENXIO: no such ifindex, ENETDOWN: interface down, ENOBUFS/EAGAIN: queue or socket
buffer full, EMSGSIZE: frame bigger than the MTU). The socket is non-blocking, so a full
socket buffer never stalls the event loop. The socket has protocol 0: it receives nothing.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import socket
from collections import Counter

from snoopd.adapters.capture import libc, sockaddr_ll

log = logging.getLogger(__name__)

_MSG_DONTWAIT = 0x40


class FrameSender:
    """Send Ethernet frames out of an interface given by ifindex."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self._sock.setblocking(False)
        self._sendto = libc().sendto
        self._sendto.argtypes = (
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_uint32,
        )
        self._sendto.restype = ctypes.c_ssize_t
        self.sent = 0  # frames handed to the interface
        self.errors: Counter[str] = Counter()  # errno name -> count, e.g. {"ENETDOWN": 2}

    def send(self, ifindex: int, frame: bytes) -> bool:
        """Send ``frame`` (a whole Ethernet frame) out of ``ifindex``.

        Returns True if the kernel took the frame, False (and counts the errno in
        :attr:`errors`) if it refused it. Never raises for kernel refusals; raises
        ValueError only after :meth:`close`.
        """
        fd = self._sock.fileno()
        if fd < 0:
            raise ValueError("FrameSender is closed")
        # sll_protocol is the EtherType the frame carries (only used by taps and for
        # sanity checks); the frame itself already holds it.
        protocol = frame[12:14] if len(frame) >= 14 else b"\0\0"
        address = sockaddr_ll(ifindex, protocol)
        result = self._sendto(fd, frame, len(frame), _MSG_DONTWAIT, address, len(address))
        if result == len(frame):
            self.sent += 1
            return True
        code = ctypes.get_errno() if result < 0 else errno.EMSGSIZE
        name = errno.errorcode.get(code, str(code))
        self.errors[name] += 1
        log.debug("send.failed ifindex=%d error=%s bytes=%d", ifindex, name, len(frame))
        return False

    def send_many(self, ifindexes: list[int], frame: bytes) -> int:
        """Send the same frame out of each of ``ifindexes``; returns how many succeeded."""
        return sum(self.send(ifindex, frame) for ifindex in ifindexes)

    def close(self) -> None:
        self._sock.close()
