"""BridgeControl against a real bridge in throwaway namespaces (``snpa-<random>-*``).

Every value the adapter reads or writes is checked through ``ip -j -d link show``
(kernel units: intervals in centiseconds) and, where it shows in behaviour, through
what the bridge does: the queries its querier sends, its router-port list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from snoopd.adapters.bridge import (
    BRIDGE_OPTIONS,
    BridgeControl,
    BridgeGone,
    MulticastRouter,
    NoSuchPort,
    NotABridge,
)
from snoopd.adapters.mdb import MdbOp, NetlinkMdb
from snoopd.adapters.rtnl import RtnlSocket
from snoopd.core.actions import FilterMode
from tests.lab import Host, Lab, Switch, lab_session, wait_until

pytestmark = pytest.mark.netns

# our option name -> ``ip -j -d link show`` key
IP_KEYS = {
    "mcast_hash_max": "mcast_hash_max",
    "mcast_igmp_version": "mcast_igmp_version",
    "mcast_mld_version": "mcast_mld_version",
    "mcast_last_member_count": "mcast_last_member_cnt",
    "mcast_startup_query_count": "mcast_startup_query_cnt",
    "mcast_last_member_interval": "mcast_last_member_intvl",
    "mcast_membership_interval": "mcast_membership_intvl",
    "mcast_querier_interval": "mcast_querier_intvl",
    "mcast_query_interval": "mcast_query_intvl",
    "mcast_query_response_interval": "mcast_query_response_intvl",
    "mcast_startup_query_interval": "mcast_startup_query_intvl",
    "mcast_query_use_ifaddr": "mcast_query_use_ifaddr",
    "mcast_router": "mcast_router",
    "mcast_snooping": "mcast_snooping",
    "mcast_querier": "mcast_querier",
}


@pytest.fixture
def lab() -> Iterator[Lab]:
    yield from lab_session("snpa")


@pytest.fixture
def sw(lab: Lab) -> Switch:
    switch = lab.switch("sw", igmp_version=2)
    lab.host("h1", "p1", "192.0.2.1")
    lab.host("h2", "p2", "192.0.2.2", sniff=False)
    return switch


def ip_link(sw: Switch, dev: str) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(sw.ip("-j", "-d", "link", "show", "dev", dev))[0]
    return info


def in_kernel_units(settings: dict[str, float]) -> dict[str, int]:
    return {
        IP_KEYS[name]: round(value * 100) if BRIDGE_OPTIONS[name][1] else int(value)
        for name, value in settings.items()
    }


def test_ports_and_settings_read_back_as_ip_shows_them(sw: Switch) -> None:
    sw.ip("link", "add", "p3", "type", "veth", "peer", "name", "x3")
    sw.ip("link", "set", "p3", "master", "br0", "up")  # its peer stays down
    with BridgeControl("br0", netns=sw.name) as br:
        ports = br.ports()
        assert [p.name for p in ports] == ["p1", "p2", "p3"]
        for port in ports:
            info = ip_link(sw, port.name)
            assert port.ifindex == info["ifindex"]
            assert port.oper_state == info["operstate"].lower()
            assert port.multicast_router == info["linkinfo"]["info_slave_data"]["multicast_router"]
            assert port.fast_leave is info["linkinfo"]["info_slave_data"]["fastleave"]
        assert ports[0].is_up and not ports[2].is_up
        assert br.port("p2") == ports[1] == br.port(ports[1].ifindex)

        settings = br.settings()
        assert set(settings) == set(BRIDGE_OPTIONS)
        data = ip_link(sw, "br0")["linkinfo"]["info_data"]
        assert in_kernel_units(settings) == {key: data[key] for key in IP_KEYS.values()}
        assert settings["mcast_query_response_interval"] == 10.0  # the kernel default, 1000 cs
        assert settings["mcast_snooping"] == 1


def test_ensure_and_restore_round_trip(sw: Switch) -> None:
    def options() -> dict[str, Any]:  # every bridge option, without the running timers
        data = ip_link(sw, "br0")["linkinfo"]["info_data"]
        return {k: v for k, v in data.items() if not k.endswith("_timer")}

    before = options()
    wanted = {"mcast_igmp_version": 3, "mcast_hash_max": 16384, "mcast_query_interval": 2.0,
              "mcast_query_response_interval": 0.5, "mcast_last_member_interval": 0.25,
              "mcast_membership_interval": 260.0, "mcast_querier": 1, "mcast_snooping": 1}
    with BridgeControl("br0", netns=sw.name) as br:
        previous = br.ensure(wanted)
        # only what changed, with its old value (membership and snooping were already so)
        assert previous == {"mcast_igmp_version": 2, "mcast_hash_max": 4096, "mcast_query_interval": 125.0,
                            "mcast_query_response_interval": 10.0, "mcast_last_member_interval": 1.0,
                            "mcast_querier": 0}
        data = ip_link(sw, "br0")["linkinfo"]["info_data"]
        for key, value in in_kernel_units(wanted).items():
            # intervals go through jiffies: 25 cs is 62 jiffies at HZ 250, read back as 24 cs
            assert value - 1 <= data[key] <= value, key
        assert br.ensure(wanted) == {}  # idempotent despite that rounding
        with pytest.raises(ValueError, match="unknown"):
            br.ensure({"mcast_snoping": 1})
        br.restore(previous)
    assert options() == before


def test_querier_starts_with_the_new_response_interval(lab: Lab, sw: Switch) -> None:
    """ensure() switches the querier on after the timers, in a request of its own; in
    the same request the kernel would still use the old 10 s response interval."""
    h1 = next(ns for ns in lab.namespaces if isinstance(ns, Host) and ns.short == "h1")
    with BridgeControl("br0", netns=sw.name) as br:
        br.ensure({"mcast_query_interval": 1.0, "mcast_startup_query_interval": 0.25,
                   "mcast_query_response_interval": 0.7, "mcast_querier": 1})
        queries = wait_until(lambda: h1.queries("eth0"), 10, "the bridge querier's first query")
        assert queries[0].max_resp == pytest.approx(0.7)


def test_router_port_and_fast_leave_set_and_restore(sw: Switch) -> None:
    with BridgeControl("br0", netns=sw.name) as br:
        previous = br.set_port("p1", multicast_router=MulticastRouter.PERMANENT, fast_leave=True)
        assert previous == {"multicast_router": 1, "fast_leave": 0}
        slave = ip_link(sw, "p1")["linkinfo"]["info_slave_data"]
        assert (slave["multicast_router"], slave["fastleave"]) == (2, True)
        assert sw.router_ports() == {"p1"}  # the bridge lists it as a multicast-router port
        with NetlinkMdb("br0", netns=sw.name) as mdb:
            assert [(r.port, r.router_type) for r in mdb.dump_router_ports()] == [("p1", 2)]
        assert br.set_port("p1", multicast_router=MulticastRouter.PERMANENT) == {}

        p2 = br.set_port("p2", multicast_router=MulticastRouter.DISABLED)
        assert ip_link(sw, "p2")["linkinfo"]["info_slave_data"]["multicast_router"] == 0

        br.restore_port("p1", previous)
        br.restore_port("p2", p2)
        for port in ("p1", "p2"):
            slave = ip_link(sw, port)["linkinfo"]["info_slave_data"]
            assert (slave["multicast_router"], slave["fastleave"]) == (1, False)
        assert sw.router_ports() == set()
        br.restore_port("gone0", {"multicast_router": 1})  # a port that has left: skipped


def test_kernel_turning_snooping_off_is_seen(sw: Switch) -> None:
    with BridgeControl("br0", netns=sw.name) as br, NetlinkMdb("br0", netns=sw.name) as mdb:
        previous = br.ensure({"mcast_hash_max": 4})
        p1 = br.port("p1").ifindex
        errors = mdb.apply([MdbOp.install(p1, f"239.3.0.{i}", FilterMode.EXCLUDE) for i in range(1, 7)])
        assert errors, "the kernel refuses entries past mcast_hash_max"
        assert not mdb.snooping_enabled()
        assert ip_link(sw, "br0")["linkinfo"]["info_data"]["mcast_snooping"] == 0
        br.restore(previous)
        br.ensure({"mcast_snooping": 1})
        assert mdb.snooping_enabled() and br.settings()["mcast_snooping"] == 1
        sw.ip("link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
        assert not mdb.snooping_enabled() and br.settings()["mcast_snooping"] == 0
        sw.ip("link", "set", "br0", "type", "bridge", "mcast_snooping", "1")
        assert mdb.snooping_enabled()


def test_missing_bridge_ports_and_non_bridges(sw: Switch) -> None:
    sw.ip("link", "add", "d0", "type", "veth", "peer", "name", "d1")  # no dummy driver here
    with pytest.raises(NotABridge):
        BridgeControl("p1", netns=sw.name)
    with pytest.raises(NotABridge):
        BridgeControl("lo", netns=sw.name)
    with pytest.raises(BridgeGone):
        BridgeControl("br9", netns=sw.name)
    br = BridgeControl("br0", netns=sw.name)
    with pytest.raises(NoSuchPort):
        br.port("d0")
    with pytest.raises(NoSuchPort):
        br.set_port("nope0", fast_leave=True)
    rtnl = RtnlSocket(sw.name)
    links = {link.name: link for link in rtnl.links()}
    rtnl.close()
    assert (links["br0"].kind, links["br0"].mcast_snooping) == ("bridge", True)
    assert (links["p1"].kind, links["p1"].mcast_snooping) == ("veth", None)  # not a bridge: no such fact
    mdb = NetlinkMdb("br0", netns=sw.name)
    sw.ip("link", "set", "br0", "name", "br1")  # its ifindex is now another name: not ours
    for call in (br.settings, mdb.snooping_enabled):
        with pytest.raises(BridgeGone):
            call()
    sw.ip("link", "set", "br1", "name", "br0")
    assert mdb.snooping_enabled()
    sw.ip("link", "del", "br0")
    for call in (br.settings, br.ports, lambda: br.ensure({"mcast_querier": 1}), mdb.snooping_enabled):
        with pytest.raises(BridgeGone):
            call()
    br.close()
    mdb.close()
