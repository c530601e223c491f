"""snoopd on a namespace bridge with real hosts.

The forwarding scenarios (tests/scenarios.py) run in both modes: kernel mode (snoopd
programs the kernel MDB) and software mode (snoopd replicates the frames itself); the
tests after them are about kernel mode only."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import pytest

from . import scenarios
from .lab import Lab, lab_session, wait_until
from .snoopd_proc import Snoopd

pytestmark = pytest.mark.netns
MODES = ["kernel", "software"]


@pytest.fixture
def lab() -> Iterator[Lab]:
    yield from lab_session("snk")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("igmp_version", [1, 2, 3])
def test_joined_and_router_ports_only(lab: Lab, mode: str, igmp_version: int) -> None:
    scenarios.joined_and_router_ports_only(lab, mode, igmp_version)


@pytest.mark.parametrize("mode", MODES)
def test_leave_prunes_after_last_member_time(lab: Lab, mode: str) -> None:
    scenarios.leave_prunes_after_last_member_time(lab, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("igmp_version", [2, 3])
def test_fast_leave_prunes_at_once(lab: Lab, mode: str, igmp_version: int) -> None:
    scenarios.fast_leave_prunes_at_once(lab, mode, igmp_version)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("igmp_version", [2, 3])
def test_two_hosts_one_port_fast_leave(lab: Lab, mode: str, igmp_version: int) -> None:
    scenarios.two_hosts_one_port_fast_leave(lab, mode, igmp_version)


@pytest.mark.parametrize("mode", MODES)
def test_source_specific_join(lab: Lab, mode: str) -> None:
    scenarios.source_specific_join(lab, mode)


@pytest.mark.parametrize("mode", MODES)
def test_link_local_reaches_every_port(lab: Lab, mode: str) -> None:
    scenarios.link_local_reaches_every_port(lab, mode)


@pytest.mark.parametrize("mode", MODES)
def test_port_removed_and_readded(lab: Lab, mode: str) -> None:
    scenarios.port_removed_and_readded(lab, mode)


# ------------------------------------------------------------------ kernel only

def own_entries(lab: Lab) -> list[dict[str, object]]:
    sw = lab.default_switch
    assert sw is not None
    return [e for e in sw.mdb() if "200" in str(e.get("protocol"))]


def test_stop_puts_the_bridge_back(lab: Lab) -> None:
    sw = lab.switch(addr="192.0.2.254")
    h1 = lab.host("h1", "p1", "192.0.2.1")
    before = sw.bridge_options()
    port_before = json.loads(sw.ip("-j", "-d", "link", "show", "dev", "p1"))[0]["linkinfo"]["info_slave_data"]
    d = Snoopd(lab, sw, querier={"startup_wait": 0.0})
    h1.join(scenarios.G)
    wait_until(lambda: sw.members(scenarios.G) == {"p1"}, 5, "the kernel MDB entry")
    assert "bpf" in sw.exec("tc", "filter", "show", "dev", "p1", "ingress")
    assert sw.bridge_options()["mcast_hash_max"] > before["mcast_hash_max"]
    assert own_entries(lab)
    assert d.stop() == 0
    assert own_entries(lab) == []  # (the kernel may learn h1 again on its own: that is its job now)
    assert "bpf" not in sw.exec("tc", "filter", "show", "dev", "p1", "ingress")
    after = sw.bridge_options()
    for key in ("mcast_hash_max", "mcast_igmp_version", "mcast_snooping", "mcast_querier"):
        assert after[key] == before[key], key
    port_after = json.loads(sw.ip("-j", "-d", "link", "show", "dev", "p1"))[0]["linkinfo"]["info_slave_data"]
    assert port_after["multicast_router"] == port_before["multicast_router"]
    assert "ready" in d.log and "stopped" in d.log


def test_restart_after_kill9_leaves_no_stale_entries(lab: Lab) -> None:
    sw = lab.switch(addr="192.0.2.254")
    h1 = lab.host("h1", "p1", "192.0.2.1", force_igmp_version=2)
    d = Snoopd(lab, sw, querier={"startup_wait": 0.0})
    h1.join(scenarios.G)
    wait_until(lambda: sw.members(scenarios.G) == {"p1"}, 5, "the kernel MDB entry")
    d.kill9()
    assert sw.members(scenarios.G) == {"p1"}  # left behind by the crash
    h1.leave(scenarios.G)  # nobody hears it: the entry is stale now
    d.restart()
    assert "mdb.stale_removed" in d.log
    wait_until(lambda: sw.members(scenarios.G) == set(), 3, "the stale entry to be gone")
    assert d.members(scenarios.G) == set()
    assert "stale_removed" in d.log


def test_kernel_mdb_cli_agrees_with_bridge_command(lab: Lab) -> None:
    """`snoopd mdb --kernel` shows what `bridge -j -d mdb show` shows, entry for entry,
    and `snoopd mdb` agrees with both."""
    sw = lab.switch(addr="192.0.2.254")
    h1 = lab.host("h1", "p1", "192.0.2.1", force_igmp_version=3)
    h2 = lab.host("h2", "p2", "192.0.2.2", force_igmp_version=2)
    d = Snoopd(lab, sw, querier={"startup_wait": 0.0})
    h1.join(scenarios.SSM, source="192.0.2.3")
    h2.join(scenarios.G)
    wait_until(lambda: len(sw.mdb()) >= 3, 5, "entries in the kernel")
    out = sw.exec(sys.executable, "-m", "snoopd", "mdb", "--kernel", "--bridge", "br0", "--json")
    ours = json.loads(out)["entries"]
    theirs = sw.mdb()
    key = ("port", "grp", "src", "state", "filter_mode", "protocol")

    def norm(entries: list[dict[str, object]]) -> list[tuple[object, ...]]:
        out = []
        for e in entries:
            sources = tuple(sorted(s["address"] for s in e.get("source_list", [])))  # type: ignore[attr-defined]
            out.append((*(str(e.get(k)) for k in key), sources))
        return sorted(out)
    assert norm(ours) == norm(theirs)
    table = d.cli("mdb")["entries"]
    star = {(e["grp"], e["port"]) for e in theirs if "src" not in e}
    assert {(e["group"], e["port"]) for e in table} == star
    assert all("200" in str(e.get("protocol")) for e in theirs), theirs


def test_bad_config_exits_2_and_touches_nothing(lab: Lab) -> None:
    sw = lab.switch()
    before = sw.bridge_options()
    d = Snoopd(lab, sw, wait_ready=False, igmp={"robustness": 99})
    wait_until(lambda: not d.process.alive(), 10, "snoopd to exit")
    assert d.process.returncode == 2
    assert "robustness" in d.log
    after = sw.bridge_options()
    assert {k: v for k, v in after.items() if k.startswith("mcast")} == {
        k: v for k, v in before.items() if k.startswith("mcast")}


def test_missing_bridge_exits_1_with_a_clear_message(lab: Lab) -> None:
    sw = lab.switch()
    d = Snoopd(lab, sw, wait_ready=False, top={"bridge": "nosuchbr"})
    wait_until(lambda: not d.process.alive(), 10, "snoopd to exit")
    assert d.process.returncode == 1
    assert "nosuchbr" in d.log and "Traceback" not in d.log


# ---------------------------------------- where the kernel's own snooping falls short

def test_v3_reports_and_v2_leaves_reach_router_ports_only(lab: Lab) -> None:
    """RFC 4541 §2.1.1(1): the kernel floods IGMPv3 reports (224.0.0.22) and v2 leaves
    (224.0.0.2) to every port; with snoopd only router ports get them."""
    sw = lab.switch(addr="192.0.2.254")  # the router (.200) is the lower address: it stays querier
    rq = lab.router_kernel_querier("rq", "pq", scenarios.ROUTER_ADDR)
    rq.sniff("eth0")
    h1 = lab.host("h1", "p1", "192.0.2.1", force_igmp_version=3)
    h3 = lab.host("h3", "p3", "192.0.2.3", force_igmp_version=2)
    h2 = lab.host("h2", "p2", "192.0.2.2")
    d = Snoopd(lab, sw)
    wait_until(lambda: any(p["is_router"] for p in d.cli("ports")["ports"]), 5, "a router port")
    h1.join(scenarios.G)
    h3.join("239.1.1.3")
    wait_until(lambda: d.members("239.1.1.3") == {"p3"}, 5, "h3's membership")
    h3.leave("239.1.1.3")

    def from_hosts(captured: list[object]) -> list[object]:
        return [c for c in captured if c.src in ("192.0.2.1", "192.0.2.3")  # type: ignore[attr-defined]
                and c.type in (0x16, 0x17, 0x22)]  # type: ignore[attr-defined]
    wait_until(lambda: any(c.type == 0x17 for c in from_hosts(rq.captured("eth0"))), 5,  # type: ignore[attr-defined]
               "the router to get the leave")
    assert any(c.type == 0x22 for c in from_hosts(rq.captured("eth0")))  # type: ignore[attr-defined]
    assert from_hosts(h2.igmp()) == []


def test_report_for_a_non_multicast_group_is_counted_not_learned(lab: Lab) -> None:
    sw = lab.switch(addr="192.0.2.254")
    h1 = lab.host("h1", "p1", "192.0.2.1")
    d = Snoopd(lab, sw, querier={"startup_wait": 0.0})
    scenarios.send_frames(h1, "eth0", scenarios.report_frames(h1.mac, h1.addr, ["192.0.2.77"], version=2))
    wait_until(lambda: d.stats().get("malformed.not_multicast_group", 0) >= 1, 5, "the counter")
    assert [e for e in sw.mdb() if e.get("grp") == "192.0.2.77"] == []
    assert d.process.alive()


def test_beyond_4096_groups_snooping_stays_on(lab: Lab) -> None:
    """At mcast_hash_max (4096 by default) the kernel turns snooping off for the whole
    bridge, silently; snoopd raises the limit first."""
    sw = lab.switch(addr="192.0.2.254")
    h1 = lab.host("h1", "p1", "192.0.2.1")
    d = Snoopd(lab, sw, querier={"startup_wait": 0.0})
    groups = [f"239.2.{i // 250}.{i % 250 + 1}" for i in range(4500)]
    scenarios.send_frames(h1, "eth0", scenarios.report_frames(h1.mac, h1.addr, groups))
    wait_until(lambda: len(sw.mdb()) >= 4500, 10, "4,500 entries in the kernel MDB")
    assert sw.bridge_options()["mcast_snooping"] == 1
    assert d.cli("stats")["gauges"]["groups"] == 4500


def test_max_groups_refuses_new_groups_and_keeps_members(lab: Lab) -> None:
    sw = lab.switch(addr="192.0.2.254")
    h1 = lab.host("h1", "p1", "192.0.2.1")
    h2 = lab.host("h2", "p2", "192.0.2.2", force_igmp_version=2)
    d = Snoopd(lab, sw, querier={"startup_wait": 0.0}, top={"max_groups": 50})
    h2.join(scenarios.G)
    wait_until(lambda: d.members(scenarios.G) == {"p2"}, 5, "h2's membership")
    groups = [f"239.3.0.{i + 1}" for i in range(100)]
    scenarios.send_frames(h1, "eth0", scenarios.report_frames(h1.mac, h1.addr, groups))
    wait_until(lambda: d.stats().get("groups.refused_limit", 0) >= 51, 5, "refusals counted")
    assert d.cli("stats")["gauges"]["groups"] == 50
    assert d.members(scenarios.G) == {"p2"}
    assert "groups.limit_reached" in d.log
    assert sw.bridge_options()["mcast_snooping"] == 1


def test_bridge_deleted_while_running_is_a_clear_error(lab: Lab) -> None:
    sw = lab.switch(addr="192.0.2.254")
    lab.host("h1", "p1", "192.0.2.1")
    d = Snoopd(lab, sw, querier={"startup_wait": 0.0})
    sw.ip("link", "del", "br0")
    wait_until(lambda: not d.process.alive(), 10, "snoopd to stop")
    assert d.process.returncode == 1
    assert "bridge.gone" in d.log and "Traceback" not in d.log


def test_snooping_turned_off_is_noticed_and_undone(lab: Lab) -> None:
    sw = lab.switch(addr="192.0.2.254")
    lab.host("h1", "p1", "192.0.2.1")
    d = Snoopd(lab, sw, querier={"startup_wait": 0.0})
    sw.set_bridge(mcast_snooping=0)
    off = time.monotonic()
    # The kernel floods every group while snooping is off: snoopd looks every second.
    wait_until(lambda: sw.bridge_options()["mcast_snooping"] == 1, 12, "snooping back on")
    assert time.monotonic() - off < 2.0
    assert "kernel.snooping_off" in d.log and d.stats()["kernel.snooping_off"] >= 1
