"""RFC 3376 §6.4 transition tables, driven through the Snooper, with the result
states of the Linux kernel's selftest tools/testing/selftests/net/forwarding/
bridge_igmp.sh (v3inc_* and v3exc_* cases: INCLUDE(A={.1,.2,.3}) and
EXCLUDE(X={.1,.2}, Y={.20,.21}), each hit with the record of the case using
B = {.3,.4,.5} (INCLUDE cases) or A = {.1,.20,.30} (EXCLUDE cases))."""

from __future__ import annotations

import pytest

from snoopd.core.actions import FilterMode
from snoopd.core.messages import RecordType as RT
from snoopd.core.settings import CoreSettings, QuerierMode

from .fakeplane import Harness

G = "239.10.10.10"


def s(*last: int) -> tuple[str, ...]:
    return tuple(f"192.0.2.{n}" for n in last)


def xy(h: Harness, port: str = "p1") -> tuple[str, set[str], set[str]]:
    """(mode, X or A, Y) of the port's state, from the snapshot."""
    entry = next(e for e in h.snooper.snapshot(h.now).entries if e.group == G and e.port == port)
    fwd = {src.address for src in entry.sources if src.forwarding}
    blocked = {src.address for src in entry.sources if not src.forwarding}
    return entry.mode.value, fwd, blocked


def include_prepare(h: Harness) -> None:
    h.v3("p1", RT.ALLOW_NEW_SOURCES, G, s(1, 2, 3))
    assert xy(h) == ("include", set(s(1, 2, 3)), set())


def exclude_prepare(h: Harness) -> None:
    include_prepare(h)
    h.v3("p1", RT.MODE_IS_EXCLUDE, G, s(1, 2, 20, 21))
    assert xy(h) == ("exclude", set(s(1, 2)), set(s(20, 21)))


INCLUDE_CASES = [
    # (record, sources, expected mode, expected A/X, expected Y)   bridge_igmp.sh v3inc_*
    (RT.ALLOW_NEW_SOURCES, s(3, 4, 5), "include", s(1, 2, 3, 4, 5), ()),
    (RT.MODE_IS_INCLUDE, s(3, 4, 5), "include", s(1, 2, 3, 4, 5), ()),
    (RT.MODE_IS_EXCLUDE, s(3, 4, 5), "exclude", s(3), s(4, 5)),
    (RT.CHANGE_TO_INCLUDE_MODE, s(3, 4, 5), "include", s(1, 2, 3, 4, 5), ()),
    (RT.CHANGE_TO_EXCLUDE_MODE, s(3, 4, 5), "exclude", s(3), s(4, 5)),
    (RT.BLOCK_OLD_SOURCES, s(3, 4, 5), "include", s(1, 2, 3), ()),
]

EXCLUDE_CASES = [  # bridge_igmp.sh v3exc_*
    (RT.ALLOW_NEW_SOURCES, s(1, 20, 30), "exclude", s(1, 2, 20, 30), s(21)),
    (RT.MODE_IS_INCLUDE, s(1, 20, 30), "exclude", s(1, 2, 20, 30), s(21)),
    (RT.MODE_IS_EXCLUDE, s(1, 20, 30), "exclude", s(1, 30), s(20)),
    (RT.CHANGE_TO_INCLUDE_MODE, s(1, 20, 30), "exclude", s(1, 2, 20, 30), s(21)),
    (RT.CHANGE_TO_EXCLUDE_MODE, s(1, 20, 30), "exclude", s(1, 30), s(20)),
    (RT.BLOCK_OLD_SOURCES, s(1, 20, 30), "exclude", s(1, 2, 30), s(20, 21)),
]


@pytest.mark.parametrize(("rtype", "sources", "mode", "fwd", "blocked"), INCLUDE_CASES)
def test_include_mode_rows(rtype: RT, sources: tuple[str, ...], mode: str, fwd: tuple[str, ...],
                           blocked: tuple[str, ...]) -> None:
    """RFC 3376 §6.4.1/§6.4.2 rows for router state INCLUDE(A)."""
    h = Harness()
    include_prepare(h)
    h.v3("p1", rtype, G, sources)
    assert xy(h) == (mode, set(fwd), set(blocked))
    # The data plane agrees: forwarded sources reach p1, blocked ones do not.
    for src in fwd:
        assert "p1" in h.plane.receivers(G, src)
    for src in blocked:
        assert "p1" not in h.plane.receivers(G, src)


@pytest.mark.parametrize(("rtype", "sources", "mode", "fwd", "blocked"), EXCLUDE_CASES)
def test_exclude_mode_rows(rtype: RT, sources: tuple[str, ...], mode: str, fwd: tuple[str, ...],
                           blocked: tuple[str, ...]) -> None:
    """RFC 3376 §6.4.1/§6.4.2 rows for router state EXCLUDE(X, Y)."""
    h = Harness()
    exclude_prepare(h)
    h.v3("p1", rtype, G, sources)
    assert xy(h) == (mode, set(fwd), set(blocked))
    assert h.plane.entries[("p1", G)] == (FilterMode.EXCLUDE, frozenset(blocked))
    assert "p1" in h.plane.receivers(G, "192.0.2.77")  # unlisted sources flow in EXCLUDE


def test_exclude_block_new_sources_take_group_timer() -> None:
    """RFC 3376 §6.4.2: EXCLUDE + BLOCK(A): (A-X-Y)=GT, so .30 expires with the group."""
    h = Harness()
    exclude_prepare(h)
    h.advance(100)
    h.v3("p1", RT.BLOCK_OLD_SOURCES, G, s(30))
    entry = next(e for e in h.snooper.snapshot(h.now).entries if e.group == G)
    timers = {v.address: v.expires_at for v in entry.sources}
    assert timers[s(30)[0]] == entry.expires_at == pytest.approx(h.timers.membership_interval)


def test_include_source_timers_expire_one_by_one() -> None:
    """RFC 3376 §6.2.3 / §6.5: in INCLUDE mode an expired source is deleted; the group
    goes when the last one does."""
    h = Harness()
    h.v3("p1", RT.ALLOW_NEW_SOURCES, G, s(1))
    h.advance(100)
    h.v3("p1", RT.ALLOW_NEW_SOURCES, G, s(2))
    gmi = h.timers.membership_interval
    h.advance(gmi - 100 + 0.01)
    assert h.plane.entries[("p1", G)] == (FilterMode.INCLUDE, frozenset(s(2)))
    h.advance(100)
    assert ("p1", G) not in h.plane.entries


def test_exclude_group_timer_expiry_switches_to_include_x() -> None:
    """RFC 3376 §6.5: EXCLUDE group timer expiry -> INCLUDE(X), Y deleted."""
    h = Harness()
    exclude_prepare(h)
    h.advance(200)
    h.v3("p1", RT.ALLOW_NEW_SOURCES, G, s(7))  # .7 runs to 200 + GMI
    h.advance(h.timers.membership_interval - 200 + 0.01)  # group timer (and .1/.2) expired
    assert h.plane.entries[("p1", G)] == (FilterMode.INCLUDE, frozenset(s(7)))
    assert xy(h) == ("include", set(s(7)), set())


def test_exclude_source_timer_expiry_moves_source_to_y() -> None:
    """RFC 3376 §6.2.2: in EXCLUDE mode an expired source timer blocks the source
    but keeps the record."""
    h = Harness()
    exclude_prepare(h)  # .1 and .2 have GMI timers (set at t=0)
    h.advance(50)
    h.v3("p1", RT.MODE_IS_EXCLUDE, G, s(1, 2, 20, 21))  # refreshes the group timer only
    h.advance(h.timers.membership_interval - 50 + 0.01)
    assert xy(h) == ("exclude", set(), set(s(1, 2, 20, 21)))


def test_compat_v2_mode_ignores_block_and_strips_to_ex_sources() -> None:
    """RFC 3376 §7.3.2: in IGMPv2 compatibility mode BLOCK is ignored and TO_EX(x)
    is TO_EX({})."""
    h = Harness()
    h.v2_report(G, "p1", host="192.0.2.5")
    h.v3("p1", RT.CHANGE_TO_EXCLUDE_MODE, G, s(9))
    assert h.plane.entries[("p1", G)] == (FilterMode.EXCLUDE, frozenset())
    h.v3("p1", RT.BLOCK_OLD_SOURCES, G, s(1))
    assert h.plane.entries[("p1", G)] == (FilterMode.EXCLUDE, frozenset())
    assert next(e for e in h.snooper.snapshot(h.now).entries).compat == 2
    # After the older-host-present interval the group is back in v3 mode.
    h.v3("p1", RT.MODE_IS_EXCLUDE, G, ())
    h.advance(h.timers.older_host_present_interval + 1)
    h.v3("p1", RT.MODE_IS_EXCLUDE, G, ())
    assert next(e for e in h.snooper.snapshot(h.now).entries).compat == 3


def test_compat_v1_mode_ignores_leave() -> None:
    """RFC 3376 §7.3.2 / RFC 2236 §5: with an IGMPv1 host present, leaves are ignored."""
    settings = CoreSettings(querier_mode=QuerierMode.OFF)
    h = Harness(settings)
    h.snooper.set_port("p1", h.now, fast_leave=True)
    h.v2_report(G, "p1", host="192.0.2.5", version=1)
    h.v2_leave(G, "p1", host="192.0.2.5")
    assert ("p1", G) in h.plane.entries
    assert next(e for e in h.snooper.snapshot(h.now).entries).compat == 1
