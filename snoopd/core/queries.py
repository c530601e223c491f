"""What snoopd sends as querier: general queries on the querier schedule, and the
group-specific and group-and-source-specific queries that the RFC 3376 §6.4.2
table rows ask for, with their retransmissions (§6.6.3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from snoopd.core.actions import Notice, SendQuery
from snoopd.core.membership import EXCLUDE, STOPPED, PortGroup, QueryRequest
from snoopd.core.querier import ANY, QuerierState, Role
from snoopd.core.settings import QuerierMode

if TYPE_CHECKING:
    from snoopd.core.snooper import Snooper


@dataclass(slots=True)
class _Pending:
    """Retransmission state of the specific queries for one group."""

    group_left: int = 0  # Q(G) transmissions still due
    source_left: dict[str, int] = field(default_factory=dict)  # Q(G,S) transmissions per source
    ports: set[str] = field(default_factory=set)  # ports whose leave asked for them


class QueryScheduler:
    def __init__(self, snooper: Snooper) -> None:
        self._snooper = snooper
        self._pending: dict[str, _Pending] = {}

    def forget(self, group: str) -> None:
        self._pending.pop(group, None)

    def request(self, pg: PortGroup, request: QueryRequest, now: float) -> None:
        """A table row said "Send Q(G)" and/or "Send Q(G, S)". Only the querier sends
        them (RFC 3376 §6.4.2); it also lowers the timers of the port they are for."""
        snooper = self._snooper
        if not snooper.is_querier():
            return
        timers = snooper.settings.timers
        lmqc = timers.last_member_query_count
        lmqt_at = now + timers.last_member_query_time
        pending = self._pending.setdefault(pg.group, _Pending())
        pending.ports.add(pg.port)
        if request.group_query:
            # §6.6.3.1: group timer lowered to LMQT; LMQC queries, LMQI apart.
            if pg.mode is EXCLUDE and pg.group_timer_at > lmqt_at:
                pg.group_timer_at = lmqt_at
            pending.group_left = lmqc
        if snooper.settings.igmp_version >= 3:
            for source in request.sources:
                # §6.6.3.2: sources whose timer is above LMQT are lowered to it and get
                # a retransmission counter of LMQC.
                t = pg.sources.get(source)
                if t is not None and t != STOPPED and t > lmqt_at:
                    pg.sources[source] = lmqt_at
                    pending.source_left[source] = lmqc
        self.run(pg.group, now)

    def run(self, group: str, now: float) -> None:
        """Send what is due for ``group`` now, and arm the next retransmission."""
        snooper = self._snooper
        pending = self._pending.get(group)
        if pending is None:
            return
        timers = snooper.settings.timers
        lmqt_at = now + timers.last_member_query_time
        pgs = [pg for port in pending.ports if (pg := snooper.port_group(port, group)) is not None]
        if pending.group_left > 0:
            # §6.6.3.1: S set when the group timer is above LMQT (a report refreshed it).
            refreshed = bool(pgs) and all(pg.mode is EXCLUDE and pg.group_timer_at > lmqt_at for pg in pgs)
            self._send(group, (), refreshed, now)
            pending.group_left -= 1
        if pending.source_left:
            # §6.6.3.2: one message with S=1 for sources refreshed above LMQT, one with S=0.
            high = tuple(sorted(s for s in pending.source_left
                                if any(pg.sources.get(s, STOPPED) > lmqt_at for pg in pgs)))
            low = tuple(sorted(s for s in pending.source_left if s not in high))
            for sources, suppress in ((low, False), (high, True)):
                if sources:
                    self._send(group, sources, suppress, now)
            for s in list(pending.source_left):
                pending.source_left[s] -= 1
                if pending.source_left[s] <= 0:
                    del pending.source_left[s]
        if pending.group_left > 0 or pending.source_left:
            snooper._timers.schedule(("gsq", group), now + timers.last_member_query_interval)
        else:
            del self._pending[group]

    def _send(self, group: str, sources: tuple[str, ...], suppress: bool, now: float) -> None:
        snooper = self._snooper
        q = snooper._querier
        settings = snooper.settings
        snooper.counters["tx.query.specific"] += 1
        snooper._emit(SendQuery(
            version=q.version(settings.igmp_version, now), group=group, sources=sources,
            max_response_time=settings.timers.last_member_query_interval,
            suppress_router_processing=suppress, qrv=settings.timers.robustness,
            query_interval=settings.timers.query_interval, source_address=q.our_address,
        ))


def solicit(snooper: Snooper, q: QuerierState) -> None:
    """Auto mode, at start: one General Query before listening for another querier.

    Hosts answer it within LMQI, so the table is rebuilt at once, and a kernel bridge
    (which enforces its MDB one Max Resp Time after the first query it sees) stops
    flooding within a second or two instead of after startup_wait plus that. Without
    it, a restart next to a real querier leaves the kernel enforcing an empty table
    until that querier's next General Query (up to a query interval).

    It is an ordinary query from our address, what every RFC 3376 router sends when it
    starts: a lower-addressed querier ignores it; a higher-addressed one stands down,
    as it would when we took the role after listening. The role itself still waits
    for startup_wait (and, with yield_to_routers, for silence from PIM/DVMRP/MRD).
    """
    q.solicit = False
    settings = snooper.settings
    timers = settings.timers
    snooper.counters["tx.query.solicit"] += 1
    snooper._emit(Notice("querier.solicit", (("address", q.our_address),
                                             ("listening_s", f"{settings.querier_startup_wait:g}"))))
    snooper._emit(SendQuery(
        version=settings.igmp_version, group=ANY, sources=(),
        max_response_time=min(timers.query_response_interval, timers.last_member_query_interval),
        suppress_router_processing=False, qrv=timers.robustness if timers.robustness <= 7 else 0,
        query_interval=timers.query_interval, source_address=q.our_address,
    ))


def run_querier(snooper: Snooper, q: QuerierState, now: float) -> None:
    """The querier's own schedule: election outcome, startup and general queries
    (RFC 3376 §6.6.2, §8.6, §8.7)."""
    settings = snooper.settings
    timers = settings.timers
    if q.mode is QuerierMode.OFF:
        q.role = Role.OFF
        return
    if q.solicit:
        solicit(snooper, q)
    if q.other_querier is not None and q.other_querier_at <= now:
        snooper._emit(Notice("querier.other_expired", (("querier", q.other_querier),)))
        q.other_querier = None
    may_query = q.should_query(settings, now)
    if may_query and q.role is not Role.QUERIER:
        q.role = Role.QUERIER
        q.next_query_at = now
        snooper._learned_gmi = 0.0  # our own timers apply again
        snooper._emit(Notice("querier.elected", (("address", q.our_address),)))
    elif not may_query and q.role is Role.QUERIER:
        q.role = Role.NON_QUERIER
        other = q.other_querier if q.other_querier_at > now else None
        routers = ",".join(r for r, at in snooper._routers.items() if at > now)
        snooper._emit(Notice("querier.standing_down", (("querier", other or "-"), ("routers", routers or "-"))))
    if q.role is not Role.QUERIER or q.next_query_at > now:
        return
    first = q.startup_left == timers.startup_query_count
    if q.startup_left > 0:
        q.startup_left -= 1
    q.next_query_at = now + (timers.startup_query_interval if q.startup_left > 0 else timers.query_interval)
    snooper.counters["tx.query.general"] += 1
    # The very first startup query asks for answers within LMQI rather than QRI, so
    # the table is rebuilt (and a kernel bridge, which waits one Max Resp Time after
    # the first query it sees before it enforces its MDB, starts pruning) sooner.
    mrt = min(timers.query_response_interval, timers.last_member_query_interval) if first else (
        timers.query_response_interval)
    snooper._emit(SendQuery(
        version=q.version(settings.igmp_version, now), group=ANY, sources=(), max_response_time=mrt,
        suppress_router_processing=False, qrv=timers.robustness if timers.robustness <= 7 else 0,
        query_interval=timers.query_interval, source_address=q.our_address,
    ))
