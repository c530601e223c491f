"""Router-side state of one (port, group), RFC 3376 §6, and its transition tables.

A snooping switch keeps, per port, the state an IGMPv3 router keeps per
interface: filter mode, group timer and source timers. Absolute deadlines are
floats (``*_at``); a source timer of 0.0 means "not running" (the EXCLUDE-mode
"exclude list" Y of RFC 3376 §6.2.1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from snoopd.core.actions import FilterMode
from snoopd.core.messages import RecordType

INCLUDE = FilterMode.INCLUDE
EXCLUDE = FilterMode.EXCLUDE
STOPPED = 0.0  # a source timer that is not running (RFC 3376 §6.2.1 "timer = 0")
NO_SOURCES: frozenset[str] = frozenset()
_NO_TIMERS: dict[str, float] = {}  # never written to: see PortGroup.sources
ANY_SOURCE = (EXCLUDE, NO_SOURCES)  # the shared forwarding state of an any-source join


class HostState(NamedTuple):
    """One reporting host's own filter (explicit host tracking), for fast-leave."""

    mode: FilterMode
    sources: frozenset[str]
    version: int
    last_seen_at: float


@dataclass(slots=True, eq=False)
class PortGroup:
    port: str
    group: str
    mode: FilterMode = INCLUDE
    group_timer_at: float = 0.0  # EXCLUDE mode only (RFC 3376 §6.2.2)
    # source -> timer deadline or STOPPED. Starts as the shared empty dict (most
    # memberships are any-source joins); only _set() adds keys, and it copies first.
    sources: dict[str, float] = field(default_factory=lambda: _NO_TIMERS)
    hosts: dict[str, HostState] = field(default_factory=dict)
    v1_host_at: float = 0.0  # RFC 3376 §7.3.2 older-host-present timers
    v2_host_at: float = 0.0
    static_any: bool = False  # static (*,G): every source, never aged
    static_sources: frozenset[str] = NO_SOURCES  # static (S,G)
    installed: tuple[FilterMode, frozenset[str]] | None = None  # what the data plane has

    @property
    def learned(self) -> bool:
        """Learned state exists: EXCLUDE mode, or INCLUDE with sources."""
        return self.mode is EXCLUDE or bool(self.sources)

    def compat(self, now: float) -> int:
        """Group compatibility mode, RFC 3376 §7.3.2."""
        if self.v1_host_at > now:
            return 1
        if self.v2_host_at > now:
            return 2
        return 3

    def next_wakeup(self) -> float | None:
        """Earliest running timer of this (port, group)."""
        times = [t for t in self.sources.values() if t != STOPPED]
        if self.mode is EXCLUDE:
            times.append(self.group_timer_at)
        return min(times) if times else None

    def forwarding(self) -> tuple[FilterMode, frozenset[str]] | None:
        """What the data plane must do for this port: RFC 3376 §6.3 and §4.7 of the
        reference, with static entries merged in (union of wishes). None: nothing."""
        learned: tuple[FilterMode, frozenset[str]] | None
        if self.mode is EXCLUDE:
            blocked = [s for s, t in self.sources.items() if t == STOPPED] if self.sources else None
            learned = (EXCLUDE, frozenset(blocked)) if blocked else ANY_SOURCE
        elif self.sources:
            learned = (INCLUDE, frozenset(self.sources))
        else:
            learned = None
        if self.static_any:
            return ANY_SOURCE
        if self.static_sources:
            static = self.static_sources
            if learned is None:
                return (INCLUDE, static)
            if learned[0] is INCLUDE:
                return (INCLUDE, learned[1] | static)
            return (EXCLUDE, learned[1] - static)
        return learned

    def expire(self, now: float) -> None:
        """Apply every timer that has run out, RFC 3376 §6.2.2-§6.2.3 (§6.5)."""
        sources = self.sources
        if self.mode is INCLUDE:
            # INCLUDE: an expired source stops being forwarded and is deleted.
            for s in [s for s, t in sources.items() if t <= now]:
                del sources[s]
            return
        # EXCLUDE: an expired source moves from X to Y (kept, timer 0).
        for s, t in sources.items():
            if t != STOPPED and t <= now:
                sources[s] = STOPPED
        if self.group_timer_at <= now:
            # Group timer expiry: switch to INCLUDE(X), deleting Y.
            for s in [s for s, t in sources.items() if t == STOPPED]:
                del sources[s]
            self.mode = INCLUDE
            self.group_timer_at = 0.0


class QueryRequest(NamedTuple):
    """A "Send Q(G)" / "Send Q(G, S)" asked for by a table row (RFC 3376 §6.4.2)."""

    group_query: bool
    sources: frozenset[str]


NO_QUERY = QueryRequest(False, NO_SOURCES)


def _set(pg: PortGroup, sources: Iterable[str], at: float) -> None:
    if pg.sources is _NO_TIMERS:
        pg.sources = {}
    for s in sources:
        pg.sources[s] = at


def _delete(pg: PortGroup, sources: Iterable[str]) -> None:
    for s in sources:
        pg.sources.pop(s, None)


def _x_y(pg: PortGroup) -> tuple[set[str], set[str]]:
    x = {s for s, t in pg.sources.items() if t != STOPPED}
    return x, set(pg.sources) - x


# Each row: (state, sources B, now, GMI) -> queries to send. Citations are RFC 3376.
Row = Callable[[PortGroup, frozenset[str], float, float], QueryRequest]


def _in_is_in(pg: PortGroup, b: frozenset[str], now: float, gmi: float) -> QueryRequest:
    # §6.4.1 INCLUDE(A) + IS_IN(B) -> INCLUDE(A+B); (B)=GMI   (§6.4.2 ALLOW: the same)
    _set(pg, b, now + gmi)
    return NO_QUERY


def _in_is_ex(pg: PortGroup, b: frozenset[str], now: float, gmi: float) -> QueryRequest:
    # §6.4.1 INCLUDE(A) + IS_EX(B) -> EXCLUDE(A*B, B-A); (B-A)=0; Delete(A-B); GT=GMI
    a = set(pg.sources)
    _delete(pg, a - b)
    _set(pg, b - a, STOPPED)
    pg.mode, pg.group_timer_at = EXCLUDE, now + gmi
    return NO_QUERY


def _in_block(pg: PortGroup, b: frozenset[str], now: float, gmi: float) -> QueryRequest:
    # §6.4.2 INCLUDE(A) + BLOCK(B) -> INCLUDE(A); Send Q(G, A*B)
    return QueryRequest(False, frozenset(b & pg.sources.keys()))


def _in_to_ex(pg: PortGroup, b: frozenset[str], now: float, gmi: float) -> QueryRequest:
    # §6.4.2 INCLUDE(A) + TO_EX(B) -> EXCLUDE(A*B, B-A); (B-A)=0; Delete(A-B);
    #        Send Q(G, A*B); GT=GMI
    both = frozenset(b & pg.sources.keys())
    _in_is_ex(pg, b, now, gmi)
    return QueryRequest(False, both)


def _in_to_in(pg: PortGroup, b: frozenset[str], now: float, gmi: float) -> QueryRequest:
    # §6.4.2 INCLUDE(A) + TO_IN(B) -> INCLUDE(A+B); (B)=GMI; Send Q(G, A-B)
    a_minus_b = frozenset(pg.sources.keys() - b)
    _set(pg, b, now + gmi)
    return QueryRequest(False, a_minus_b)


def _ex_is_in(pg: PortGroup, b: frozenset[str], now: float, gmi: float) -> QueryRequest:
    # §6.4.1 EXCLUDE(X,Y) + IS_IN(A) -> EXCLUDE(X+A, Y-A); (A)=GMI   (§6.4.2 ALLOW: the same)
    _set(pg, b, now + gmi)
    return NO_QUERY


def _ex_is_ex(pg: PortGroup, a: frozenset[str], now: float, gmi: float) -> QueryRequest:
    # §6.4.1 EXCLUDE(X,Y) + IS_EX(A) -> EXCLUDE(A-Y, Y*A); (A-X-Y)=GMI; Delete(X-A);
    #        Delete(Y-A); GT=GMI
    _delete(pg, pg.sources.keys() - a)
    _set(pg, a - pg.sources.keys(), now + gmi)
    pg.group_timer_at = now + gmi
    return NO_QUERY


def _ex_block(pg: PortGroup, a: frozenset[str], now: float, gmi: float) -> QueryRequest:
    # §6.4.2 EXCLUDE(X,Y) + BLOCK(A) -> EXCLUDE(X+(A-Y), Y); (A-X-Y)=GT; Send Q(G, A-Y)
    _, y = _x_y(pg)
    _set(pg, a - pg.sources.keys(), pg.group_timer_at)
    return QueryRequest(False, frozenset(a - y))


def _ex_to_ex(pg: PortGroup, a: frozenset[str], now: float, gmi: float) -> QueryRequest:
    # §6.4.2 EXCLUDE(X,Y) + TO_EX(A) -> EXCLUDE(A-Y, Y*A); (A-X-Y)=GT; Delete(X-A);
    #        Delete(Y-A); Send Q(G, A-Y); GT=GMI
    _, y = _x_y(pg)
    _delete(pg, pg.sources.keys() - a)
    _set(pg, a - pg.sources.keys(), pg.group_timer_at)
    pg.group_timer_at = now + gmi
    return QueryRequest(False, frozenset(a - y))


def _ex_to_in(pg: PortGroup, a: frozenset[str], now: float, gmi: float) -> QueryRequest:
    # §6.4.2 EXCLUDE(X,Y) + TO_IN(A) -> EXCLUDE(X+A, Y-A); (A)=GMI; Send Q(G, X-A); Send Q(G)
    x, _ = _x_y(pg)
    _set(pg, a, now + gmi)
    return QueryRequest(True, frozenset(x - a))


RT = RecordType
TRANSITIONS: dict[tuple[FilterMode, RecordType], Row] = {
    (INCLUDE, RT.MODE_IS_INCLUDE): _in_is_in,
    (INCLUDE, RT.ALLOW_NEW_SOURCES): _in_is_in,
    (INCLUDE, RT.MODE_IS_EXCLUDE): _in_is_ex,
    (INCLUDE, RT.BLOCK_OLD_SOURCES): _in_block,
    (INCLUDE, RT.CHANGE_TO_EXCLUDE_MODE): _in_to_ex,
    (INCLUDE, RT.CHANGE_TO_INCLUDE_MODE): _in_to_in,
    (EXCLUDE, RT.MODE_IS_INCLUDE): _ex_is_in,
    (EXCLUDE, RT.ALLOW_NEW_SOURCES): _ex_is_in,
    (EXCLUDE, RT.MODE_IS_EXCLUDE): _ex_is_ex,
    (EXCLUDE, RT.BLOCK_OLD_SOURCES): _ex_block,
    (EXCLUDE, RT.CHANGE_TO_EXCLUDE_MODE): _ex_to_ex,
    (EXCLUDE, RT.CHANGE_TO_INCLUDE_MODE): _ex_to_in,
}


def compat_record(compat: int, record_type: RecordType, sources: frozenset[str]) -> (
    tuple[RecordType, frozenset[str]] | None
):
    """RFC 3376 §7.3.2: how a record is treated in IGMPv1/v2 group compatibility
    mode. None: ignore the record."""
    if compat == 3:
        return record_type, sources
    if record_type is RT.BLOCK_OLD_SOURCES:
        return None  # v1 and v2 mode: BLOCK(x) is ignored
    if record_type is RT.CHANGE_TO_EXCLUDE_MODE:
        return record_type, frozenset()  # TO_EX(x) -> TO_EX({})
    if compat == 1 and record_type is RT.CHANGE_TO_INCLUDE_MODE:
        return None  # v1 mode: TO_IN(x) (and v2 Leave, mapped to it) is ignored
    return record_type, sources


def host_after(old: HostState | None, record_type: RecordType, sources: frozenset[str],
               version: int, now: float) -> HostState:
    """The reporting host's own filter after one of its records (RFC 3376 §5.1 read
    backwards: what the host's state must be for it to send this record)."""
    if record_type in (RT.MODE_IS_INCLUDE, RT.CHANGE_TO_INCLUDE_MODE):
        return HostState(INCLUDE, sources, version, now)
    if record_type in (RT.MODE_IS_EXCLUDE, RT.CHANGE_TO_EXCLUDE_MODE):
        return HostState(EXCLUDE, sources, version, now)
    if old is None:  # a source-list change from a host we have not heard before
        old = HostState(INCLUDE, frozenset(), version, now)
    if record_type is RT.ALLOW_NEW_SOURCES:
        if old.mode is INCLUDE:
            return HostState(INCLUDE, old.sources | sources, version, now)
        return HostState(EXCLUDE, old.sources - sources, version, now)
    # BLOCK_OLD_SOURCES
    if old.mode is INCLUDE:
        return HostState(INCLUDE, old.sources - sources, version, now)
    return HostState(EXCLUDE, old.sources | sources, version, now)
