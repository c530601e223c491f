"""IngressFilter: the classic-BPF program, its netlink message, and a real bridge.

The program is first run through a tiny classic-BPF interpreter over frames built
with scapy (an independent implementation), then installed in throwaway namespaces
(``snpa-<random>-*``, tests/lab.py) where hosts join through their own kernels. What
the filter does is checked independently: ``tc -j filter show``, the kernel MDB
(``bridge -j mdb show``), what other hosts receive, and an AF_PACKET tap on the port.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from scapy.compat import raw
from scapy.layers.igmp import IGMP, IGMPv3_MQ, IGMPv3_MR, IGMPv3_MR_Group
from scapy.layers.inet import IP, UDP, IPOption_Router_Alert
from scapy.layers.l2 import ARP, Ether

from snoopd.adapters.ingress import (
    FILTER_HANDLE,
    FILTER_PRIO,
    IGMP_REPORT_DROP,
    TC_ACT_SHOT,
    TC_ACT_UNSPEC,
    IngressFilter,
    encode_program,
    tcmsg_cls_bpf,
)
from tests.lab import Host, Lab, Switch, lab_session, wait_until

PASS = TC_ACT_UNSPEC & 0xFFFFFFFF
GROUP = "239.7.1.1"

# --- the program, without a kernel ----------------------------------------------------------


def run_program(frame: bytes) -> int:
    """Classic BPF as the kernel runs it at tc ingress (offsets from the Ethernet header;
    a load past the end ends the program with 0, TC_ACT_OK)."""
    a = x = pc = 0
    while True:
        code, jt, jf, k = IGMP_REPORT_DROP[pc]
        pc += 1
        if code == 0x06:  # ret k
            return k
        if code in (0x28, 0x30, 0x50):  # ldh [k], ldb [k], ldb [x + k]
            offset = k + (x if code == 0x50 else 0)
            size = 2 if code == 0x28 else 1
            if offset + size > len(frame):
                return 0
            a = int.from_bytes(frame[offset : offset + size], "big")
        elif code == 0xB1:  # ldxb 4 * ([k] & 0xf)
            if k >= len(frame):
                return 0
            x = 4 * (frame[k] & 0x0F)
        elif code in (0x15, 0x45):  # jeq / jset
            hit = a == k if code == 0x15 else bool(a & k)
            pc += jt if hit else jf
        else:
            raise AssertionError(f"unknown opcode {code:#x}")


def ip_frame(payload: object, ra: bool = True, options: list[object] | None = None, **ip: Any) -> bytes:
    if options is None:
        options = [IPOption_Router_Alert()] if ra else []
    return raw(Ether(dst="01:00:5e:00:00:16") / IP(dst="224.0.0.22", ttl=1, options=options, **ip) / payload)


def v3_report() -> object:
    return IGMPv3_MR(records=[IGMPv3_MR_Group(rtype=4, maddr=GROUP)])


@pytest.mark.parametrize("ra", [True, False], ids=["router-alert", "no-options"])
@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(lambda: IGMP(type=0x12, gaddr=GROUP), id="v1-report"),
        pytest.param(lambda: IGMP(type=0x16, gaddr=GROUP), id="v2-report"),
        pytest.param(lambda: IGMP(type=0x17, gaddr=GROUP), id="v2-leave"),
        pytest.param(v3_report, id="v3-report"),
    ],
)
def test_program_drops_reports_and_leaves(payload: object, ra: bool) -> None:
    frame = ip_frame(payload(), ra=ra)  # type: ignore[operator]
    assert run_program(frame) == TC_ACT_SHOT


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(ip_frame(IGMP(type=0x11, mrcode=100, gaddr="0.0.0.0")), id="v2-query"),
        pytest.param(ip_frame(IGMPv3_MQ(mrcode=100, gaddr=GROUP)), id="v3-query"),
        pytest.param(ip_frame(IGMP(type=0x13)), id="dvmrp"),
        pytest.param(ip_frame(b"\x20\x00\x00\x00" + bytes(20), proto=103), id="pim"),
        pytest.param(ip_frame(UDP(dport=5000) / b"data"), id="udp"),
        pytest.param(ip_frame(IGMP(type=0x16, gaddr=GROUP), frag=8), id="non-first-fragment"),
        pytest.param(raw(Ether() / ARP()), id="arp"),
        pytest.param(ip_frame(IGMP(type=0x16, gaddr=GROUP))[:37], id="truncated"),
    ],
)
def test_program_passes_everything_else(frame: bytes) -> None:
    assert run_program(frame) in (PASS, 0)


def test_ip_options_move_the_igmp_type() -> None:
    # 8 bytes of options: at 14 + 20 sits an option byte (0x94), the report type is at
    # 14 + 28; only a program that honours IHL finds it.
    frame = ip_frame(IGMP(type=0x16, gaddr=GROUP), options=[IPOption_Router_Alert()] * 2)
    assert frame[34] == 0x94 and frame[42] == 0x16
    assert frame[14] & 0x0F == 7
    assert run_program(frame) == TC_ACT_SHOT


def test_filter_message_carries_classic_bpf() -> None:
    program = encode_program()
    msg = tcmsg_cls_bpf()
    msg["index"], msg["handle"], msg["parent"], msg["info"] = 5, FILTER_HANDLE, 0xFFFFFFF2, FILTER_PRIO << 16
    msg["attrs"] = [
        ["TCA_KIND", "bpf"],
        ["TCA_OPTIONS", {"attrs": [["TCA_BPF_OPS_LEN", len(IGMP_REPORT_DROP)], ["TCA_BPF_OPS", program]]}],
    ]
    msg.encode()
    decoded = tcmsg_cls_bpf(bytes(msg.data))
    decoded.decode()
    options = decoded.get_attr("TCA_OPTIONS")
    assert options.get_attr("TCA_BPF_OPS_LEN") == len(IGMP_REPORT_DROP) == len(program) // 8
    assert options.get_attr("TCA_BPF_OPS") == program


# --- a real bridge ---------------------------------------------------------------------------

@pytest.fixture
def lab() -> Iterator[Lab]:
    yield from lab_session("snpa")


def ifindex(ns: Switch, name: str) -> int:
    index: int = json.loads(ns.ip("-j", "link", "show", "dev", name))[0]["ifindex"]
    return index


def tc_filters(sw: Switch, port: str) -> list[dict[str, object]]:
    out = sw.exec("tc", "-j", "filter", "show", "dev", port, "ingress")
    return [f for f in json.loads(out or "[]") if "options" in f]


def sent_igmp(host: Host) -> list[str]:
    return [c.kind for c in host.igmp() if not c.incoming]


def igmp_kinds(host: Host, since: int = 0, sources: tuple[str, ...] | None = None) -> list[str]:
    """Kinds of the IGMP frames ``host`` received (from ``sources`` only, if given: the
    bridge itself sends reports for 224.0.0.106 from 0.0.0.0)."""
    return [
        c.kind for c in host.captured(host.iface, since)
        if c.incoming and c.protocol == 2 and (sources is None or c.src in sources)
    ]  # fmt: skip


@pytest.mark.netns
def test_install_is_visible_to_tc_and_removed_cleanly(lab: Lab) -> None:
    sw = lab.switch("sw", igmp_version=3)
    lab.host("h1", "p1", "192.0.2.1", sniff=False)
    lab.host("h2", "p2", "192.0.2.2", sniff=False)
    with IngressFilter(netns=sw.name) as ingress:
        for port in ("p1", "p2"):
            ingress.install(ifindex(sw, port))
        ingress.install(ifindex(sw, "p1"))  # again: replaced, not doubled
        (f,) = tc_filters(sw, "p1")
        options = f["options"]
        assert isinstance(options, dict)
        assert f["kind"] == "bpf" and f["pref"] == FILTER_PRIO and f["protocol"] == "ip"
        assert options["handle"] == hex(FILTER_HANDLE) and options["direct-action"] is True
        insns = [(i["code"], i["jt"], i["jf"], i["k"]) for i in options["bytecode"]["insns"]]
        assert tuple(insns) == IGMP_REPORT_DROP
        assert ingress.installed(ifindex(sw, "p2"))

        assert ingress.remove(ifindex(sw, "p1"))
        assert tc_filters(sw, "p1") == []
        assert "clsact" not in sw.exec("tc", "qdisc", "show", "dev", "p1")  # we added it
        assert not ingress.remove(ifindex(sw, "p1"))

    # A new instance (as after kill -9) finds what the old one left, and only that.
    sw.exec("tc", "filter", "add", "dev", "p2", "ingress", "pref", "7", "bpf", "bytecode", "1,6 0 0 0")
    with IngressFilter(netns=sw.name) as ingress:
        assert ingress.remove_stale() == [ifindex(sw, "p2")]
    remaining = tc_filters(sw, "p2")
    assert [f["pref"] for f in remaining] == [7]


@pytest.mark.netns
def test_reports_and_leaves_never_reach_the_bridge(lab: Lab) -> None:
    sw = lab.switch("sw", igmp_version=3)
    v3 = lab.host("h1", "p1", "192.0.2.1")
    v2 = lab.host("h2", "p2", "192.0.2.2", force_igmp_version=2)
    v1 = lab.host("h3", "p3", "192.0.2.3", force_igmp_version=1)
    watcher = lab.host("h4", "p4", "192.0.2.4")
    sw.sniff("p2")  # AF_PACKET/ETH_P_ALL on the switch port itself
    ingress = IngressFilter(netns=sw.name)
    for port in ("p1", "p2", "p3"):
        ingress.install(ifindex(sw, port))

    hosts = (v1.addr, v2.addr, v3.addr)
    v3.join("239.7.1.3")
    v2.join("239.7.1.2")
    v1.join("239.7.1.1")
    wait_until(lambda: sent_igmp(v2), 5, "h2 reports")
    v2.leave("239.7.1.2")
    # The tap on p2 comes before tc ingress: it sees the report and the leave...
    wait_until(
        lambda: {"v2-report", "leave"} <= {c.kind for c in sw.captured("p2") if c.incoming},
        5, "p2's tap sees h2's report and leave",
    )  # fmt: skip
    wait_until(lambda: sent_igmp(v1), 5, "h3 reports")
    wait_until(lambda: sent_igmp(v3), 5, "h1 reports")
    time.sleep(0.5)  # absence: give the bridge time it would need to learn or flood
    # ...but the bridge learns nothing and floods none of them to other ports.
    assert [e for e in sw.mdb() if e["port"] != "br0"] == []
    assert igmp_kinds(watcher, sources=hosts) == []

    for port in ("p1", "p2", "p3"):
        assert ingress.remove(ifindex(sw, port))
    v3.join("239.7.1.33")
    v2.join("239.7.1.22")
    v1.join("239.7.1.11")
    wait_until(lambda: sw.members("239.7.1.33") == {"p1"}, 5, "v3 report learned")
    wait_until(lambda: sw.members("239.7.1.22") == {"p2"}, 5, "v2 report learned")
    wait_until(lambda: sw.members("239.7.1.11") == {"p3"}, 5, "v1 report learned")
    wait_until(lambda: {"v1-report", "v2-report", "v3-report"} <= set(igmp_kinds(watcher, sources=hosts)), 5,
               "reports flooded again")
    ingress.close()


@pytest.mark.netns
def test_queries_still_pass(lab: Lab) -> None:
    sw = lab.switch("sw", igmp_version=3)
    h1 = lab.host("h1", "p1", "192.0.2.1")
    rq = lab.router_kernel_querier("rq", "pq", "192.0.2.200", query_interval=1.0)
    with IngressFilter(netns=sw.name) as ingress:
        for port in ("p1", "pq"):
            ingress.install(ifindex(sw, port))
        h1.reset()
        start = len(h1.captured(h1.iface))
        # The querier's queries cross the filter on pq: the bridge marks pq as a
        # multicast-router port (it saw a query there) and floods them to h1.
        wait_until(lambda: "pq" in sw.router_ports(), 10, "bridge learns the querier's port")
        wait_until(lambda: "query" in igmp_kinds(h1, start), 10, "h1 receives queries")
        # h1 answers the queries with reports; those stop at p1.
        h1.join("239.7.2.1")
        wait_until(lambda: [c for c in h1.igmp() if not c.incoming and c.kind == "v3-report"], 5, "report")
        time.sleep(0.3)
        assert sw.members("239.7.2.1") == set()
        assert rq.groups() == set()  # the querier never heard of it either
