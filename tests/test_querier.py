"""The fallback querier on a real bridge: it starts enforcement, takes over from a
router that dies, yields to one that appears, and the kernel bridge never floods a
non-member port on the way (measured at that port, not assumed)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from .lab import Host, Lab, Stream, lab_session, wait_not_receiving, wait_receiving, wait_until
from .scenarios import ROUTER_ADDR, quiet_for
from .snoopd_proc import Snoopd

pytestmark = pytest.mark.netns
G = "239.1.1.1"
UNREGISTERED = "239.9.9.9"
OURS = "192.0.2.254"


@pytest.fixture
def lab() -> Iterator[Lab]:
    yield from lab_session("snq")


def role(d: Snoopd) -> str:
    return str(d.cli("querier")["role"])


def member_and_bystander(h1: Host, h2: Host, src: Host) -> tuple[Stream, Stream]:
    """h1 joins G and receives it; src streams G and an unregistered group; neither
    reaches h2 once the bridge enforces. Returns the two streams."""
    h1.join(G)
    stream = src.stream(G, rate=200)
    unregistered = src.stream(UNREGISTERED, rate=200)
    wait_receiving(h1, G, 20)
    wait_not_receiving(h2, G, stream, timeout=10)
    wait_not_receiving(h2, UNREGISTERED, unregistered, timeout=10)
    return stream, unregistered


def test_no_router_at_start_snoopd_queries_and_the_kernel_prunes_within_seconds(lab: Lab) -> None:
    sw = lab.switch(addr=OURS)
    h2 = lab.host("h2", "p2", "192.0.2.2")
    src = lab.host("src", "p3", "192.0.2.3")
    stream = src.stream(UNREGISTERED, rate=200)
    wait_receiving(h2, UNREGISTERED, 20, wire=True)  # a bridge without a querier floods
    start = time.monotonic()
    d = Snoopd(lab, sw)  # defaults, but the short test timers (startup_wait = QRI = 1 s)
    took = wait_not_receiving(h2, UNREGISTERED, stream, packets=20, timeout=15)
    assert time.monotonic() - start < 5.0, took
    assert role(d) == "querier"
    assert "querier.elected address=192.0.2.254" in d.log
    assert quiet_for(h2, UNREGISTERED, stream, packets=400) == 0
    queries = [c for c in h2.igmp() if c.type == 0x11 and c.src == OURS]
    assert queries and all(c.checksum_ok and c.ttl == 1 and c.router_alert for c in queries)
    assert not [c for c in h2.igmp() if c.type == 0x11 and c.src == "0.0.0.0"]  # kernel-only copies stay inside
    stream.stop()


# The contract's defaults (interface.md): QI 125 s, QRI 10 s, LMQI 1 s, startup_wait = QRI.
DEFAULT_IGMP = {"query_interval": 125.0, "query_response_interval": 10.0, "last_member_query_interval": 1.0}


def test_default_config_enforces_within_seconds_and_a_member_loses_nothing(lab: Lab) -> None:
    """Default config: snoopd listens 10 s before it takes the querier role, but its one
    solicitation at start has the hosts report within LMQI, so the kernel stops flooding
    within ~1.5 s; a host that joined before snoopd started gets every datagram."""
    sw = lab.switch(addr=OURS)
    h1 = lab.host("h1", "p1", "192.0.2.1")
    h2 = lab.host("h2", "p2", "192.0.2.2")
    src = lab.host("src", "p3", "192.0.2.3")
    h1.join(G)
    stream = src.stream(G, rate=200)
    unregistered = src.stream(UNREGISTERED, rate=200)
    wait_receiving(h1, G, 20)
    wait_receiving(h2, UNREGISTERED, 20, wire=True)  # no querier yet: the bridge floods
    sent0, got0 = stream.sent, h1.received(G)
    start = time.monotonic()
    d = Snoopd(lab, sw, igmp=DEFAULT_IGMP)
    wait_not_receiving(h2, UNREGISTERED, unregistered, packets=20, timeout=10)
    enforced = time.monotonic() - start
    assert enforced < 3.0, f"enforcement took {enforced:.2f} s"
    assert quiet_for(h2, G, stream, packets=200) == 0
    assert role(d) == "non-querier"  # still listening for another querier
    assert ("p1", G) in {(e["port"], e["group"]) for e in d.cli("mdb")["entries"]}
    ours = [c for c in h2.igmp() if c.type == 0x11 and c.src == OURS]
    assert len(ours) == 1 and ours[0].checksum_ok, [c.describe() for c in ours]
    assert "querier.solicit address=192.0.2.254 listening_s=10" in d.log
    # The member, joined before snoopd started, lost nothing across start and enforcement.
    sent = stream.sent - sent0
    time.sleep(0.1)
    lost = sent - (h1.received(G) - got0)
    assert lost <= 2, f"h1 lost {lost} of {sent} datagrams"
    # After startup_wait, nobody else heard: snoopd takes the role.
    wait_until(lambda: role(d) == "querier", 12, "snoopd to take the querier role")
    assert time.monotonic() - start >= 9.5
    print(f"\nenforced {enforced:.2f} s after start; h1 got {sent - lost} of {sent}")
    stream.stop()
    unregistered.stop()


def test_router_dies_snoopd_takes_over_and_nothing_floods(lab: Lab) -> None:
    """The test the users need most: the router is killed; within the other-querier-
    present interval snoopd is querier; the joined host still receives after twice the
    membership interval; a non-member port receives none of either stream throughout."""
    sw = lab.switch(addr=OURS)
    rq = lab.router_kernel_querier("rq", "pq", ROUTER_ADDR)
    h1 = lab.host("h1", "p1", "192.0.2.1")
    h2 = lab.host("h2", "p2", "192.0.2.2")
    src = lab.host("src", "p3", "192.0.2.3")
    d = Snoopd(lab, sw)
    wait_until(lambda: d.cli("querier")["querier"] == ROUTER_ADDR, 5, "the router to be querier")
    assert role(d) == "non-querier"
    stream, unregistered = member_and_bystander(h1, h2, src)
    before = (h2.seen(G), h2.seen(UNREGISTERED))
    killed = time.monotonic()
    rq.stop()  # the router and its port are gone
    oqpi = d.cli("querier")["timers"]["other_querier_present_interval"]
    wait_until(lambda: role(d) == "querier", oqpi + 2, "snoopd to take over")
    assert time.monotonic() - killed <= oqpi + 1.5
    gmi = d.cli("querier")["timers"]["membership_interval"]
    time.sleep(2 * gmi)  # memberships must survive on snoopd's queries alone
    wait_receiving(h1, G, 50)
    assert (h2.seen(G), h2.seen(UNREGISTERED)) == before, "the non-member port got traffic"
    assert d.members(G) == {"p1"}
    stream.stop()
    unregistered.stop()


def test_router_appears_snoopd_yields_and_nothing_floods(lab: Lab) -> None:
    sw = lab.switch(addr=OURS)
    h1 = lab.host("h1", "p1", "192.0.2.1")
    h2 = lab.host("h2", "p2", "192.0.2.2")
    src = lab.host("src", "p3", "192.0.2.3")
    d = Snoopd(lab, sw)
    wait_until(lambda: role(d) == "querier", 5, "snoopd to be querier")
    stream, unregistered = member_and_bystander(h1, h2, src)
    before = (h2.seen(G), h2.seen(UNREGISTERED))
    lab.router_kernel_querier("rq", "pq", ROUTER_ADDR)  # lower address: it wins
    wait_until(lambda: d.cli("querier")["querier"] == ROUTER_ADDR, 5, "the router to be querier")
    assert role(d) == "non-querier"
    assert "querier.standing_down querier=192.0.2.200" in d.log
    time.sleep(3)
    wait_receiving(h1, G, 50)
    assert (h2.seen(G), h2.seen(UNREGISTERED)) == before, "the non-member port got traffic"
    stream.stop()
    unregistered.stop()


def test_querier_json_shape(lab: Lab) -> None:
    sw = lab.switch(addr=OURS)
    d = Snoopd(lab, sw)
    wait_until(lambda: role(d) == "querier", 5, "snoopd to be querier")
    q = d.cli("querier")
    assert set(q) >= {"version", "role", "querier", "our_address", "querier_version", "other_querier_expires_in",
                      "timers"}
    assert q["version"] == 1 and q["querier"] == OURS == q["our_address"] and q["querier_version"] == 3
    assert q["other_querier_expires_in"] is None
    assert set(q["timers"]) == {"query_interval", "query_response_interval", "last_member_query_interval",
                                "last_member_query_count", "membership_interval", "other_querier_present_interval"}
    assert q["timers"]["query_interval"] == 2.0


def test_querier_follows_the_bridge_address(lab: Lab) -> None:
    sw = lab.switch()
    h2 = lab.host("h2", "p2", "192.0.2.2")
    d = Snoopd(lab, sw)
    wait_until(lambda: role(d) == "querier", 5, "snoopd to be querier")
    assert d.cli("querier")["our_address"] == "0.0.0.0"
    assert "querier.no_address" in d.log
    sw.ip("addr", "add", "192.0.2.250/24", "dev", "br0")
    wait_until(lambda: d.cli("querier")["our_address"] == "192.0.2.250", 5, "the new address")
    wait_until(lambda: [c for c in h2.igmp() if c.type == 0x11 and c.src == "192.0.2.250"], 5,
               "a query from the new address")
