"""Snooper behaviour: leaves, fast-leave, router ports, RFC 4541 control-plane
forwarding, static entries, port events, limits, timer lowering, snapshot."""

from __future__ import annotations

import ast
import pathlib

import pytest

from snoopd.core.actions import FilterMode, InstallGroup, RemoveGroup
from snoopd.core.messages import RecordType as RT
from snoopd.core.messages import RouterHello, RouterProtocol
from snoopd.core.settings import CoreSettings, PortSettings, QuerierMode, RouterMode, StaticMembership

from .fakeplane import Harness

G = "239.1.1.1"
H1, H2 = "192.0.2.11", "192.0.2.12"


def test_v2_join_installs_and_ages_out_after_gmi() -> None:
    """RFC 3376 §7.3.2 v2 report = IS_EX({}); RFC 4541 §2.1.1(7) membership timeout."""
    h = Harness()
    h.v2_report(G, "p1")
    assert h.plane.receivers(G) == {"p1"}
    h.advance(h.timers.membership_interval - 0.01)
    assert h.plane.receivers(G) == {"p1"}
    h.advance(0.02)
    assert h.plane.receivers(G) == set()


def test_refresh_does_not_reinstall() -> None:
    """Timer refreshes produce no data-plane churn."""
    h = Harness()
    h.v2_report(G, "p1")
    h.snooper.take_actions()
    h.advance(10)
    h.v2_report(G, "p1")
    assert not [a for a in h.snooper.take_actions() if isinstance(a, InstallGroup | RemoveGroup)]


def test_leave_as_non_querier_keeps_membership_until_querier_asks() -> None:
    """RFC 2236 §3: a non-querier ignores leaves; the querier's Q(G) (S=0) lowers the
    group timer to LMQC x its Max Resp Time (RFC 3376 §6.6.1)."""
    h = Harness()
    h.v2_report(G, "p1")
    h.v2_leave(G, "p1")
    assert h.plane.receivers(G) == {"p1"}
    h.query("p3", "192.0.2.200", group=G, mrt=1.0)
    h.advance(2.0 - 0.01)
    assert h.plane.receivers(G) == {"p1"}
    h.advance(0.02)
    assert h.plane.receivers(G) == set()


def test_query_with_s_flag_does_not_lower_timers() -> None:
    """RFC 3376 §4.1.5: S=1 suppresses router-side timer updates."""
    h = Harness()
    h.v2_report(G, "p1")
    h.query("p3", "192.0.2.200", group=G, mrt=1.0, s_flag=True)
    h.advance(10)
    assert h.plane.receivers(G) == {"p1"}


def test_fast_leave_single_host_prunes_at_once() -> None:
    h = Harness()
    h.snooper.set_port("p1", h.now, fast_leave=True)
    h.v2_report(G, "p1", host=H1)
    h.v2_leave(G, "p1", host=H1)
    assert h.plane.receivers(G) == set()


def test_fast_leave_two_v2_hosts_one_port_other_keeps_receiving() -> None:
    """Explicit host tracking: the port is pruned only when its last known host left
    (the kernel bridge prunes at the first leave)."""
    h = Harness()
    h.snooper.set_port("p1", h.now, fast_leave=True)
    h.v2_report(G, "p1", host=H1)
    h.v2_report(G, "p1", host=H2)
    h.v2_leave(G, "p1", host=H1)
    assert h.plane.receivers(G) == {"p1"}
    h.v2_leave(G, "p1", host=H2)
    assert h.plane.receivers(G) == set()


def test_fast_leave_v2_host_silent_by_suppression_is_not_forgotten() -> None:
    """RFC 2236 §3: a v2 host suppresses its report when it hears another's, so a
    silent v2 host is kept until the group itself expires."""
    h = Harness()
    h.snooper.set_port("p1", h.now, fast_leave=True)
    h.v2_report(G, "p1", host=H1)
    h.v2_report(G, "p1", host=H2)
    for _ in range(3):  # only H2 answers queries
        h.advance(100)
        h.v2_report(G, "p1", host=H2)
    h.v2_leave(G, "p1", host=H2)
    assert h.plane.receivers(G) == {"p1"}


def test_fast_leave_v3_ssm_block_of_last_source() -> None:
    h = Harness()
    h.snooper.set_port("p1", h.now, fast_leave=True)
    h.v3("p1", RT.ALLOW_NEW_SOURCES, "232.1.1.1", ("192.0.2.50",), host=H1)
    assert h.plane.receivers("232.1.1.1", "192.0.2.50") == {"p1"}
    h.v3("p1", RT.BLOCK_OLD_SOURCES, "232.1.1.1", ("192.0.2.50",), host=H1)
    assert h.plane.receivers("232.1.1.1", "192.0.2.50") == set()


def test_fast_leave_v3_to_in_empty_with_other_host_remaining() -> None:
    h = Harness()
    h.snooper.set_port("p1", h.now, fast_leave=True)
    h.v3("p1", RT.CHANGE_TO_EXCLUDE_MODE, G, host=H1)
    h.v3("p1", RT.CHANGE_TO_EXCLUDE_MODE, G, host=H2)
    h.v3("p1", RT.CHANGE_TO_INCLUDE_MODE, G, host=H1)
    assert h.plane.receivers(G) == {"p1"}
    h.v3("p1", RT.CHANGE_TO_INCLUDE_MODE, G, host=H2)
    assert h.plane.receivers(G) == set()


def test_v3_host_not_heard_for_gmi_is_forgotten_for_fast_leave() -> None:
    h = Harness()
    h.snooper.set_port("p1", h.now, fast_leave=True)
    h.v3("p1", RT.CHANGE_TO_EXCLUDE_MODE, G, host=H1)
    h.v3("p1", RT.CHANGE_TO_EXCLUDE_MODE, G, host=H2)  # H2 vanishes silently
    for _ in range(3):
        h.advance(100)
        h.v3("p1", RT.MODE_IS_EXCLUDE, G, host=H1)
    h.v3("p1", RT.CHANGE_TO_INCLUDE_MODE, G, host=H1)
    assert h.plane.receivers(G) == set()


def test_link_local_groups_are_never_installed() -> None:
    """RFC 4541 §2.1.2(2): 224.0.0.0/24 is flooded, never pruned."""
    h = Harness()
    h.v2_report("224.0.0.251", "p1")
    assert h.plane.entries == {}


def test_router_port_learned_from_query_and_expires() -> None:
    h = Harness()
    h.query("p3", "192.0.2.200")
    assert h.plane.routers == {"p3"}
    h.advance(h.timers.other_querier_present_interval + 0.01)
    assert h.plane.routers == set()


def test_query_from_zero_address_does_not_make_router_port() -> None:
    h = Harness()
    h.query("p3", "0.0.0.0")
    assert h.plane.routers == set()


@pytest.mark.parametrize("protocol", list(RouterProtocol))
def test_router_port_from_router_hello(protocol: RouterProtocol) -> None:
    h = Harness()
    h.send(RouterHello(protocol, "192.0.2.201", "224.0.0.13", 105.0 if protocol is RouterProtocol.PIM else None),
           "p2")
    assert h.plane.routers == {"p2"}


def test_pim_goodbye_removes_router_port() -> None:
    """RFC 7761 §4.3.1: holdtime 0 is a goodbye."""
    h = Harness()
    h.send(RouterHello(RouterProtocol.PIM, "192.0.2.201", "224.0.0.13", 105.0), "p2")
    h.send(RouterHello(RouterProtocol.PIM, "192.0.2.201", "224.0.0.13", 0.0), "p2")
    assert h.plane.routers == set()


def test_router_override_on_and_off() -> None:
    settings = CoreSettings(querier_mode=QuerierMode.OFF,
                            ports={"p1": PortSettings(router=RouterMode.ON), "p3": PortSettings(router=RouterMode.OFF)})
    h = Harness(settings)
    assert h.plane.routers == {"p1"}
    h.query("p3", "192.0.2.200")
    assert h.plane.routers == {"p1"}
    h.snooper.set_port("p3", h.now, router=RouterMode.AUTO)
    h.query("p3", "192.0.2.200")
    assert h.plane.routers == {"p1", "p3"}


def test_reports_forwarded_to_router_ports_only_never_ingress() -> None:
    """RFC 4541 §2.1.1(1)."""
    h = Harness()
    h.query("p3", "192.0.2.200")
    h.plane.forwarded.clear()
    msg, port, _, frame = _report_with_frame()
    h.snooper.receive(msg, port, h.now, frame)
    h.flush()
    [fwd] = h.plane.forwarded
    assert fwd.ports == ("p3",) and not fwd.is_query and fwd.frame == b"frame"
    # A report arriving on the router port itself is not sent back.
    h.plane.forwarded.clear()
    h.snooper.receive(_report_with_frame()[0], "p3", h.now, b"frame")
    h.flush()
    assert h.plane.forwarded == []


def _report_with_frame() -> tuple[object, str, float, bytes]:
    from snoopd.core.messages import GroupRecord, Report

    return (Report(2, (GroupRecord(RT.MODE_IS_EXCLUDE, G, ()),), H1, G), "p1", 0.0, b"frame")


def test_queries_forwarded_to_all_other_ports() -> None:
    h = Harness()
    from snoopd.core.messages import Query

    h.snooper.receive(Query(3, "0.0.0.0", "192.0.2.200", "224.0.0.1", 10.0), "p3", h.now, b"q")
    h.flush()
    [fwd] = h.plane.forwarded
    assert set(fwd.ports) == {"p1", "p2"} and fwd.is_query


def test_static_memberships_never_age_and_survive_port_flap() -> None:
    settings = CoreSettings(querier_mode=QuerierMode.OFF,
                            static=(StaticMembership(G, "p2"), StaticMembership("232.1.1.1", "p2", "192.0.2.50")))
    h = Harness(settings)
    assert h.plane.receivers(G) == {"p2"}
    assert h.plane.entries[("p2", "232.1.1.1")] == (FilterMode.INCLUDE, frozenset({"192.0.2.50"}))
    h.advance(10_000)
    assert h.plane.receivers(G) == {"p2"}
    h.snooper.port_changed("p2", h.now, up=False)
    h.flush()
    h.snooper.port_changed("p2", h.now, up=True)
    h.flush()
    assert h.plane.receivers(G) == {"p2"}
    entry = next(e for e in h.snooper.snapshot(h.now).entries if e.group == G)
    assert entry.origin == "static" and entry.expires_at is None


def test_port_down_drops_learned_and_removal_drops_everything() -> None:
    settings = CoreSettings(querier_mode=QuerierMode.OFF, static=(StaticMembership(G, "p2"),))
    h = Harness(settings)
    h.v2_report(G, "p1")
    h.v2_report("239.2.2.2", "p2")
    h.snooper.port_changed("p1", h.now, up=False)
    h.flush()
    assert h.plane.receivers(G) == {"p2"}
    h.snooper.port_changed("p2", h.now, up=False, present=False)
    h.flush()
    assert h.plane.entries == {}
    assert [p.port for p in h.snooper.snapshot().ports] == ["p1", "p3"]


def test_max_groups_refuses_new_groups_and_keeps_existing() -> None:
    h = Harness(CoreSettings(querier_mode=QuerierMode.OFF, max_groups=2))
    for i in range(3):
        h.v2_report(f"239.0.0.{i + 1}", "p1")
    assert set(h.plane.entries) == {("p1", "239.0.0.1"), ("p1", "239.0.0.2")}
    h.v2_report("239.0.0.1", "p2")  # a new port for an existing group is fine
    assert h.plane.receivers("239.0.0.1") == {"p1", "p2"}
    assert h.snooper.counters["groups.refused_limit"] == 1
    assert any(n.event == "groups.limit_reached" for n in h.plane.notices)


def test_snapshot_shapes() -> None:
    h = Harness()
    h.v3("p1", RT.ALLOW_NEW_SOURCES, "232.1.1.1", ("192.0.2.50",), host=H1)
    h.v2_report(G, "p2", host=H2)
    snap = h.snooper.snapshot(h.now)
    by_group = {e.group: e for e in snap.entries}
    ssm = by_group["232.1.1.1"]
    assert ssm.mode is FilterMode.INCLUDE and ssm.expires_at is None and ssm.hosts == (H1,)
    assert ssm.sources[0].address == "192.0.2.50" and ssm.sources[0].forwarding
    asm = by_group[G]
    assert asm.mode is FilterMode.EXCLUDE and asm.compat == 2 and asm.expires_at == h.timers.membership_interval
    ports = {p.port: p for p in snap.ports}
    assert ports["p1"].groups == 1 and ports["p3"].groups == 0


def test_core_imports_no_io_or_clock_modules() -> None:
    """The core stays pure: no sockets, clock, asyncio, scapy, pyroute2 ..."""
    forbidden = {"socket", "time", "asyncio", "select", "scapy", "pyroute2", "netifaces", "typer",
                 "subprocess", "os", "threading", "logging", "random", "datetime"}
    core = pathlib.Path(__file__).parent.parent / "snoopd" / "core"
    offenders = []
    for path in core.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in forbidden]
    assert offenders == []
    assert len(list(core.glob("*.py"))) >= 8  # the check really looked at the core


def test_max_groups_counts_source_entries_too() -> None:
    """max_groups limits (group, source) entries, as the kernel MDB counts them."""
    h = Harness(CoreSettings(querier_mode=QuerierMode.OFF, max_groups=4))
    h.v3("p1", RT.ALLOW_NEW_SOURCES, "232.1.1.1", ("192.0.2.50", "192.0.2.51"))  # 3 entries
    h.v3("p2", RT.ALLOW_NEW_SOURCES, "232.1.1.1", ("192.0.2.50",))  # same (S,G): still 3
    assert h.snooper.entry_count == 3
    h.v2_report("239.0.0.1", "p1")  # 4
    h.v2_report("239.0.0.2", "p1")  # refused
    assert set(h.plane.entries) == {("p1", "232.1.1.1"), ("p2", "232.1.1.1"), ("p1", "239.0.0.1")}
    h.advance(h.timers.membership_interval + 1)
    assert h.snooper.entry_count == 0
