"""The integration-test harness (tests/lab.py, tests/nshost.py) against a plain Linux bridge.

No snoopd here: these tests pin down what the harness and the kernel do, so that later
integration tests can trust both. Hosts join through their real kernels; the kernel
bridge's MDB (``bridge -j mdb show``) and the frames on the wire are the independent checks.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.lab import (
    REGISTRY,
    Lab,
    LabError,
    have_netns,
    lab_session,
    pid_alive,
    run,
    skip_or_fail,
    sweep_stale,
    wait_not_receiving,
    wait_receiving,
    wait_until,
)

pytestmark = pytest.mark.netns

GROUP = "239.1.1.1"
SSM_GROUP = "232.1.1.1"


@pytest.fixture
def lab() -> Iterator[Lab]:
    yield from lab_session("snpt")


def querier_switch(lab: Lab) -> None:
    # IGMPv3 querier: hosts forced to 3 stay on v3 (a v2 querier would turn them to v2, as
    # force_igmp_version=3 means "no enforcement"), and the kernel tracks hosts per port.
    lab.switch("sw", querier=True, igmp_version=3, query_interval=2.0, query_response_interval=1.0,
               last_member_interval=0.2, last_member_count=2)


def test_v2_and_v3_hosts_join_receive_and_leave(lab: Lab) -> None:
    querier_switch(lab)
    sw = lab.default_switch
    assert sw is not None
    h1 = lab.host("h1", "p1", "192.0.2.1", force_igmp_version=2)
    h2 = lab.host("h2", "p2", "192.0.2.2", force_igmp_version=3)
    h3 = lab.host("h3", "p3", "192.0.2.3")  # no join: must be pruned
    tx = lab.host("tx", "p9", "192.0.2.9")

    h1.join(GROUP)
    h2.join(GROUP)
    # The reports on the wire are the hosts' kernels' own, in the forced versions.
    wait_until(lambda: any(c.kind == "v2-report" and c.group == GROUP and not c.incoming for c in h1.igmp()),
               3, "h1's IGMPv2 report")
    wait_until(lambda: any(c.kind == "v3-report" and any(r[1] == GROUP for r in c.records)
                           and not c.incoming for c in h2.igmp()), 3, "h2's IGMPv3 report")
    # The kernel bridge learns both ports.
    wait_until(lambda: sw.members(GROUP) == {"p1", "p2"}, 5, "MDB {p1, p2}")

    stream = tx.stream(GROUP, rate=200)
    wait_receiving(h1, GROUP, 5)
    wait_receiving(h2, GROUP, 5)
    # Once the bridge enforces its MDB (one max response time after the first query),
    # the non-member's port gets nothing, which its sniffer sees without joining.
    wait_not_receiving(h3, GROUP, stream, timeout=10)

    left_at = time.monotonic()
    h1.leave(GROUP)
    wait_until(lambda: any(c.kind == "leave" and c.group == GROUP for c in h1.igmp()), 3, "h1's leave")
    wait_until(lambda: sw.members(GROUP) == {"p2"}, 3, "MDB {p2} after h1's leave")
    removed_after = time.monotonic() - left_at
    wait_not_receiving(h1, GROUP, stream, timeout=5)
    # last member count x interval = 0.4 s, plus polling
    assert removed_after < 2.0
    wait_receiving(h2, GROUP, 5)
    stream.stop()


def test_source_specific_join(lab: Lab) -> None:
    querier_switch(lab)
    sw = lab.default_switch
    assert sw is not None
    h1 = lab.host("h1", "p1", "192.0.2.1")
    tx = lab.host("tx", "p9", "192.0.2.9")
    tx2 = lab.host("tx2", "p10", "192.0.2.10")

    h1.join(SSM_GROUP, source="192.0.2.9")
    wait_until(lambda: any(("192.0.2.9" in r[2] and r[1] == SSM_GROUP and r[0] in (1, 5))
                           for c in h1.igmp() if c.kind == "v3-report" for r in c.records),
               3, "h1's IGMPv3 ALLOW/IS_IN report for (192.0.2.9, 232.1.1.1)")
    wait_until(lambda: sw.members(SSM_GROUP, source="192.0.2.9") == {"p1"}, 5, "(S,G) MDB entry on p1")

    wanted = tx.stream(SSM_GROUP, rate=100)
    other = tx2.stream(SSM_GROUP, rate=100)
    wait_receiving(h1, SSM_GROUP, 10)
    other.wait_sent(20)
    # The host's kernel delivers only the joined source, whatever reaches its wire.
    assert h1.received(SSM_GROUP, source="192.0.2.9") > 0
    assert h1.received(SSM_GROUP, source="192.0.2.10") == 0

    h1.drop_source(SSM_GROUP, "192.0.2.9")
    wait_until(lambda: not sw.members(SSM_GROUP, source="192.0.2.9"), 5, "(S,G) entry removed")
    wanted.stop()
    other.stop()


def test_two_hosts_behind_one_port(lab: Lab) -> None:
    querier_switch(lab)
    sw = lab.default_switch
    assert sw is not None
    hub = lab.hub("hub", "p4")
    h4 = lab.host("h4", "h4", "192.0.2.4", switch=hub)
    h5 = lab.host("h5", "h5", "192.0.2.5", switch=hub)
    tx = lab.host("tx", "p9", "192.0.2.9")

    h4.join(GROUP)
    h5.join(GROUP)
    wait_until(lambda: sw.members(GROUP) == {"p4"}, 5, "MDB {p4}")
    stream = tx.stream(GROUP, rate=200)
    wait_receiving(h4, GROUP, 5)
    wait_receiving(h5, GROUP, 5)

    # IGMPv3: the kernel tracks both hosts, so one leaving keeps the port.
    h4.leave(GROUP)
    wait_until(lambda: any(c.kind == "v3-report" and any(r[0] == 3 and r[1] == GROUP for r in c.records)
                           for c in h4.igmp()), 3, "h4's TO_IN({}) report")
    stream.wait_sent(100)  # well past the last member query time
    assert sw.members(GROUP) == {"p4"}
    wait_receiving(h5, GROUP, 5)

    h5.leave(GROUP)
    wait_until(lambda: not sw.members(GROUP), 3, "MDB entry gone after the last host left")
    wait_not_receiving(h5, GROUP, stream, timeout=5)
    stream.stop()


def test_stream_pacing_and_counts(lab: Lab) -> None:
    lab.switch("sw")  # no querier: the bridge floods, every port sees everything
    rx = lab.host("rx", "p1", "192.0.2.1")
    tx = lab.host("tx", "p9", "192.0.2.9")
    rx.join(GROUP)
    started = time.monotonic()
    sent = tx.send(GROUP, count=50, rate=500)
    took = time.monotonic() - started
    assert sent == 50
    assert took >= 49 / 500
    wait_until(lambda: rx.received(GROUP) == 50, 3, "all 50 datagrams delivered")
    assert rx.seen(GROUP) == 50
    assert rx.seen("239.9.9.9") == 0
    rx.reset(GROUP)
    assert rx.received(GROUP) == 0


def test_agent_errors_and_address_rules(lab: Lab) -> None:
    lab.switch("sw")
    h1 = lab.host("h1", "p1", "192.0.2.1")
    with pytest.raises(LabError, match="not joined"):
        h1.leave(GROUP)
    with pytest.raises(ValueError, match=r"239/8"):
        h1.join("225.1.1.1")
    with pytest.raises(ValueError, match=r"192\.0\.2\.0/24"):
        lab.host("h2", "p2", "10.0.0.2")
    h1.join("224.0.0.251")  # 224.0.0.x is allowed
    with pytest.raises(LabError, match="Errno"):  # the kernel's own error comes back
        h1.join("224.0.0.251")


def test_everything_removed_on_close_even_after_an_exception() -> None:
    if (reason := have_netns()) is not None:
        skip_or_fail(reason)
    with pytest.raises(RuntimeError, match="boom"), Lab("snpt") as lab:
        lab.switch("sw")
        h1 = lab.host("h1", "p1", "192.0.2.1")
        h1.stream(GROUP, rate=50)
        extra = lab.netns("x").spawn("sleeper", ["sleep", "600"])
        names = [ns.name for ns in lab.namespaces]
        pids = [p.pid for p in lab.processes]
        assert len(names) == 3 and extra.alive()
        raise RuntimeError("boom")
    assert lab.live_namespaces() == []
    assert not set(names) & set(run(["ip", "netns", "list"]).split())
    assert not [pid for pid in pids if pid_alive(pid)]
    assert not lab.dir.exists()
    assert not [n for n in names if (REGISTRY / n).exists()]


def test_stale_namespaces_of_dead_owners_are_swept() -> None:
    if (reason := have_netns()) is not None:
        skip_or_fail(reason)
    dead = subprocess.Popen(["true"])
    dead.wait()
    name = "snpz-stale-x"
    run(["ip", "netns", "add", name])
    try:
        REGISTRY.mkdir(parents=True, exist_ok=True)
        (REGISTRY / name).write_text(f"{dead.pid}\n")
        assert name in sweep_stale("snpz")
        assert name not in run(["ip", "netns", "list"]).split()
    finally:
        run(["ip", "netns", "del", name], check=False)
