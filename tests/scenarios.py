"""Forwarding scenarios shared by kernel mode and software mode: the same real hosts,
the same stream, the same expectations; only snoopd's ``mode`` differs."""

from __future__ import annotations

import sys
import time

from .lab import Host, Lab, wait_not_receiving, wait_receiving, wait_until
from .snoopd_proc import Snoopd, seen

G = "239.1.1.1"
SSM = "232.1.1.1"
ROUTER_ADDR = "192.0.2.200"


def quiet_for(host: Host, group: str, stream: object, packets: int = 100) -> int:
    """How many of the next ``packets`` datagrams of ``stream`` reach ``host``'s wire."""
    before = host.seen(group)
    stream.wait_sent(packets)  # type: ignore[attr-defined]
    time.sleep(0.05)
    return host.seen(group) - before


def send_frames(ns: object, iface: str, frames: list[bytes]) -> None:
    """Send raw Ethernet frames out of ``iface`` inside namespace ``ns`` (a packet socket)."""
    code = ("import socket,sys\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n"
            f"s.bind(({iface!r},0))\n"
            "for h in sys.argv[1:]: s.send(bytes.fromhex(h))\n")
    ns.exec(sys.executable, "-c", code, *(f.hex() for f in frames))  # type: ignore[attr-defined]


def joined_and_router_ports_only(lab: Lab, mode: str, igmp_version: int) -> None:
    """Traffic reaches joined ports and router ports only (RFC 4541 §2.1.2(1))."""
    sw = lab.switch(addr="192.0.2.254")  # the router (.200) is the lower address: it stays querier
    rq = lab.router_kernel_querier("rq", "pq", ROUTER_ADDR)
    rq.sniff("eth0")
    h1 = lab.host("h1", "p1", "192.0.2.1", force_igmp_version=igmp_version)
    h2 = lab.host("h2", "p2", "192.0.2.2")
    src = lab.host("src", "p3", "192.0.2.3")
    d = Snoopd(lab, sw, mode)
    h1.join(G)
    wait_until(lambda: d.members(G) == {"p1"}, 5, "snoopd to learn h1")
    wait_until(lambda: "pq" in {p["port"] for p in d.cli("ports")["ports"] if p["is_router"]}, 5,
               "the router's port to be a router port")
    stream = src.stream(G, rate=300)
    wait_receiving(h1, G, 20)
    wait_until(lambda: seen(rq, "eth0", G) >= 20, 5, "the router port to get the stream")
    wait_not_receiving(h2, G, stream, timeout=15)
    assert quiet_for(h2, G, stream) == 0
    assert quiet_for(src, G, stream) == 0  # never back out of the ingress port
    r_before = seen(rq, "eth0", G)
    wait_receiving(h1, G, 50)
    assert seen(rq, "eth0", G) > r_before
    stream.stop()
    assert d.stop() == 0


def leave_prunes_after_last_member_time(lab: Lab, mode: str) -> None:
    """snoopd as querier: a v2 leave triggers LMQC group-specific queries; with no
    answer the port is pruned after LMQT (1 s here), not before."""
    sw = lab.switch(addr="192.0.2.254")
    h1 = lab.host("h1", "p1", "192.0.2.1", force_igmp_version=2)
    h2 = lab.host("h2", "p2", "192.0.2.2")
    src = lab.host("src", "p3", "192.0.2.3")
    d = Snoopd(lab, sw, mode, querier={"startup_wait": 0.0})
    h1.join(G)
    stream = src.stream(G, rate=200)
    wait_receiving(h1, G, 20, timeout=10)
    wait_not_receiving(h2, G, stream, timeout=10)
    start = time.monotonic()
    h1.leave(G)
    wait_until(lambda: d.members(G) == set(), 5, "snoopd to prune p1")
    pruned_after = time.monotonic() - start
    assert 0.8 <= pruned_after <= 3.0, pruned_after  # LMQT = 2 x 0.5 s
    assert quiet_for(h1, G, stream) == 0
    group_queries = [c for c in h2.igmp() if c.type == 0x11 and c.group == G]
    assert len(group_queries) >= 2, group_queries  # LMQC group-specific queries reached the hosts
    stream.stop()


def fast_leave_prunes_at_once(lab: Lab, mode: str, igmp_version: int) -> None:
    sw = lab.switch(addr="192.0.2.254")
    h1 = lab.host("h1", "p1", "192.0.2.1", force_igmp_version=igmp_version)
    src = lab.host("src", "p3", "192.0.2.3")
    d = Snoopd(lab, sw, mode, querier={"startup_wait": 0.0}, ports={"p1": {"fast_leave": True}})
    h1.join(G)
    stream = src.stream(G, rate=200)
    wait_receiving(h1, G, 20, timeout=10)
    h1.leave(G)
    took = wait_not_receiving(h1, G, stream, packets=10, timeout=5)
    assert took < 0.8, took  # at once: last-member processing would take LMQT (1 s) at least
    assert d.members(G) == set()
    assert quiet_for(h1, G, stream) == 0
    stream.stop()


def two_hosts_one_port_fast_leave(lab: Lab, mode: str, igmp_version: int) -> None:
    """Two hosts behind one fast-leave port: one leaves, the other keeps receiving
    (the kernel bridge cuts it off with IGMPv2)."""
    sw = lab.switch(addr="192.0.2.254")
    hub = lab.hub("hub", "p1")
    a = lab.host("a", "ha", "192.0.2.1", force_igmp_version=igmp_version, switch=hub)
    b = lab.host("b", "hb", "192.0.2.2", force_igmp_version=igmp_version, switch=hub)
    src = lab.host("src", "p3", "192.0.2.3")
    d = Snoopd(lab, sw, mode, querier={"startup_wait": 0.0}, ports={"p1": {"fast_leave": True}})
    def hosts_on_p1() -> int:
        entries = d.cli("mdb", "--group", G)["entries"]
        return len(entries[0]["hosts"]) if entries else 0

    a.join(G)
    wait_until(lambda: hosts_on_p1() == 1, 5, "a known on p1")
    b.join(G)
    # An IGMPv2 host cancels its own pending report when it hears another host's for the
    # same group (RFC 2236 §3), so b may only be heard answering a later query (every 2 s
    # here, where a and b race to answer first).
    wait_until(lambda: hosts_on_p1() == 2, 20, "both hosts known on p1")
    stream = src.stream(G, rate=200)
    wait_receiving(b, G, 20, timeout=10)
    a.leave(G)
    time.sleep(2.5)  # longer than LMQT: a wrong prune would have happened by now
    assert d.members(G) == {"p1"}
    wait_receiving(b, G, 50)
    b.leave(G)
    wait_until(lambda: d.members(G) == set(), 3, "p1 pruned after the last host left")
    stream.stop()


def source_specific_join(lab: Lab, mode: str) -> None:
    """(S,G) join: the host gets its source only (IGMPv3 INCLUDE, RFC 3376 §6.3)."""
    sw = lab.switch(addr="192.0.2.254")
    h1 = lab.host("h1", "p1", "192.0.2.1", force_igmp_version=3)
    src = lab.host("src", "p3", "192.0.2.3")
    src.add_address("192.0.2.4")
    d = Snoopd(lab, sw, mode, querier={"startup_wait": 0.0})
    h1.join(SSM, source="192.0.2.3")
    wait_until(lambda: d.members(SSM) == {"p1"}, 5, "snoopd to learn (S,G)")
    good = src.stream(SSM, rate=200, source="192.0.2.3")
    bad = src.stream(SSM, rate=200, source="192.0.2.4")
    wait_receiving(h1, SSM, 20, timeout=10)

    def unwanted_stopped() -> bool:
        before = h1.seen(SSM, source="192.0.2.4")
        bad.wait_sent(50)
        return h1.seen(SSM, source="192.0.2.4") == before
    wait_until(unwanted_stopped, 10, "the other source to stop reaching h1")
    before = h1.seen(SSM, source="192.0.2.4")
    bad.wait_sent(200)
    assert h1.seen(SSM, source="192.0.2.4") == before
    assert h1.seen(SSM, source="192.0.2.3") > 0
    good.stop()
    bad.stop()


def link_local_reaches_every_port(lab: Lab, mode: str) -> None:
    """224.0.0.0/24 is flooded, never pruned (RFC 4541 §2.1.2(2))."""
    sw = lab.switch(addr="192.0.2.254")
    hosts = [lab.host(f"h{i}", f"p{i}", f"192.0.2.{i}") for i in (1, 2)]
    src = lab.host("src", "p3", "192.0.2.3")
    Snoopd(lab, sw, mode, querier={"startup_wait": 0.0})
    time.sleep(1.5)  # the querier has queried: the kernel would prune if it were going to
    src.send("224.0.0.251", count=100, rate=500)
    for h in hosts:
        wait_until(lambda h=h: h.seen("224.0.0.251") >= 95, 5, f"{h.short} to see link-local traffic")


def port_removed_and_readded(lab: Lab, mode: str) -> None:
    sw = lab.switch(addr="192.0.2.254")
    h1 = lab.host("h1", "p1", "192.0.2.1", force_igmp_version=2)
    src = lab.host("src", "p3", "192.0.2.3")
    d = Snoopd(lab, sw, mode, querier={"startup_wait": 0.0})
    h1.join(G)
    wait_until(lambda: d.members(G) == {"p1"}, 5, "snoopd to learn h1")
    sw.ip("link", "set", "p1", "nomaster")
    wait_until(lambda: "p1" not in {p["port"] for p in d.cli("ports")["ports"]}, 5, "p1 to be gone")
    assert d.members(G) == set()
    assert "bpf" not in sw.exec("tc", "filter", "show", "dev", "p1", "ingress")  # our filter went with it
    sw.ip("link", "set", "p1", "master", sw.bridge)
    wait_until(lambda: "p1" in {p["port"] for p in d.cli("ports")["ports"]}, 5, "p1 to be back")
    # The next general query (every 2 s here) brings the membership back.
    wait_until(lambda: d.members(G) == {"p1"}, 8, "h1's membership to be relearned")
    stream = src.stream(G, rate=200)
    wait_receiving(h1, G, 20, timeout=10)
    stream.stop()


def report_frames(src_mac: str, source: str, groups: list[str], per_frame: int = 100,
                  version: int = 3) -> list[bytes]:
    """IGMP reports built by scapy (an implementation independent of snoopd's):
    IGMPv3 reports of ``per_frame`` TO_EX({}) records, or one IGMPv2 report per group."""
    from scapy.layers.igmp import IGMP, IGMPv3_MR, IGMPv3_MR_Group
    from scapy.layers.inet import IP, IPOption_Router_Alert
    from scapy.layers.l2 import Ether

    frames = []
    if version == 2:
        for g in groups:
            pkt = (Ether(src=src_mac, dst="01:00:5e:00:00:16") / IP(src=source, dst=g, ttl=1,
                   options=[IPOption_Router_Alert()]) / IGMP(type=0x16, gaddr=g))
            frames.append(bytes(pkt))
        return frames
    for i in range(0, len(groups), per_frame):
        records = [IGMPv3_MR_Group(rtype=4, maddr=g) for g in groups[i:i + per_frame]]
        pkt = (Ether(src=src_mac, dst="01:00:5e:00:00:16")
               / IP(src=source, dst="224.0.0.22", ttl=1, tos=0xC0, options=[IPOption_Router_Alert()])
               / IGMPv3_MR(records=records))
        frames.append(bytes(pkt))
    return frames
