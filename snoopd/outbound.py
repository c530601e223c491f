"""What both data planes send themselves, and how they log the core's notices.

Captured reports and leaves go out of router ports (the ingress filter kept them from
the bridge); snoopd's queries go out of the bridge device, which floods them to every
port and counts a querier present.
"""

from __future__ import annotations

import fcntl
import logging
import socket
import struct
from collections import Counter

from snoopd.adapters.sender import FrameSender
from snoopd.core.actions import ForwardControl, Notice, SendQuery
from snoopd.wire import encode_query

log = logging.getLogger(__name__)
SIOCGIFHWADDR = 0x8927
GROUP_EVENTS = ("group.joined", "group.left")
NOTICE_DETAIL_LIMIT = 20  # more group events than this in one batch: one summary line


def interface_mac(name: str) -> bytes:
    """The interface's MAC address (SIOCGIFHWADDR, in this network namespace)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, struct.pack("16s16x", name.encode()[:15]))
    return ifreq[18:24]


def log_notices(notices: list[Notice]) -> None:
    """State changes at INFO, one line each; a burst of group events (thousands of
    groups joined in one report burst) as one summary line, details at DEBUG."""
    groups = [n for n in notices if n.event in GROUP_EVENTS]
    summarise = len(groups) > NOTICE_DETAIL_LIMIT
    for n in notices:
        if summarise and n.event in GROUP_EVENTS:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s", n.event, " ".join(f"{k}={v}" for k, v in n.fields))
            continue
        log.info("%s %s", n.event, " ".join(f"{k}={v}" for k, v in n.fields))
    if summarise:
        for event in GROUP_EVENTS:
            count = sum(1 for n in groups if n.event == event)
            if count:
                log.info("%s count=%d (one line each at debug level)", event.replace(".", "s."), count)


class Outbound:
    """Frames snoopd sends itself, counted in ``counters``."""

    def __init__(self, bridge: str, bridge_ifindex: int, counters: Counter[str]) -> None:
        self.sender = FrameSender()
        self.bridge_ifindex = bridge_ifindex
        self.mac = interface_mac(bridge)
        self.counters = counters

    def send(self, ifindex: int | None, frame: bytes, counter: str) -> None:
        if ifindex is None:
            return
        if self.sender.send(ifindex, frame):
            self.counters[counter] += 1
        else:
            self.counters["tx.errors"] += 1

    def forward_control(self, action: ForwardControl, ports: dict[str, int]) -> None:
        """RFC 4541 §2.1.1: reports and leaves to router ports. Queries pass the ingress
        filter, so the bridge floods them itself."""
        if not action.is_query:
            for port in action.ports:
                self.send(ports.get(port), action.frame, "tx.control_forwarded")

    def query_frame(self, q: SendQuery) -> bytes:
        return encode_query(q.version, q.group, q.sources, q.max_response_time, q.suppress_router_processing,
                            q.qrv, q.query_interval, q.source_address, self.mac)

    def send_to_bridge(self, frame: bytes, counter: str = "tx.query") -> None:
        """Out of the bridge device: the bridge floods it to every port and counts a
        querier present (it enforces its MDB only while it believes one exists)."""
        self.send(self.bridge_ifindex, frame, counter)

    def close(self) -> None:
        self.sender.close()
