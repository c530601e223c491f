"""Querier election and the querier's own general-query schedule.

RFC 3376 §6.6.2 (RFC 2236 §3): the router with the lowest IP address is
querier; a router that hears a General Query from a lower address becomes a
non-querier and starts the other-querier-present timer; when it runs out the
router takes the role back. RFC 4541 §2.1.1(4): a query from 0.0.0.0 never wins.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum

from snoopd.core.settings import CoreSettings, QuerierMode


class Role(Enum):
    QUERIER = "querier"
    NON_QUERIER = "non-querier"
    OFF = "off"


ANY = "0.0.0.0"


def address_lower(a: str, b: str) -> bool:
    """a < b as IPv4 addresses."""
    return int(ipaddress.IPv4Address(a)) < int(ipaddress.IPv4Address(b))


def wins_against(other: str, ours: str) -> bool:
    """Does a querier at ``other`` win the election against us at ``ours``?
    RFC 3376 §6.6.2: lower address wins. RFC 4541 §2.1.1(4): 0.0.0.0 never wins;
    so we, with no address (0.0.0.0), lose to any real querier."""
    if other == ANY:
        return False
    return ours == ANY or address_lower(other, ours)


@dataclass(slots=True)
class QuerierState:
    """Everything the querier needs between events. Times are absolute."""

    mode: QuerierMode
    our_address: str = ANY
    role: Role = Role.NON_QUERIER
    listening_until: float = 0.0  # auto mode: wait for an existing querier first
    other_querier: str | None = None
    other_querier_at: float = 0.0  # other-querier-present timer (RFC 3376 §8.5)
    heard_querier: str | None = None  # who queries while we do not (won, or we yield)
    heard_querier_at: float = 0.0
    router_present_at: float = 0.0  # a PIM/DVMRP/MRD router was heard (yield_to_routers)
    older_querier_v1_at: float = 0.0  # RFC 3376 §7.3.1 older-version-querier-present
    older_querier_v2_at: float = 0.0
    startup_left: int = 0  # startup queries still to send (RFC 3376 §8.6, §8.7)
    solicit: bool = False  # auto mode: one general query at start, before listening
    next_query_at: float = 0.0  # our next general query, when querier

    def version(self, configured: int, now: float) -> int:
        """The version we query with: the configured one, lowered while an older
        querier is present on the segment (RFC 3376 §7.3.1)."""
        if self.older_querier_v1_at > now:
            return 1
        if self.older_querier_v2_at > now:
            return min(2, configured)
        return configured

    def should_query(self, settings: CoreSettings, now: float) -> bool:
        """May we be querier now? Off mode never; otherwise nobody lower is heard,
        and in auto mode no router announces itself and we are past listening."""
        mode = settings.querier_mode
        if mode is QuerierMode.OFF:
            return False
        if self.other_querier_at > now:
            return False
        if mode is QuerierMode.AUTO:
            if now < self.listening_until:
                return False
            if settings.yield_to_routers and self.router_present_at > now:
                return False
        return True

    def next_wakeup(self, now: float) -> float | None:
        """When the schedule must next be looked at (only future times)."""
        if self.mode is QuerierMode.OFF:
            return None
        times = [self.listening_until, self.other_querier_at, self.router_present_at]
        if self.role is Role.QUERIER:
            times.append(self.next_query_at)
        future = [t for t in times if t > now]
        return min(future) if future else None
