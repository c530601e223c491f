"""Software mode: the BPF programs, the compiled table, and real frames through a real bridge.

The two classic-BPF programs (what the ring takes, what the ingress filter drops) run in a
small interpreter over frames built with scapy. ForwardingTable is checked on its own. Then
SoftwarePlane runs in a switch namespace (``snps-<random>-*``, tests/lab.py) as the driver of
scripts/bench_software.py, hosts send UDP through their own kernels, and the hosts count what
arrives: members of a group get it, others do not, source filters hold, router ports get
everything, the ingress port nothing, 224.0.0.x reaches every port; ``stop()`` leaves the
bridge exactly as it found it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from scapy.compat import raw
from scapy.layers.igmp import IGMP, IGMPv3_MQ, IGMPv3_MR, IGMPv3_MR_Group
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether

from snoopd.adapters.ring import (
    SKF_AD_IFINDEX,
    SKF_AD_VLAN_TAG_PRESENT,
    SOFTWARE_INGRESS_DROP,
    TC_ACT_SHOT,
    ports_program,
)
from snoopd.core.actions import FilterMode
from snoopd.software_plane import ForwardingTable
from tests.lab import REPO, Host, Lab, Switch, have_netns, run, skip_or_fail, wait_until

sys.path.insert(0, str(REPO / "scripts"))
from bench_software import Driver

Program = tuple[tuple[int, int, int, int], ...]

# --- the programs, without a kernel ----------------------------------------------------------


def run_bpf(program: Program, frame: bytes, vlan: bool = False, ifindex: int = 7) -> int:
    """Classic BPF as the kernel runs it (offsets from the Ethernet header; a load past the
    end returns 0; ``vlan``: the skb carries an 802.1Q tag in its metadata; ``ifindex``:
    the interface it arrived on)."""
    a = x = pc = 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == 0x06:  # ret k
            return k
        if code == 0x05:  # ja k
            pc += k
            continue
        if code == 0x20 and k in (SKF_AD_VLAN_TAG_PRESENT, SKF_AD_IFINDEX):  # ancillary loads
            a = int(vlan) if k == SKF_AD_VLAN_TAG_PRESENT else ifindex
            continue
        if code in (0x20, 0x28, 0x30, 0x50):  # ld w/h/b [k], ldb [x + k]
            offset = k + (x if code == 0x50 else 0)
            size = {0x20: 4, 0x28: 2, 0x30: 1, 0x50: 1}[code]
            if offset + size > len(frame):
                return 0
            a = int.from_bytes(frame[offset:offset + size], "big")
        elif code == 0xB1:  # ldxb 4 * ([k] & 0xf)
            if k >= len(frame):
                return 0
            x = 4 * (frame[k] & 0x0F)
        elif code == 0x54:  # and k
            a &= k
        elif code in (0x15, 0x45):  # jeq / jset
            pc += jt if (a == k if code == 0x15 else a & k) else jf
        else:
            raise AssertionError(f"unknown opcode {code:#x}")


def frame(dst: str = "239.1.1.1", payload: Any = None, mac: str | None = None, **ip: Any) -> bytes:
    if mac is None:
        octets = [int(o) for o in dst.split(".")]
        multicast = f"01:00:5e:{octets[1] & 0x7F:02x}:{octets[2]:02x}:{octets[3]:02x}"
        mac = multicast if octets[0] >= 224 else "02:00:00:00:00:02"
    body = UDP(dport=5000) / b"data" if payload is None else payload
    return raw(Ether(dst=mac, src="02:00:00:00:00:09") / IP(src="192.0.2.9", dst=dst, **ip) / body)


RING = ports_program([3, 7, 12])  # the ring's program while ports 3, 7 and 12 are in the bridge

DATA = {
    "udp-239": frame("239.1.1.1"),
    "udp-232": frame("232.1.1.1"),
    "udp-224.0.1.1": frame("224.0.1.1"),
    "udp-239.255.255.255": frame("239.255.255.255"),
    "non-first-fragment": frame("239.1.1.1", frag=8),
    "ip-options": frame("239.1.1.1", options=b"\x94\x04\x00\x00"),
}
OTHER = {
    "udp-224.0.0.251": frame("224.0.0.251"),
    "udp-224.0.0.1": frame("224.0.0.1"),
    "unicast": frame("192.0.2.1"),
    "broadcast-ip": frame("255.255.255.255", mac="ff:ff:ff:ff:ff:ff"),
    "multicast-ip-unicast-mac": frame("239.1.1.1", mac="02:00:00:00:00:01"),
    "arp": raw(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP()),
    "tagged-in-band": raw(Ether(dst="01:00:5e:01:01:01") / Dot1Q(vlan=5) / IP(dst="239.1.1.1") / UDP()),
    "query": frame("224.0.0.1", IGMPv3_MQ(mrcode=100), proto=2),
    "group-query": frame("239.1.1.1", IGMPv3_MQ(mrcode=10, gaddr="239.1.1.1"), proto=2),
    "pim": frame("224.0.0.13", b"\x20\x00\x00\x00" + bytes(20), proto=103),
    "runt": bytes(10),
}
REPORTS = {
    "v1-report": frame("239.1.1.1", IGMP(type=0x12, gaddr="239.1.1.1")),
    "v2-report": frame("239.1.1.1", IGMP(type=0x16, gaddr="239.1.1.1")),
    "v2-leave": frame("224.0.0.2", IGMP(type=0x17, gaddr="239.1.1.1")),
    "v3-report": frame("224.0.0.22", IGMPv3_MR(records=[IGMPv3_MR_Group(rtype=4, maddr="239.1.1.1")])),
}


@pytest.mark.parametrize("name", list(DATA))
def test_routable_data_is_taken_by_the_ring_and_dropped_at_ingress(name: str) -> None:
    assert run_bpf(RING, DATA[name]) > 0
    assert run_bpf(SOFTWARE_INGRESS_DROP, DATA[name]) == TC_ACT_SHOT


@pytest.mark.parametrize("name", list(OTHER))
def test_everything_else_is_left_to_the_bridge(name: str) -> None:
    assert run_bpf(RING, OTHER[name]) == 0
    assert run_bpf(SOFTWARE_INGRESS_DROP, OTHER[name]) != TC_ACT_SHOT


def test_tagged_frames_are_left_to_the_bridge() -> None:
    # The kernel strips the tag before the taps and tc run; it is skb metadata by then.
    assert run_bpf(RING, DATA["udp-239"], vlan=True) == 0
    assert run_bpf(SOFTWARE_INGRESS_DROP, DATA["udp-239"], vlan=True) != TC_ACT_SHOT


@pytest.mark.parametrize("name", list(REPORTS))
def test_reports_and_leaves_are_dropped_but_not_replicated(name: str) -> None:
    assert run_bpf(RING, REPORTS[name]) == 0  # snoopd's capture has them
    assert run_bpf(SOFTWARE_INGRESS_DROP, REPORTS[name]) == TC_ACT_SHOT


@pytest.mark.parametrize("ports", [[], [5], list(range(1, 300))], ids=["none", "one", "299"])
def test_the_ring_takes_frames_of_bridge_ports_only(ports: list[int]) -> None:
    program = ports_program(ports)
    for ifindex in range(0, 302):
        assert (run_bpf(program, DATA["udp-239"], ifindex=ifindex) > 0) == (ifindex in ports)


# --- the table -------------------------------------------------------------------------------

S1, S2 = "192.0.2.9", "192.0.2.19"


def test_table_groups_routers_and_unregistered() -> None:
    table = ForwardingTable()
    table.install("p1", "239.1.1.1", FilterMode.EXCLUDE, frozenset())
    table.install("p2", "239.1.1.1", FilterMode.EXCLUDE, frozenset())
    assert table.lookup("239.1.1.1", S1) == {"p1", "p2"}
    assert table.lookup("239.9.9.9", S1) == set()
    table.routers.add("p4")
    table.flood_unregistered = {"p3"}
    table.rebuild()
    assert table.lookup("239.1.1.1", S1) == {"p1", "p2", "p4"}
    assert table.lookup("239.9.9.9", S1) == {"p3", "p4"}
    table.remove("p1", "239.1.1.1")
    table.remove("p2", "239.1.1.1")
    assert table.lookup("239.1.1.1", S1) == {"p3", "p4"}  # unregistered again
    assert not table.members and not table.simple


def test_table_source_filters() -> None:
    # RFC 3376 §6.2.1: INCLUDE {S1} forwards only S1; EXCLUDE {S1} everything but S1.
    table = ForwardingTable()
    table.install("p1", "232.1.1.1", FilterMode.INCLUDE, frozenset({S1}))
    table.install("p2", "232.1.1.1", FilterMode.EXCLUDE, frozenset({S1}))
    table.install("p3", "232.1.1.1", FilterMode.EXCLUDE, frozenset())
    assert table.lookup("232.1.1.1", S1) == {"p1", "p3"}
    assert table.lookup("232.1.1.1", S2) == {"p2", "p3"}
    table.install("p1", "232.1.1.1", FilterMode.EXCLUDE, frozenset())  # replaces p1's entry
    table.remove("p2", "232.1.1.1")
    assert table.lookup("232.1.1.1", S1) == {"p1", "p3"}
    assert b"\xe8\x01\x01\x01" in table.simple  # no source filter left: the fast path


def test_table_interns_port_sets() -> None:
    table = ForwardingTable()
    for group in ("239.1.1.1", "239.1.1.2"):
        for port in ("p2", "p1"):
            table.install(port, group, FilterMode.EXCLUDE, frozenset())
    egress = list(table.simple.values())
    assert egress[0] is egress[1]


# --- a real bridge ---------------------------------------------------------------------------

G1, G2, G3, G4 = "239.1.1.1", "232.1.1.1", "239.3.3.3", "239.4.4.4"
LINK_LOCAL = "224.0.0.251"


class SwitchLab:
    def __init__(self, lab: Lab, querier: bool = False) -> None:
        self.lab = lab
        self.sw: Switch = lab.switch("sw", querier=querier)
        self.tx: Host = lab.host("tx", "p9", S1)
        self.tx.add_address(S2)
        self.h1, self.h2, self.h3 = (lab.host(f"h{i}", f"p{i}", f"192.0.2.{i}") for i in (1, 2, 3))
        self.rt: Host = lab.host("rt", "p4", "192.0.2.4")
        self.hosts = (self.tx, self.h1, self.h2, self.h3, self.rt)

    def driver(self, take_over_querier: bool = False) -> Driver:
        driver = Driver(self.sw.name, log=str(self.lab.logfile("sw.driver.log")),
                        take_over_querier=take_over_querier)
        assert driver.call("ports") == ["p1", "p2", "p3", "p4", "p9"]
        return driver

    def seen(self, group: str, source: str | None = None) -> dict[str, int]:
        return {host.short: host.seen(group, source) for host in self.hosts}


@pytest.fixture(scope="module")
def switch() -> Iterator[tuple[SwitchLab, Driver]]:
    if (reason := have_netns()) is not None:
        skip_or_fail(reason)
    with Lab("snps") as lab:
        setup = SwitchLab(lab)
        setup.h1.join(G1)  # a real socket: what it receives passed the UDP checksum
        driver = setup.driver()
        try:
            yield setup, driver
        finally:
            driver.kill()
            print(lab.dump_logs())


def apply(driver: Driver, *actions: list[Any]) -> None:
    assert driver.call("apply", actions=list(actions)) == len(actions)


def send_and_settle(setup: SwitchLab, group: str, expected: dict[str, int], count: int = 20,
                    source: str | None = None) -> dict[str, int]:
    """Reset the counts, send ``count`` datagrams, wait until the hosts in ``expected``
    have seen theirs; returns what every host saw."""
    for host in setup.hosts:
        host.reset()
    setup.tx.send(group, count=count, source=source)
    wait_until(lambda: all(setup.seen(group)[h] >= n for h, n in expected.items()), 5.0,
               f"{group} to reach {expected}")
    return setup.seen(group)


@pytest.mark.netns
def test_members_receive_and_others_do_not(switch: tuple[SwitchLab, Driver]) -> None:
    setup, driver = switch
    apply(driver, *(["install", p, G1, "exclude", []] for p in ("p1", "p2", "p9")))
    before = driver.call("counters")
    seen = send_and_settle(setup, G1, {"h1": 20, "h2": 20})
    assert seen == {"tx": 0, "h1": 20, "h2": 20, "h3": 0, "rt": 0}  # never the ingress port
    wait_until(lambda: setup.h1.received(G1) >= 20, 5.0, "h1's socket to receive")  # checksums hold
    after = driver.call("counters")
    assert after["sw.forwarded"] - before.get("sw.forwarded", 0) == 20  # our copies do not come back
    assert after["sw.sent.p1"] - before.get("sw.sent.p1", 0) == 20
    assert "sw.sent.p9" not in after


@pytest.mark.netns
def test_frames_with_complete_checksums_arrive_too(switch: tuple[SwitchLab, Driver]) -> None:
    """The sockets' UDP frames above leave the sender with a partial checksum (veth offload);
    these are whole frames with the checksum filled in (no NEEDS_CSUM in the vnet header)."""
    setup, driver = switch
    apply(driver, ["install", "p1", G1, "exclude", []])
    before = setup.h1.received(G1)
    data = raw(Ether(dst="01:00:5e:01:01:01", src=setup.tx.mac) / IP(src=S1, dst=G1, ttl=1)
               / UDP(sport=4000, dport=5000) / b"complete")
    assert IP(data[14:])[UDP].chksum not in (0, None)
    send = ("import socket, sys; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0)); "
            f"[s.send(bytes.fromhex('{data.hex()}')) for _ in range(10)]")
    setup.tx.exec(sys.executable, "-c", send)
    wait_until(lambda: setup.h1.received(G1) >= before + 10, 5.0, "h1's socket to receive the 10 frames")


@pytest.mark.netns
def test_source_filters(switch: tuple[SwitchLab, Driver]) -> None:
    setup, driver = switch
    apply(driver, ["install", "p1", G2, "include", [S1]], ["install", "p2", G2, "exclude", [S1]],
          ["install", "p3", G2, "exclude", []])
    for host in setup.hosts:
        host.reset()
    setup.tx.send(G2, count=10, source=S1)
    setup.tx.send(G2, count=10, source=S2)
    wait_until(lambda: setup.h3.seen(G2) >= 20, 5.0, "h3 to see both sources")
    assert setup.seen(G2, S1) == {"tx": 0, "h1": 10, "h2": 0, "h3": 10, "rt": 0}
    assert setup.seen(G2, S2) == {"tx": 0, "h1": 0, "h2": 10, "h3": 10, "rt": 0}


@pytest.mark.netns
def test_router_ports_get_everything_and_unregistered_groups_go_there(switch: tuple[SwitchLab, Driver]) -> None:
    setup, driver = switch
    apply(driver, *(["install", p, G1, "exclude", []] for p in ("p1", "p2")), ["router", "p4", True])
    try:
        assert send_and_settle(setup, G1, {"h1": 20, "h2": 20, "rt": 20}) == \
            {"tx": 0, "h1": 20, "h2": 20, "h3": 0, "rt": 20}
        assert send_and_settle(setup, G3, {"rt": 20}) == {"tx": 0, "h1": 0, "h2": 0, "h3": 0, "rt": 20}
        assert driver.call("flood", ports=["p3"]) == ["p3"]
        assert send_and_settle(setup, G3, {"rt": 20, "h3": 20}) == {"tx": 0, "h1": 0, "h2": 0, "h3": 20, "rt": 20}
    finally:
        driver.call("flood", ports=[])
        apply(driver, ["router", "p4", False])
    assert send_and_settle(setup, G1, {"h1": 20})["rt"] == 0


@pytest.mark.netns
def test_link_local_groups_reach_every_port_once(switch: tuple[SwitchLab, Driver]) -> None:
    setup, driver = switch
    before = driver.call("counters").get("sw.forwarded", 0)
    seen = send_and_settle(setup, LINK_LOCAL, {h: 20 for h in ("h1", "h2", "h3", "rt")})
    assert seen == {"tx": 0, "h1": 20, "h2": 20, "h3": 20, "rt": 20}  # by the bridge, not by us too
    assert driver.call("counters").get("sw.forwarded", 0) == before


@pytest.mark.netns
def test_frames_with_no_egress_are_counted(switch: tuple[SwitchLab, Driver]) -> None:
    setup, driver = switch
    apply(driver, ["install", "p9", G4, "exclude", []])  # the sender's own port only
    before = driver.call("counters")
    for host in setup.hosts:
        host.reset()
    setup.tx.send(G4, count=10)
    wait_until(lambda: driver.call("counters").get("sw.drop.no_member", 0)
               - before.get("sw.drop.no_member", 0) == 10, 5.0, "10 frames counted as no_member")
    assert setup.seen(G4) == {"tx": 0, "h1": 0, "h2": 0, "h3": 0, "rt": 0}


@pytest.mark.netns
def test_health_check_puts_back_a_removed_filter(switch: tuple[SwitchLab, Driver]) -> None:
    setup, driver = switch
    setup.sw.exec("tc", "qdisc", "del", "dev", "p3", "clsact")
    assert "bpf" not in run(["tc", "-n", setup.sw.name, "filter", "show", "dev", "p3", "ingress"], check=False)
    before = driver.call("counters").get("ingress.reinstalled", 0)
    assert driver.call("health").get("ingress.reinstalled", 0) == before + 1
    assert "bpf" in run(["tc", "-n", setup.sw.name, "filter", "show", "dev", "p3", "ingress"])
    assert driver.call("health").get("ingress.reinstalled", 0) == before + 1  # once is enough


# --- stop() ----------------------------------------------------------------------------------


def bridge_state(sw: Switch) -> dict[str, Any]:
    """What stop() must restore: br0's and every port's options (timers aside), the tc
    qdiscs and filters of every port."""
    state: dict[str, Any] = {}
    for link in json.loads(sw.ip("-d", "-j", "link", "show")):
        info = link.get("linkinfo", {})
        data = info.get("info_data") if link["ifname"] == sw.bridge else info.get("info_slave_data")
        state[link["ifname"]] = {k: v for k, v in (data or {}).items() if not k.endswith("_timer")}
        for hook in ("ingress", "egress"):
            state[f"{link['ifname']} {hook}"] = run(["tc", "-n", sw.name, "filter", "show", "dev", link["ifname"],
                                                     hook], check=False)
        state[f"{link['ifname']} qdisc"] = run(["tc", "-n", sw.name, "qdisc", "show", "dev", link["ifname"]])
    return state


@pytest.mark.netns
def test_stop_puts_the_bridge_back() -> None:
    if (reason := have_netns()) is not None:
        skip_or_fail(reason)
    with Lab("snps") as lab:
        setup = SwitchLab(lab, querier=True)
        before = bridge_state(setup.sw)
        driver = setup.driver(take_over_querier=True)
        try:
            during = bridge_state(setup.sw)
            assert "bpf" in during["p1 ingress"] and "bpf" not in before["p1 ingress"]
            assert during["br0"]["mcast_querier"] == 0 and before["br0"]["mcast_querier"] == 1
            setup.tx.send(G1, count=5)  # no entries, no router ports: nobody, and not the bridge
            wait_until(lambda: driver.call("counters").get("sw.drop.no_member", 0) == 5, 5.0, "5 frames dropped")
            assert setup.seen(G1) == {h.short: 0 for h in setup.hosts}
        finally:
            final = driver.stop()
        assert final["stopped"]
        assert bridge_state(setup.sw) == before
        # The bridge forwards routable multicast itself again (it floods: nobody joined).
        assert send_and_settle(setup, G3, {"h1": 5, "h2": 5, "h3": 5, "rt": 5}, count=5)["tx"] == 0
