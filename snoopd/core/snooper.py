"""The Snooper: a deterministic IGMP snooping engine.

Decoded messages, port events and ``now`` go in; actions and one next deadline
come out. No sockets, no clock, no I/O (see the architecture guide).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from snoopd.core.actions import (
    Action,
    FilterMode,
    ForwardControl,
    InstallGroup,
    Notice,
    RemoveGroup,
    SetRouterPort,
)
from snoopd.core.membership import (
    ANY_SOURCE,
    EXCLUDE,
    NO_SOURCES,
    STOPPED,
    TRANSITIONS,
    HostState,
    PortGroup,
    compat_record,
    host_after,
)
from snoopd.core.messages import Leave, Message, Query, RecordType, Report, RouterHello, RouterProtocol
from snoopd.core.querier import ANY, QuerierState, Role, wins_against
from snoopd.core.queries import QueryScheduler, run_querier
from snoopd.core.settings import CoreSettings, PortSettings, QuerierMode, RouterMode
from snoopd.core.snapshot import EntryView, PortView, QuerierView, Snapshot, SourceView
from snoopd.core.timers import DeadlineQueue

TimerKey = PortGroup | tuple[str, ...]  # a (port, group) wakes up by its own object
_QUERIER_KEY: TimerKey = ("querier",)
_TO_IN = RecordType.CHANGE_TO_INCLUDE_MODE
_TO_EX = RecordType.CHANGE_TO_EXCLUDE_MODE
_IS_EX = RecordType.MODE_IS_EXCLUDE
# Record types of an any-source join (True) or leave (False), as admit() reads them.
_ANY_SOURCE_CHANGES = {_IS_EX: True, _TO_EX: True, _TO_IN: False}
_BLOCK = RecordType.BLOCK_OLD_SOURCES
_ALLOW = RecordType.ALLOW_NEW_SOURCES
_IS_IN = RecordType.MODE_IS_INCLUDE
DVMRP_NEIGHBOR_TIMEOUT = 35.0
_REPORT_COUNTER = {1: "rx.report.v1", 2: "rx.report.v2", 3: "rx.report.v3"}
_NO_PORTS: dict[str, PortGroup] = {}


def is_link_local(group: str) -> bool:
    """224.0.0.0/24 is never pruned nor installed (RFC 4541 §2.1.2(2))."""
    return group.startswith("224.0.0.")


@dataclass(slots=True)
class PortState:
    name: str
    up: bool = True
    router_learned_at: float = 0.0  # learned multicast-router port timer
    is_router: bool = False  # last value announced with SetRouterPort
    override: PortSettings | None = None  # run-time change (``snoopd port``)


class Snooper:
    """See the module docstring. Public methods are the core's whole interface."""

    def __init__(self, settings: CoreSettings, now: float, our_address: str | None = None) -> None:
        self.settings = settings
        self.counters: Counter[str] = Counter()
        self._now = now
        self._timers: DeadlineQueue[TimerKey] = DeadlineQueue()
        self._actions: list[Action] = []
        self._ports: dict[str, PortState] = {}
        self._groups: dict[str, dict[str, PortGroup]] = {}  # group -> port -> state
        self._memberships = 0
        self._group_sources: dict[str, Counter[str]] = {}  # group -> listed source -> ports listing it
        self._source_entries = 0
        self._router_ports: tuple[str, ...] | None = None  # cache, reset on any port change
        self._routers: dict[str, float] = {}  # router-presence source -> expiry
        self._learned_gmi = 0.0  # from the elected querier's QRV/QQIC (RFC 3376 §4.1.6-7)
        q = QuerierState(mode=settings.querier_mode, our_address=settings.querier_address or our_address or ANY)
        self._querier = q
        self._queries = QueryScheduler(self)
        if q.mode is QuerierMode.OFF:
            q.role = Role.OFF
        else:
            q.startup_left = settings.timers.startup_query_count
            if q.mode is QuerierMode.AUTO:
                q.listening_until = now + settings.querier_startup_wait
                q.solicit = settings.querier_startup_wait > 0
            self._run_querier(now)

    # ------------------------------------------------------------------ inputs

    def receive(self, message: Message, port: str, now: float, frame: bytes = b"") -> None:
        """One decoded message that arrived on ``port``."""
        self.handle_timers(now)
        if port not in self._ports:
            self.port_changed(port, now, up=True)
        if type(message) is Report:
            self._on_report(message, port, now)
        elif type(message) is Leave:
            self._on_leave(message, port, now)
        elif type(message) is Query:
            self._on_query(message, port, now)
        elif type(message) is RouterHello:
            self._on_router_hello(message, port, now)
        if frame:
            self._forward_control(message, port, frame)

    def admit(self, message: Message, port: str, now: float) -> tuple[list[str], list[str]]:
        """What ``receive(message, port, now)`` is certain to do first to the data plane
        for some groups of ``port``: (groups it installs as EXCLUDE {}, groups it
        removes). The data plane may do that before ``receive`` runs, which does the
        rest (timers, hosts, the forwarded report) and confirms each one with that
        same first action. Pure: nothing changes.

        Only the obvious cases count, each decided by the group's first record in the
        message, on a known, up port:
        - a new any-source join (IS_EX/TO_EX {} or a v1/v2 report) of a routable group
          with no state on the port, when the message cannot reach the group limit;
        - a fast leave (TO_IN {} or a v2 Leave) of a plain any-source membership (no
          static part, not in IGMPv1 compatibility) by its port's last active host.
        """
        if type(message) is Leave:
            return self._admit_changes(message.source, ((False, message.group),), port, now, True)
        if type(message) is not Report:
            return [], []
        records = message.records
        room = len(self._groups) + self._source_entries + len(records) + sum(len(r.sources) for r in records) \
            < self.settings.max_groups
        changes = ((None if r.sources else _ANY_SOURCE_CHANGES.get(r.record_type), r.group) for r in records)
        return self._admit_changes(message.source, changes, port, now, room)

    def admit_memberships(self, host: str, changes: Sequence[tuple[bool, str]], port: str,
                          now: float) -> tuple[list[str], list[str]]:
        """``admit`` of a message from ``host`` that is only any-source joins and leaves, as
        ``wire.peek_membership`` names them: ``changes`` is (join, group) per record, in
        order (an IGMPv2 report or leave is one). Same answer, without the message. Pure."""
        room = len(self._groups) + self._source_entries + len(changes) < self.settings.max_groups
        return self._admit_changes(host, changes, port, now, room)

    def _admit_changes(self, host: str, changes: Iterable[tuple[bool | None, str]], port: str, now: float,
                       room: bool) -> tuple[list[str], list[str]]:
        """``admit`` of records as (join, group): True an any-source join, False an
        any-source leave, None neither (it still decides for its group, being first)."""
        joins: list[str] = []
        leaves: list[str] = []
        state = self._ports.get(port)
        if state is None or not state.up:
            return joins, leaves
        seen: set[str] = set()
        for join, group in changes:
            if group in seen:
                continue
            seen.add(group)
            if join is not None and not group.startswith("224.0.0.") \
                    and self._admits(join, group, host, port, now, room):
                (joins if join else leaves).append(group)
        return joins, leaves

    def _admits(self, join: bool, group: str, host: str, port: str, now: float, room: bool) -> bool:
        """One any-source join or leave of ``admit``: a join of a group with no state on the
        port (while there is room), a leave that prunes the port at once."""
        pg = self._groups.get(group, _NO_PORTS).get(port)
        if join:
            return pg is None and room
        return self._fast_leaves(pg, host, now)

    def _fast_leaves(self, pg: PortGroup | None, host: str, now: float) -> bool:
        """Would a TO_IN {} from ``host`` prune ``pg`` at once (see ``_apply_record``)?"""
        if (pg is None or pg.installed != ANY_SOURCE or pg.mode is not EXCLUDE or pg.sources
                or pg.static_any or pg.static_sources or pg.compat(now) == 1
                or not self.port_settings(pg.port).fast_leave):
            return False
        return not self._active_hosts(pg, now, besides=host)

    def port_changed(self, port: str, now: float, *, up: bool, present: bool = True) -> None:
        """A bridge port appeared, went up or down, or was removed."""
        self._now = now
        self._router_ports = None
        state = self._ports.get(port)
        if not present:
            if state is None:
                return
            self._drop_port_groups(port, keep_static=False)
            self._set_router(state, False)
            del self._ports[port]
            self._timers.cancel(("router", port))
            self._emit(Notice("port.removed", (("port", port),)))
            return
        if state is None:
            state = self._ports[port] = PortState(port, up)
            self._emit(Notice("port.added", (("port", port), ("up", str(up).lower()))))
        elif state.up != up:
            state.up = up
            self._emit(Notice("port.up" if up else "port.down", (("port", port),)))
        if up:
            self._apply_static(port)
        else:
            # Memberships learned behind a port that went down are gone (like the
            # kernel bridge); static ones stay configured.
            self._drop_port_groups(port, keep_static=True)
        self._update_router(state, now)

    def address_changed(self, address: str | None, now: float) -> None:
        """The bridge's IPv4 address (the querier's source) changed."""
        self._now = now
        if self.settings.querier_address:
            return
        new = address or ANY
        if new != self._querier.our_address:
            self._querier.our_address = new
            self._emit(Notice("querier.address", (("address", new),)))
            self._run_querier(now)

    def set_port(self, port: str, now: float, *, fast_leave: bool | None = None,
                 router: RouterMode | None = None) -> None:
        """Change a port's settings at run time; the change lives until the config
        changes that port."""
        state = self._ports.get(port)
        if state is None:
            raise KeyError(port)
        current = self.port_settings(port)
        state.override = PortSettings(
            fast_leave=current.fast_leave if fast_leave is None else fast_leave,
            router=current.router if router is None else router,
        )
        self._update_router(state, now)

    def reconfigure(self, settings: CoreSettings, now: float) -> None:
        """Apply a reloaded config without losing learned memberships."""
        self.handle_timers(now)
        old = self.settings
        self.settings = settings
        for name, state in self._ports.items():
            if old.port(name) != settings.port(name):
                state.override = None  # the config changed this port: it wins
            self._update_router(state, now)
        if old.static != settings.static:
            for pg in list(self._all()):
                pg.static_any, pg.static_sources = False, NO_SOURCES
                self._sync(pg)
            for name, state in self._ports.items():
                if state.up:
                    self._apply_static(name)
        q = self._querier
        if settings.querier_mode is not old.querier_mode:
            q.mode = settings.querier_mode
            if q.mode is QuerierMode.OFF:
                q.role = Role.OFF
            elif q.role is Role.OFF:
                q.role = Role.NON_QUERIER
        if settings.querier_address != old.querier_address and settings.querier_address:
            q.our_address = settings.querier_address
        self._run_querier(now)
        self._emit(Notice("reconfigured"))

    # ----------------------------------------------------------------- outputs

    def handle_timers(self, now: float) -> None:
        """Run every timer that is due. O(1) when nothing is due."""
        self._now = now
        for key in self._timers.pop_due(now):
            if isinstance(key, PortGroup):
                self._expire(key, now)
                continue
            kind = key[0]
            if kind == "router":
                state = self._ports.get(key[1])
                if state is not None:
                    self._update_router(state, now)
            elif kind == "querier":
                self._run_querier(now)
            elif kind == "gsq":
                self._queries.run(key[1], now)

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    @property
    def actions_pending(self) -> bool:
        """Actions wait to be taken (``admit`` answers for an empty queue)."""
        return bool(self._actions)

    def take_actions(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    # ------------------------------------------------------------ helpers (API)

    def port_settings(self, port: str) -> PortSettings:
        state = self._ports.get(port)
        if state is not None and state.override is not None:
            return state.override
        return self.settings.port(port)

    def port_group(self, port: str, group: str) -> PortGroup | None:
        ports = self._groups.get(group)
        return ports.get(port) if ports is not None else None

    def _all(self) -> Iterator[PortGroup]:
        for ports in self._groups.values():
            yield from ports.values()

    def router_ports(self) -> tuple[str, ...]:
        cached = self._router_ports
        if cached is None:
            cached = self._router_ports = tuple(name for name, s in self._ports.items() if s.is_router and s.up)
        return cached

    def is_querier(self) -> bool:
        return self._querier.role is Role.QUERIER

    @property
    def group_count(self) -> int:
        return len(self._groups)

    @property
    def entry_count(self) -> int:
        """(group, source) entries: one per group plus one per distinct listed source
        (what ``max_groups`` limits, and what the kernel MDB holds)."""
        return len(self._groups) + self._source_entries

    @property
    def membership_count(self) -> int:
        return self._memberships

    # ---------------------------------------------------------------- messages

    def _on_report(self, report: Report, port: str, now: float) -> None:
        version = report.version
        self.counters[_REPORT_COUNTER.get(version, "rx.report.other")] += 1
        host = report.source
        refreshed_at = now + max(self.settings.timers.membership_interval, self._learned_gmi)
        older_host_at = now + self.settings.timers.older_host_present_interval
        groups = self._groups
        for record in report.records:
            group = record.group
            if group.startswith("224.0.0."):  # is_link_local(), inlined on the hot path
                self.counters["report.link_local_ignored"] += 1
                continue
            ports = groups.get(group)
            pg = ports.get(port) if ports is not None else None
            rtype = record.record_type
            if pg is None:
                if (rtype is _BLOCK or rtype is _TO_IN) and not record.sources:
                    continue  # leaving a group we do not have: nothing to do
                pg = self._create(port, group)
                if pg is None:
                    continue
            if version == 1:
                pg.v1_host_at = older_host_at
            elif version == 2:
                pg.v2_host_at = older_host_at
            if (rtype is _IS_EX or rtype is _TO_EX) and not record.sources and pg.mode is EXCLUDE and not pg.sources:
                # Fast path, the common refresh of an any-source join: RFC 3376 §6.4.1
                # EXCLUDE({},{}) + IS_EX({}) and §6.4.2 + TO_EX({}) only set GT=GMI (the
                # same in every compatibility mode). Nothing the data plane sees changes,
                # and the wake-up already queued is earlier, so no _sync is needed.
                pg.group_timer_at = refreshed_at
                pg.hosts[host] = HostState(EXCLUDE, NO_SOURCES, version, now)
                continue
            if (rtype is _ALLOW or rtype is _IS_IN) and record.sources:
                # Fast path: RFC 3376 §6.4.1/§6.4.2 IS_IN(B) and ALLOW(B) only set (B)=GMI,
                # in both modes and every compatibility mode. Forwarding changes only if a
                # source is new in INCLUDE mode or comes back from Y in EXCLUDE mode; every
                # other timer only moves later, so the queued wake-up stays valid.
                sources = frozenset(record.sources)
                if self._refresh_sources(pg, sources, refreshed_at):
                    self._sync(pg)
                pg.hosts[host] = host_after(pg.hosts.get(host), rtype, sources, version, now)
                continue
            sources = frozenset(record.sources) if record.sources else NO_SOURCES
            self._apply_record(pg, record.record_type, sources, host, version, now)

    @staticmethod
    def _refresh_sources(pg: PortGroup, sources: frozenset[str], at: float) -> bool:
        """Set the source timers to ``at``; True if what is forwarded changes."""
        timers = pg.sources
        if not timers:
            timers = pg.sources = {}  # never write into the shared empty dict
        include = pg.mode is not EXCLUDE
        changed = False
        for source in sources:
            t = timers.get(source)
            if (t is None and include) or t == STOPPED:
                changed = True
            timers[source] = at
        return changed

    def _on_leave(self, leave: Leave, port: str, now: float) -> None:
        self.counters["rx.leave.v2"] += 1
        pg = self.port_group(port, leave.group)
        if pg is None:
            return
        # RFC 3376 §7.3.2: a v2 Leave is TO_IN({}); ignored in IGMPv1 compatibility mode.
        self._apply_record(pg, _TO_IN, NO_SOURCES, leave.source, 2, now)

    def _apply_record(self, pg: PortGroup, rtype: RecordType, sources: frozenset[str], host: str,
                      version: int, now: float) -> None:
        translated = compat_record(pg.compat(now), rtype, sources)
        if translated is None:
            self.counters["record.ignored_compat"] += 1
            return
        rtype, sources = translated
        timers = self.settings.timers
        gmi = max(timers.membership_interval, self._learned_gmi)
        request = TRANSITIONS[(pg.mode, rtype)](pg, sources, now, gmi)
        # Explicit host tracking, for fast-leave that is safe with many hosts per port.
        new_host = host_after(pg.hosts.get(host), rtype, sources, version, now)
        if new_host.mode is FilterMode.INCLUDE and not new_host.sources:
            left = pg.hosts.pop(host, None) is not None or rtype is _TO_IN
        else:
            pg.hosts[host] = new_host
            left = False
        if left and self.port_settings(pg.port).fast_leave and not self._active_hosts(pg, now):
            # Fast leave: the last known host of this port has left; prune at once.
            self.counters["fast_leave"] += 1
            self._clear_learned(pg)
        elif request.group_query or request.sources:
            self._queries.request(pg, request, now)
        self._sync(pg)

    def _active_hosts(self, pg: PortGroup, now: float, besides: str | None = None) -> list[str]:
        """Hosts still interested (other than ``besides``). IGMPv3 hosts never suppress
        reports, so one not heard for a membership interval is gone; v1/v2 hosts
        suppress theirs (RFC 2236 §3), so they are only forgotten by their own leave or
        with the group."""
        gmi = max(self.settings.timers.membership_interval, self._learned_gmi)
        return [h for h, s in pg.hosts.items() if h != besides and (s.version < 3 or s.last_seen_at + gmi > now)]

    def _on_query(self, query: Query, port: str, now: float) -> None:
        self.counters[f"rx.query.v{query.version}"] += 1
        timers = self.settings.timers
        q = self._querier
        if query.source != ANY:
            self._learn_router(port, now + timers.other_querier_present_interval, now)
        if query.is_general and query.source != ANY:
            if query.version == 1:
                q.older_querier_v1_at = now + timers.older_host_present_interval
            elif query.version == 2:
                q.older_querier_v2_at = now + timers.older_host_present_interval
            wins = wins_against(query.source, q.our_address)
            if wins:
                # RFC 3376 §6.6.2: a lower address is querier; we stand by.
                if q.other_querier != query.source:
                    self._emit(Notice("querier.other", (("querier", query.source), ("port", port))))
                q.other_querier = query.source
                q.other_querier_at = now + timers.other_querier_present_interval
            if wins or q.role is not Role.QUERIER:
                # Whoever queries while we do not (it won, or we yield to a router) is the
                # segment's querier: show it, and adopt its robustness and interval as
                # non-queriers do (RFC 3376 §4.1.6-4.1.7), never going below our own GMI.
                q.heard_querier = query.source
                q.heard_querier_at = now + timers.other_querier_present_interval
                if query.version == 3 and query.qrv and query.query_interval:
                    self._learned_gmi = query.qrv * query.query_interval + query.max_response_time
            if wins:
                self._run_querier(now)
        if not query.is_general and not query.suppress_router_processing:
            # RFC 3376 §6.6.1 / RFC 2236 §3: a specific query heard lowers timers to
            # LMQC x its Max Resp Time, on every port of the group.
            self._lower_on_query(query, now + timers.last_member_query_count * query.max_response_time)

    def _lower_on_query(self, query: Query, at: float) -> None:
        for pg in self._groups.get(query.group, {}).values():
            if query.sources:
                for s in query.sources:
                    t = pg.sources.get(s)
                    if t is not None and t != STOPPED and t > at:
                        pg.sources[s] = at
            elif pg.mode is EXCLUDE and pg.group_timer_at > at:
                pg.group_timer_at = at
            self._schedule_pg(pg)

    def _on_router_hello(self, hello: RouterHello, port: str, now: float) -> None:
        self.counters[f"rx.router.{hello.protocol.value}"] += 1
        oqpi = self.settings.timers.other_querier_present_interval
        hold = hello.holdtime
        if hold is None:
            # DVMRP probes carry no holdtime: its neighbour timeout is 35 s (DVMRPv3
            # draft; mrouted probes every 10 s). Otherwise the querier interval.
            hold = DVMRP_NEIGHBOR_TIMEOUT if hello.protocol is RouterProtocol.DVMRP else oqpi
        self._learn_router(port, now + hold, now)
        if hold <= 0:
            self._routers.pop(hello.source, None)
        else:
            if hello.source not in self._routers:
                self._emit(Notice("router.detected", (("router", hello.source), ("port", port),
                                                      ("protocol", hello.protocol.value))))
            # Stay silent while the router lives, and one OQPI of silence after.
            self._routers[hello.source] = now + max(hold, oqpi)
        self._querier.router_present_at = max(self._routers.values(), default=0.0)
        self._run_querier(now)

    def _forward_control(self, message: Message, port: str, frame: bytes) -> None:
        """RFC 4541 §2.1.1: reports and leaves go to router ports only, never back out
        of the ingress port; queries go to every other port."""
        if type(message) is Query:
            ports = tuple(p for p, s in self._ports.items() if s.up and p != port)
            self._emit(ForwardControl(frame, port, ports, True))
        elif type(message) is Report or type(message) is Leave:
            ports = tuple(p for p in self.router_ports() if p != port)
            if ports:
                self.counters["tx.forwarded"] += 1
                self._emit(ForwardControl(frame, port, ports, False))

    # ------------------------------------------------------------ table upkeep

    def _create(self, port: str, group: str) -> PortGroup | None:
        ports = self._groups.get(group)
        if ports is None:
            if self.entry_count >= self.settings.max_groups:
                self.counters["groups.refused_limit"] += 1
                if self.counters["groups.refused_limit"] == 1:
                    self._emit(Notice("groups.limit_reached", (("max_groups", str(self.settings.max_groups)),)))
                return None
            ports = self._groups[group] = {}
        pg = ports[port] = PortGroup(port, group)
        self._memberships += 1
        return pg

    def _clear_learned(self, pg: PortGroup) -> None:
        pg.mode, pg.group_timer_at = FilterMode.INCLUDE, 0.0
        pg.sources.clear()
        pg.hosts.clear()

    def _expire(self, pg: PortGroup, now: float) -> None:
        pg.expire(now)
        if not pg.learned:
            pg.hosts.clear()
        self._sync(pg)

    def _schedule_pg(self, pg: PortGroup) -> None:
        at = pg.next_wakeup()
        if at is not None:
            self._timers.schedule(pg, at)

    def _sync(self, pg: PortGroup) -> None:
        """Tell the data plane what changed, delete empty state, re-arm the timer."""
        state = pg.forwarding()
        if state != pg.installed:
            self._count_sources(pg.group, pg.installed, state)
            if state is None:
                self._emit(RemoveGroup(pg.port, pg.group))
                self._emit(Notice("group.left", (("port", pg.port), ("group", pg.group))))
            else:
                if pg.installed is None:
                    self._emit(Notice("group.joined", (("port", pg.port), ("group", pg.group))))
                self._emit(InstallGroup(pg.port, pg.group, state[0], state[1]))
            pg.installed = state
        if state is None and not pg.learned:
            ports = self._groups[pg.group]
            del ports[pg.port]
            self._memberships -= 1
            self._timers.cancel(pg)
            if not ports:
                del self._groups[pg.group]
                self._queries.forget(pg.group)
            return
        self._schedule_pg(pg)

    def _count_sources(self, group: str, old: tuple[FilterMode, frozenset[str]] | None,
                       new: tuple[FilterMode, frozenset[str]] | None) -> None:
        """Keep count of the (S,G) entries the data plane holds: one per distinct source
        listed for a group on any port (the kernel makes one MDB entry for each)."""
        before = old[1] if old else NO_SOURCES
        after = new[1] if new else NO_SOURCES
        if before == after:
            return
        counts = self._group_sources.setdefault(group, Counter())
        for s in before - after:
            counts[s] -= 1
            if counts[s] <= 0:
                del counts[s]
                self._source_entries -= 1
        for s in after - before:
            if counts[s] == 0:
                self._source_entries += 1
            counts[s] += 1
        if not counts:
            del self._group_sources[group]

    def _drop_port_groups(self, port: str, keep_static: bool) -> None:
        for pg in [pg for pg in self._all() if pg.port == port]:
            self._clear_learned(pg)
            if not keep_static:
                pg.static_any, pg.static_sources = False, NO_SOURCES
            self._sync(pg)

    def _apply_static(self, port: str) -> None:
        for static in self.settings.static:
            if static.port != port:
                continue
            pg = self.port_group(port, static.group) or self._create(port, static.group)
            if pg is None:
                continue
            if static.source is None:
                pg.static_any = True
            else:
                pg.static_sources = pg.static_sources | {static.source}
            self._sync(pg)

    # ------------------------------------------------------------ router ports

    def _learn_router(self, port: str, until: float, now: float) -> None:
        """Refresh a learned router port; a query must not cut short a PIM holdtime
        (keep the later expiry). ``until <= now`` (a PIM goodbye) ends it now."""
        state = self._ports.get(port)
        if state is None:
            return
        state.router_learned_at = until if until <= now else max(state.router_learned_at, until)
        self._update_router(state, now)

    def _update_router(self, state: PortState, now: float) -> None:
        mode = self.port_settings(state.name).router
        learned = state.router_learned_at > now
        is_router = state.up and (mode is RouterMode.ON or (mode is RouterMode.AUTO and learned))
        self._set_router(state, is_router)
        if learned and mode is RouterMode.AUTO:
            self._timers.schedule(("router", state.name), state.router_learned_at)

    def _set_router(self, state: PortState, is_router: bool) -> None:
        if is_router != state.is_router:
            state.is_router = is_router
            self._router_ports = None
            self._emit(SetRouterPort(state.name, is_router))
            self._emit(Notice("router_port.added" if is_router else "router_port.removed",
                              (("port", state.name),)))

    # ----------------------------------------------------------------- querier

    def _run_querier(self, now: float) -> None:
        run_querier(self, self._querier, now)
        at = self._querier.next_wakeup(now)
        if at is not None:
            self._timers.schedule(_QUERIER_KEY, at)

    def _emit(self, action: Action) -> None:
        self._actions.append(action)

    # ---------------------------------------------------------------- snapshot

    def snapshot(self, now: float | None = None) -> Snapshot:
        """Everything the CLI shows. O(table); no copies of the live state escape."""
        now = self._now if now is None else now
        entries = []
        for pg in self._all():
            state = pg.forwarding()
            if state is None:
                continue
            exclude = pg.mode is EXCLUDE
            sources = tuple(
                SourceView(s, t != STOPPED, t if t != STOPPED else None) for s, t in pg.sources.items()
            ) + tuple(SourceView(s, True, None) for s in pg.static_sources if s not in pg.sources)
            learned = pg.learned
            entries.append(EntryView(
                pg.group, pg.port, state[0], sources, tuple(pg.hosts),
                pg.group_timer_at if exclude and learned else None, pg.compat(now),
                "learned" if learned else "static",
            ))
        groups_per_port = Counter(pg.port for pg in self._all())
        ports = tuple(
            PortView(name, s.up, self.port_settings(name).router.value, s.is_router,
                     s.router_learned_at if s.router_learned_at > now else None,
                     self.port_settings(name).fast_leave, groups_per_port[name])
            for name, s in self._ports.items()
        )
        q = self._querier
        if q.role is Role.QUERIER:
            querier_addr: str | None = q.our_address
        elif q.other_querier_at > now:
            querier_addr = q.other_querier
        else:
            querier_addr = q.heard_querier if q.heard_querier_at > now else None
        view = QuerierView(
            q.role.value, querier_addr, q.our_address, q.version(self.settings.igmp_version, now),
            q.other_querier_at if q.other_querier_at > now else None,
            tuple(r for r, at in self._routers.items() if at > now),
        )
        return Snapshot(now, tuple(entries), ports, view)
