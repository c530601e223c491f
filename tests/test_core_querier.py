"""Querier election (RFC 3376 §6.6.2, RFC 4541 §2.1.1(4)), the querier's schedule
(RFC 3376 §8.6-§8.7) and last-member processing as querier (§6.4.2, §6.6.3)."""

from __future__ import annotations

import pytest

from snoopd.core.messages import RecordType as RT
from snoopd.core.messages import RouterHello, RouterProtocol
from snoopd.core.settings import CoreSettings, QuerierMode, Timers

from .fakeplane import Harness

G = "239.1.1.1"
OURS = "192.0.2.100"


def querier(mode: QuerierMode = QuerierMode.AUTO, address: str | None = OURS, **kw: object) -> Harness:
    settings = CoreSettings(querier_mode=mode, **kw)  # type: ignore[arg-type]
    return Harness(settings, address=address)


def general(h: Harness) -> list[tuple[float, object]]:
    return [(t, q) for t, q in h.plane.queries if q.group == "0.0.0.0"]


def test_auto_solicits_once_listens_then_sends_startup_queries() -> None:
    h = querier()
    t = h.timers
    # One General Query at once (answers within LMQI), then listening, not querier.
    [(when, solicit)] = general(h)
    assert when == 0.0 and not h.snooper.is_querier()
    assert solicit.max_response_time == t.last_member_query_interval and solicit.source_address == OURS
    assert h.snooper.counters["tx.query.solicit"] == 1
    assert any(n.event == "querier.solicit" for n in h.plane.notices)
    h.advance(t.query_response_interval - 0.01)  # startup_wait defaults to QRI
    assert len(general(h)) == 1 and not h.snooper.is_querier()
    h.advance(0.01)
    h.advance(t.startup_query_interval * (t.startup_query_count - 1) + t.query_interval * 2 + 0.001)
    times = [when for when, _ in general(h)]
    expected = [0.0, 10.0, 10.0 + 31.25, 10.0 + 31.25 + 125.0, 10.0 + 31.25 + 250.0]
    assert times == pytest.approx(expected)
    first, second = general(h)[1][1], general(h)[2][1]
    assert first.max_response_time == t.last_member_query_interval  # fast first answers
    assert second.max_response_time == t.query_response_interval
    assert first.version == 3 and first.source_address == OURS and first.qrv == 2 and first.query_interval == 125.0


@pytest.mark.parametrize(("mode", "wait"), [(QuerierMode.AUTO, 0.0), (QuerierMode.ALWAYS, None),
                                          (QuerierMode.ALWAYS, 10.0)])
def test_no_solicitation_when_the_startup_queries_start_at_once(mode: QuerierMode, wait: float | None) -> None:
    h = querier(mode, startup_wait=wait)
    [(when, first)] = general(h)  # the first startup query, as querier
    assert when == 0.0 and h.snooper.is_querier() and h.snooper.counters["tx.query.solicit"] == 0
    assert first.max_response_time == h.timers.last_member_query_interval


def test_solicitation_heard_by_a_lower_querier_changes_nothing() -> None:
    """The solicitation goes out once; a lower-addressed querier heard while we listen
    keeps the role, and neither a reload nor its expiry brings a second solicitation."""
    h = querier()
    h.query("p3", "192.0.2.50")
    h.advance(h.timers.query_response_interval + 1)
    assert not h.snooper.is_querier() and len(general(h)) == 1
    h.snooper.reconfigure(h.snooper.settings, h.now)
    h.advance(1)
    assert len(general(h)) == 1 and h.snooper.counters["tx.query.solicit"] == 1


def test_lower_address_wins_and_we_resume_after_oqpi() -> None:
    h = querier(QuerierMode.ALWAYS)
    assert h.snooper.is_querier()
    h.query("p3", "192.0.2.50")  # lower than ours
    assert not h.snooper.is_querier()
    assert any(n.event == "querier.standing_down" for n in h.plane.notices)
    sent = len(general(h))
    h.advance(h.timers.other_querier_present_interval - 0.01)
    assert len(general(h)) == sent
    h.advance(0.02)
    assert h.snooper.is_querier() and len(general(h)) == sent + 1


def test_higher_address_does_not_win() -> None:
    h = querier(QuerierMode.ALWAYS)
    h.query("p3", "192.0.2.200")
    assert h.snooper.is_querier()


def test_zero_address_query_never_wins() -> None:
    """RFC 4541 §2.1.1(4)."""
    h = querier(QuerierMode.ALWAYS)
    h.query("p3", "0.0.0.0")
    assert h.snooper.is_querier()


def test_without_address_we_lose_to_any_real_querier() -> None:
    h = querier(QuerierMode.ALWAYS, address=None)
    assert general(h)[0][1].source_address == "0.0.0.0"
    h.query("p3", "192.0.2.250")
    assert not h.snooper.is_querier()


def test_off_never_queries() -> None:
    h = querier(QuerierMode.OFF)
    h.advance(1000)
    assert h.plane.queries == [] and h.snooper.snapshot().querier.role == "off"


@pytest.mark.parametrize("protocol", list(RouterProtocol))
def test_auto_yields_to_routers_whatever_the_address(protocol: RouterProtocol) -> None:
    h = querier(startup_wait=0.0)
    assert h.snooper.is_querier()
    for _ in range(10):  # the router lives for 300 s, hello every 30 s
        h.send(RouterHello(protocol, "192.0.2.250", "224.0.0.13", 105.0), "p3")
        sent = len(general(h))
        h.advance(30)
        assert len(general(h)) == sent and not h.snooper.is_querier()
    # Router gone: we resume after the other-querier-present interval of silence.
    h.advance(h.timers.other_querier_present_interval)
    assert h.snooper.is_querier()


def test_always_ignores_routers_but_keeps_election() -> None:
    h = querier(QuerierMode.ALWAYS)
    h.send(RouterHello(RouterProtocol.PIM, "192.0.2.250", "224.0.0.13", 105.0), "p3")
    assert h.snooper.is_querier()


def test_version_drops_to_older_querier() -> None:
    """RFC 3376 §7.3.1."""
    h = querier(QuerierMode.ALWAYS)
    h.query("p3", "192.0.2.200", version=2)
    assert h.snooper.snapshot().querier.querier_version == 2
    h.advance(h.timers.older_host_present_interval + 1)
    assert h.snooper.snapshot().querier.querier_version == 3


def test_leave_as_querier_sends_lmqc_group_queries_and_prunes_after_lmqt() -> None:
    """RFC 3376 §6.4.2 TO_IN({}) -> Send Q(G); §6.6.3.1 LMQC queries LMQI apart."""
    h = querier(QuerierMode.ALWAYS)
    h.v2_report(G, "p1")
    h.plane.queries.clear()
    h.v2_leave(G, "p1")
    h.advance(h.timers.last_member_query_time - 0.01)
    specific = [(t, q) for t, q in h.plane.queries if q.group == G]
    assert [t for t, _ in specific] == pytest.approx([0.0, 1.0])
    assert all(not q.suppress_router_processing and q.max_response_time == 1.0 for _, q in specific)
    assert h.plane.receivers(G) == {"p1"}
    h.advance(0.02)
    assert h.plane.receivers(G) == set()


def test_report_during_last_member_queries_sets_s_flag_and_keeps_group() -> None:
    """RFC 3376 §6.6.3.1: S=1 when the group timer is above LMQT again."""
    h = querier(QuerierMode.ALWAYS)
    h.v2_report(G, "p1")
    h.plane.queries.clear()
    h.v2_leave(G, "p1", host="192.0.2.1")
    h.advance(0.5)
    h.v2_report(G, "p1", host="192.0.2.2")
    h.advance(5)
    flags = [q.suppress_router_processing for _, q in h.plane.queries if q.group == G]
    assert flags == [False, True]
    assert h.plane.receivers(G) == {"p1"}


def test_block_as_querier_sends_gss_query_and_expires_source() -> None:
    """RFC 3376 §6.4.2 INCLUDE(A) + BLOCK(B): Send Q(G, A*B); §6.6.3.2."""
    h = querier(QuerierMode.ALWAYS)
    h.v3("p1", RT.ALLOW_NEW_SOURCES, "232.1.1.1", ("192.0.2.50", "192.0.2.51"))
    h.plane.queries.clear()
    h.v3("p1", RT.BLOCK_OLD_SOURCES, "232.1.1.1", ("192.0.2.50",))
    h.advance(h.timers.last_member_query_time + 0.01)
    gss = [q for _, q in h.plane.queries if q.group == "232.1.1.1"]
    assert [q.sources for q in gss] == [("192.0.2.50",), ("192.0.2.50",)]
    assert h.plane.receivers("232.1.1.1", "192.0.2.50") == set()
    assert h.plane.receivers("232.1.1.1", "192.0.2.51") == {"p1"}


def test_non_querier_sends_no_specific_queries() -> None:
    h = querier(QuerierMode.OFF)
    h.v2_report(G, "p1")
    h.v2_leave(G, "p1")
    h.advance(5)
    assert h.plane.queries == []


def test_timers_derive_rfc_defaults() -> None:
    t = Timers.derive(robustness=3, query_interval=10.0, query_response_interval=2.0)
    assert (t.membership_interval, t.other_querier_present_interval) == (32.0, 31.0)
    assert (t.startup_query_interval, t.startup_query_count, t.last_member_query_count) == (2.5, 3, 3)


def test_query_does_not_cut_short_a_pim_holdtime() -> None:
    """A router port learned from a PIM hello (holdtime 105 s) stays one after that
    router's queries stop, until the holdtime runs out."""
    h = querier(QuerierMode.AUTO, timers=Timers.derive(query_interval=2.0, query_response_interval=1.0))
    h.send(RouterHello(RouterProtocol.PIM, "192.0.2.250", "224.0.0.13", 105.0), "p3")
    h.query("p3", "192.0.2.250")  # alone it would make p3 a router port for 4.5 s
    h.advance(10)
    assert h.plane.routers == {"p3"}
    h.advance(96)
    assert h.plane.routers == set()


def test_yielding_to_a_higher_router_shows_it_and_adopts_its_timers() -> None:
    """We are silent for a PIM router at a higher address: it is the segment's querier;
    snoopd shows it and uses its robustness x interval + MRT as membership interval."""
    h = querier(QuerierMode.AUTO, startup_wait=0.0)
    h.send(RouterHello(RouterProtocol.PIM, "192.0.2.250", "224.0.0.13", 105.0), "p3")
    from snoopd.core.messages import Query

    h.send(Query(3, "0.0.0.0", "192.0.2.250", "224.0.0.1", 10.0, (), False, 2, 300.0), "p3")
    assert h.snooper.snapshot().querier.querier == "192.0.2.250"
    h.v2_report(G, "p1")
    h.advance(h.timers.membership_interval + 1)  # ours: 260 s; the router's: 2 x 300 + 10
    assert h.plane.receivers(G) == {"p1"}
    h.advance(2 * 300 + 10 - h.timers.membership_interval)
    assert h.plane.receivers(G) == set()
