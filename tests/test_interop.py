"""snoopd (kernel mode) with real multicast routers and queriers (tests/peers.py).

Every test builds one segment in network namespaces: a switch (br0) run by the real snoopd
daemon, two hosts on ports p1 (joins the groups) and p2 (joins nothing), a sender on p9
and one real peer on port "pr". Each test checks, for its peer:

- the querier election ends as it should (RFC 3376 §6.6.2: the lowest address wins; with
  ``yield_to_routers`` snoopd, the fallback querier, stays silent while a PIM / DVMRP
  router announces itself), measured on the wire from the switch's side;
- the peer's port is a multicast-router port in snoopd and in the kernel bridge, and it
  gets the hosts' reports and the stream of every registered group (RFC 4541 §2.1.1,
  §2.1.2);
- the peer's own group table has the hosts' groups;
- the joined host receives throughout, the other host does not get the stream.

A last test checks that a PIM router's port stays a router port for its hello holdtime
after the router stops querying (it lost the querier election to a lower address).

Where snoopd is querier, tshark (an independent decoder) checks every query it sent:
good IGMP checksum, TTL 1, Router Alert; and real Linux hosts answer them.

What each peer sent, measured by the switch's sniffer, is printed (``pytest -s``).
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab import Captured, Host, Lab, Netns, Stream, Switch, lab_session, wait_receiving, wait_until
from tests.peers import Peer, require_peer, start_peer
from tests.snoopd_proc import Snoopd, seen

pytestmark = [pytest.mark.netns, pytest.mark.peers]

G1, G2 = "239.1.1.1", "239.1.1.2"
GROUPS = (G1, G2)
ROUTER = "192.0.2.200"
SNOOPD_LOW = "192.0.2.100"  # below the router: snoopd wins the address election
SNOOPD_HIGH = "192.0.2.254"  # above the router: the router wins it
H1, H2, TX = "192.0.2.1", "192.0.2.2", "192.0.2.9"
ROUTER_PORT = "pr"
ABSENCE_WINDOW = 10.0  # seconds of measured silence
# A frame already on its way when snoopd (a Python daemon on shared cores) hears the
# router is a race, not a decision: a query this long after the router's announcement is.
RACE_MARGIN = 0.5
REPORT_KINDS = ("v1-report", "v2-report", "v3-report")


@pytest.fixture
def lab() -> Iterator[Lab]:
    yield from lab_session("sni")


# --------------------------------------------------------------------------- the segment


@dataclass
class Segment:
    lab: Lab
    sw: Switch
    h1: Host  # joins GROUPS
    h2: Host  # joins nothing
    tx: Host  # sends the streams

    @property
    def addr(self) -> str:
        assert self.sw.addr is not None
        return self.sw.addr


def segment(lab: Lab, snoopd_addr: str) -> Segment:
    sw = lab.switch(addr=snoopd_addr)
    sw.sniff()  # every port, also the router's once it exists
    h1 = lab.host("h1", "p1", H1)
    h2 = lab.host("h2", "p2", H2)
    tx = lab.host("tx", "p9", TX)
    return Segment(lab, sw, h1, h2, tx)


def stamp(c: Captured) -> float:
    """The kernel's receive time (CLOCK_REALTIME) of a captured frame."""
    return c.ts if c.ts is not None else time.time() - (time.monotonic() - c.t)


def general_queries(ns: Netns, iface: str, src: str, after: float = 0.0) -> list[Captured]:
    """General queries from ``src`` captured on ``iface``, in either direction (snoopd's
    queries leave through the bridge: on a switch port they are outgoing frames)."""
    return [c for c in ns.captured(iface)
            if c.kind == "query" and c.group == "0.0.0.0" and c.src == src and stamp(c) > after]


def announcements(seg: Segment, peer: Peer) -> list[Captured]:
    """PIM hellos (PIM type 0) and DVMRP messages from the peer, as they arrived at the switch."""
    return [c for c in seg.sw.captured(ROUTER_PORT) if c.incoming and c.src == peer.address
            and ((c.kind == "pim" and c.payload[:1] and c.payload[0] & 0x0F == 0) or c.kind == "dvmrp")]


def querier(d: Snoopd) -> dict[str, object]:
    result: dict[str, object] = d.cli("querier")
    return result


def router_port_in_snoopd(d: Snoopd, port: str = ROUTER_PORT) -> bool:
    return any(p["port"] == port and p["is_router"] for p in d.cli("ports")["ports"])


def wait_router_port(seg: Segment, d: Snoopd, timeout: float = 5.0) -> None:
    wait_until(lambda: router_port_in_snoopd(d), timeout, "the router's port to be a router port in snoopd")
    wait_until(lambda: ROUTER_PORT in seg.sw.router_ports(), timeout,
               "the router's port to be a router port in the kernel bridge")


def router_port_held(d: Snoopd, port: str = ROUTER_PORT) -> None:
    """Once learned, the router's port stayed a router port (the router lived throughout)."""
    events = [line for line in d.log.splitlines() if f"router_port.removed port={port}" in line
              or f"router_port.added port={port}" in line or "querier." in line or "router." in line]
    assert f"router_port.removed port={port}" not in d.log, "\n".join(events)


def wait_absence_window(start: float, seconds: float = ABSENCE_WINDOW) -> None:
    """Let a measured absence run its course: ``seconds`` after ``start`` (CLOCK_REALTIME)."""
    left = start + seconds + 0.2 - time.time()  # + the sniffer's lag
    if left > 0:
        time.sleep(left)


def join_and_stream(seg: Segment, d: Snoopd, peer: Peer) -> dict[str, Stream]:
    """h1 joins every group (with the router's port already a router port, its unsolicited
    reports go there at once); the router gets the reports and the streams, h1 the streams."""
    peer.ns.sniff("eth0")
    for g in GROUPS:
        seg.h1.join(g)
    for g in GROUPS:
        wait_until(lambda g=g: d.members(g) == {"p1"}, 5, f"snoopd to learn h1 in {g}")

    def reported() -> set[str]:
        return {r[1] for c in peer.ns.captured("eth0") if c.incoming and c.src == H1 and c.kind in REPORT_KINDS
                for r in (c.records or [(0, c.group, [])])}
    wait_until(lambda: set(GROUPS) <= reported(), 5, f"h1's reports on {peer.kind}'s eth0")
    streams = {g: seg.tx.stream(g, rate=100) for g in GROUPS}
    for g in GROUPS:
        wait_receiving(seg.h1, g, 20, timeout=10)
        wait_until(lambda g=g: seen(peer.ns, "eth0", g) >= 20, 10, f"{peer.kind}'s eth0 to get the stream of {g}")
    return streams


def wait_peer_groups(peer: Peer, timeout: float = 15.0) -> None:
    wait_until(lambda: peer.check_running() or set(GROUPS) <= peer.groups(), timeout,
               f"{peer.kind}'s own table to list {GROUPS}")


class Throughput:
    """h1 keeps receiving: what it got against what was sent since this was made."""

    def __init__(self, seg: Segment, streams: dict[str, Stream]) -> None:
        self.seg, self.streams = seg, streams
        self.before = {g: (seg.h1.received(g), s.sent) for g, s in streams.items()}

    def check(self) -> None:
        for g, s in self.streams.items():
            got0, sent0 = self.before[g]
            got, sent = self.seg.h1.received(g) - got0, s.sent - sent0
            assert sent >= 100, (g, sent)
            assert got >= 0.95 * sent, f"h1 got {got} of {sent} datagrams of {g}: a gap"


def h2_left_out(seg: Segment, streams: dict[str, Stream]) -> None:
    """The host that joined nothing stops seeing the streams (flooding is allowed only
    while the bridge has no querier to trust)."""
    for g, s in streams.items():
        def quiet(g: str = g, s: Stream = s) -> bool:
            before = seg.h2.seen(g)
            s.wait_sent(30)
            return seg.h2.seen(g) == before
        wait_until(quiet, 15, f"h2 to stop seeing {g}")


def describe_peer(seg: Segment, peer: Peer) -> str:
    """What the peer sent, as the switch received it."""
    frames = [c for c in seg.sw.captured(ROUTER_PORT) if c.incoming and c.src == peer.address]
    qs = [c for c in frames if c.kind == "query" and c.group == "0.0.0.0"]
    gaps = [round(stamp(b) - stamp(a), 2) for a, b in itertools.pairwise(qs)]
    kinds = sorted({(q.version, q.s_flag, q.max_resp, q.qrv, q.qqi, q.ttl, q.router_alert) for q in qs})
    pim = [c for c in frames if c.kind == "pim"]
    dvmrp = [c for c in frames if c.kind == "dvmrp"]
    return (f"{peer.kind} at {peer.address}: {len(qs)} general queries "
            f"(version, S, max resp, QRV, QQI, TTL, RA) {kinds}, bad checksums {sum(not q.checksum_ok for q in qs)}, "
            f"gaps {gaps}; PIM {len(pim)} (hello {sum(c.payload[0] & 0x0F == 0 for c in pim)}), "
            f"DVMRP {len(dvmrp)} (codes {sorted({c.payload[1] for c in dvmrp})})")


def describe_snoopd(seg: Segment, d: Snoopd) -> str:
    q = querier(d)
    sent = general_queries(seg.sw, "p2", seg.addr)
    ports = [p["port"] for p in d.cli("ports")["ports"] if p["is_router"]]
    events = [line.split(" ", 3)[-1] for line in d.log.splitlines()
              if "querier." in line or "router." in line or "router_port." in line]
    return (f"snoopd at {seg.addr}: role {q['role']}, querier {q['querier']}, routers {q['routers']}, "
            f"router ports {ports}, general queries sent {len(sent)}; events {events}")


# --------------------------------------------------------------------------- tshark


def tshark_queries(pcap: Path, src: str) -> list[tuple[str, int, bool]]:
    """(checksum status, TTL, Router Alert present) of every IGMP query from ``src`` in
    ``pcap``, as tshark decodes them (checksum verification on)."""
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-o", "ip.check_checksum:TRUE",
         "-Y", f"igmp.type == 0x11 && ip.src == {src}",
         "-T", "fields", "-E", "separator=|", "-e", "igmp.checksum.status", "-e", "ip.ttl", "-e", "ip.opt.ra"],
        capture_output=True, text=True, timeout=60, check=True, stdin=subprocess.DEVNULL).stdout
    rows = []
    for line in out.splitlines():
        status, ttl, ra = line.split("|")
        rows.append((status, int(ttl), ra != ""))
    return rows


def tshark_igmp(pcap: Path) -> list[tuple[float, str, int]]:
    """(time, source, IGMP type) of every IGMP message in ``pcap``."""
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", "igmp", "-T", "fields", "-E", "separator=|",
         "-e", "frame.time_epoch", "-e", "ip.src", "-e", "igmp.type"],
        capture_output=True, text=True, timeout=60, check=True, stdin=subprocess.DEVNULL).stdout
    rows = []
    for line in out.splitlines():
        t, src, kind = line.split("|")
        rows.append((float(t), src, int(kind, 0)))
    return rows


def assert_tshark_good(pcap: Path, src: str, at_least: int) -> None:
    rows = tshark_queries(pcap, src)
    assert len(rows) >= at_least, (pcap, rows)
    # igmp.checksum.status: 1 is Good, 0 Bad, 2 Unverified (wireshark's proto_checksum_status)
    bad = [r for r in rows if r != ("1", 1, True)]
    assert not bad, f"queries from {src} tshark does not accept (status, ttl, router alert): {bad}"


def write_pcap(path: Path, frames: list[Captured]) -> Path:
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    packets = []
    for c in frames:
        p = Ether(c.frame)
        p.time = stamp(c)
        packets.append(p)
    wrpcap(str(path), packets)
    return path


# --------------------------------------------------------------------------- kernel bridge querier


def test_kernel_querier_at_lower_address_stays_querier(lab: Lab) -> None:
    """The kernel bridge querier at .200, snoopd at .254: the router is querier; snoopd
    listens first (longer than one router query interval), hears it and never queries."""
    require_peer("kernel")
    seg = segment(lab, SNOOPD_HIGH)
    peer = start_peer(lab, "kernel", addr=ROUTER, query_interval=2.0, query_response_interval=1.0)
    wait_until(lambda: general_queries(seg.sw, ROUTER_PORT, ROUTER), 5, "the router's first query at the switch")
    # startup_wait 3 s > the router's 2 s query interval: snoopd hears it before it may query.
    d = Snoopd(lab, seg.sw, "kernel", querier={"startup_wait": 3.0})
    start = time.time()
    wait_until(lambda: (q := querier(d))["role"] == "non-querier" and q["querier"] == ROUTER, 8,
               "snoopd to take the router as querier")
    assert f"querier.other querier={ROUTER}" in d.log
    wait_router_port(seg, d)
    streams = join_and_stream(seg, d, peer)
    wait_peer_groups(peer)
    throughput = Throughput(seg, streams)
    h2_left_out(seg, streams)

    wait_absence_window(start)
    # Only the solicitation at start (the router, lower, ignores it); never a query as querier.
    sent = general_queries(seg.sw, "p2", seg.addr)
    assert len(sent) == 1 and stamp(sent[0]) < start + 1.0, \
        "snoopd queried although a lower-addressed querier lives: " + "; ".join(c.describe() for c in sent)
    assert "querier.elected" not in d.log
    assert len(general_queries(seg.sw, ROUTER_PORT, ROUTER, after=start)) >= 4  # the router kept querying
    q = querier(d)
    assert (q["role"], q["querier"]) == ("non-querier", ROUTER)
    assert router_port_in_snoopd(d) and ROUTER_PORT in seg.sw.router_ports()
    for g in GROUPS:
        before = seen(peer.ns, "eth0", g)
        wait_until(lambda g=g, before=before: seen(peer.ns, "eth0", g) > before, 5, f"the router still gets {g}")
    throughput.check()
    print("\n" + describe_peer(seg, peer) + "\n" + describe_snoopd(seg, d))
    for s in streams.values():
        s.stop()
    router_port_held(d)
    assert d.stop() == 0


def test_kernel_querier_at_higher_address_stands_down(lab: Lab) -> None:
    """The kernel bridge querier at .200, snoopd at .100: snoopd becomes querier and the
    kernel querier falls silent, from snoopd's solicitation at start on (the lower address
    wins, RFC 3376 §6.6.2). Real hosts answer snoopd's queries, and tshark accepts every
    one of them (checksum, TTL 1, Router Alert).

    The kernel querier is no multicast router: once silent it sends nothing a snooping
    switch could know it by, so its port is a router port only while it queries."""
    require_peer("kernel")
    if shutil.which("tshark") is None:
        pytest.fail("tshark is needed (apt-get install tshark)")
    seg = segment(lab, SNOOPD_LOW)
    peer = start_peer(lab, "kernel", addr=ROUTER, query_interval=2.0, query_response_interval=1.0)
    peer.ns.sniff("eth0")
    wait_until(lambda: general_queries(seg.sw, ROUTER_PORT, ROUTER), 5, "the router's first query at the switch")
    d = Snoopd(lab, seg.sw, "kernel", querier={"startup_wait": 3.0})
    # snoopd's solicitation reaches the router at once; snoopd listens 3 s (the router,
    # silent from then on, is not heard) and is then elected.
    first = wait_until(lambda: general_queries(peer.ns, "eth0", seg.addr), 5, "snoopd's first query at the router")
    t_first = stamp(first[0])
    assert "querier.solicit address=192.0.2.100" in d.log
    wait_until(lambda: querier(d)["role"] == "querier", 8, "snoopd to be querier")

    pcap = lab.dir / "h1-eth0.pcap"
    capture = seg.h1.spawn("tshark", ["tshark", "-q", "-i", "eth0", "-a", "duration:8", "-f", "igmp",
                                      "-w", str(pcap)])
    wait_until(lambda: not capture.alive() or "Capturing on" in capture.log_text(), 10, "tshark to capture")
    for g in GROUPS:
        seg.h1.join(g)
    for g in GROUPS:
        wait_until(lambda g=g: d.members(g) == {"p1"}, 5, f"snoopd to learn h1 in {g}")
    streams = {g: seg.tx.stream(g, rate=100) for g in GROUPS}
    for g in GROUPS:
        wait_receiving(seg.h1, g, 20, timeout=10)
    throughput = Throughput(seg, streams)
    h2_left_out(seg, streams)

    wait_absence_window(t_first)
    late = [c for c in peer.ns.captured("eth0")
            if not c.incoming and c.kind == "query" and stamp(c) > t_first + RACE_MARGIN]
    assert late == [], [c.describe() for c in late]
    assert general_queries(seg.sw, ROUTER_PORT, ROUTER, after=t_first + RACE_MARGIN) == []
    assert len(general_queries(seg.sw, "p2", seg.addr, after=t_first)) >= 4  # snoopd kept querying
    q = querier(d)
    assert (q["role"], q["querier"]) == ("querier", seg.addr)
    peer.check_running()
    throughput.check()
    wait_receiving(seg.h1, G1, 20)

    # tshark, live capture on h1's eth0 while snoopd queried.
    wait_until(lambda: not capture.alive(), 15, "tshark to finish")
    assert capture.returncode == 0, capture.log_text()
    assert_tshark_good(pcap, seg.addr, at_least=3)
    # The joined host answered: a report from h1 after each of snoopd's general queries but the last.
    igmp = tshark_igmp(pcap)
    query_times = [t for t, src, kind in igmp if src == seg.addr and kind == 0x11]
    report_times = [t for t, src, kind in igmp if src == H1 and kind in (0x12, 0x16, 0x22)]
    answered = [tq for tq in query_times[:-1] if any(tq < tr <= tq + 1.5 for tr in report_times)]
    assert len(answered) >= 2 and len(answered) >= len(query_times[:-1]) - 1, (query_times, report_times)
    # Every query snoopd sent that reached h1 (the lab sniffer, from the start), through tshark too.
    from_snoopd = [c for c in seg.h1.igmp() if c.kind == "query" and c.src == seg.addr]
    assert_tshark_good(write_pcap(lab.dir / "h1-sniffer.pcap", from_snoopd), seg.addr, at_least=len(from_snoopd))
    print("\n" + describe_peer(seg, peer) + "\n" + describe_snoopd(seg, d)
          + f"\ntshark: {len(tshark_queries(pcap, seg.addr))} queries from snoopd in the live capture, "
          f"all Good/TTL 1/RA; h1 answered {len(answered)} of {len(query_times) - 1}")
    for s in streams.values():
        s.stop()
    assert d.stop() == 0


# --------------------------------------------------------------------------- igmpproxy


def test_igmpproxy_is_querier_and_snoopd_stays_down(lab: Lab) -> None:
    """igmpproxy (IGMPv2 queries every 6-10 s, irregular) at .200, snoopd at .254 with an
    other-querier-present interval of 15 s: snoopd, querier until then, stands down at
    igmpproxy's first query and stays down."""
    require_peer("igmpproxy")
    seg = segment(lab, SNOOPD_HIGH)
    # igmpproxy's IGMPv2 queries carry neither its interval nor its robustness, so snoopd
    # cannot learn them: its timers are set to match, as an operator would. Its queries came
    # 6-12.5 s apart here and hosts answer within its 10 s Max Resp Time, so a membership
    # lives 2 x 12.5 + 10 s; the other querier, 15 s.
    d = Snoopd(lab, seg.sw, "kernel", igmp={"other_querier_present_interval": 15.0, "membership_interval": 35.0})
    wait_until(lambda: querier(d)["role"] == "querier", 8, "snoopd to be querier")
    wait_until(lambda: len(general_queries(seg.sw, "p2", seg.addr)) >= 2, 5, "snoopd's first query as querier")
    peer = start_peer(lab, "igmpproxy", addr=ROUTER)
    first = wait_until(lambda: general_queries(seg.sw, ROUTER_PORT, ROUTER), 15, "igmpproxy's first query")
    t_first = stamp(first[0])
    wait_until(lambda: (q := querier(d))["role"] == "non-querier" and q["querier"] == ROUTER, 5,
               "snoopd to stand down")
    assert "querier.standing_down" in d.log and f"querier.other querier={ROUTER}" in d.log
    wait_router_port(seg, d)
    streams = join_and_stream(seg, d, peer)
    wait_peer_groups(peer)
    throughput = Throughput(seg, streams)
    h2_left_out(seg, streams)

    # Over more than one other-querier-present interval, with igmpproxy's gaps in it.
    wait_absence_window(t_first, 16.0)
    late = general_queries(seg.sw, "p2", seg.addr, after=t_first + RACE_MARGIN)
    assert late == [], (f"snoopd queried again (igmpproxy's queries: {describe_peer(seg, peer)}): "
                        + "; ".join(c.describe() for c in late))
    assert general_queries(seg.sw, ROUTER_PORT, ROUTER, after=t_first)  # igmpproxy kept querying
    q = querier(d)
    assert (q["role"], q["querier"]) == ("non-querier", ROUTER)
    assert d.log.count("querier.elected") == 1  # only the one before igmpproxy came
    assert router_port_in_snoopd(d) and ROUTER_PORT in seg.sw.router_ports()
    peer.check_running()
    throughput.check()
    wait_receiving(seg.h1, G1, 20)
    print("\n" + describe_peer(seg, peer) + "\n" + describe_snoopd(seg, d))
    for s in streams.values():
        s.stop()
    router_port_held(d)
    assert d.stop() == 0


# --------------------------------------------------------------------------- PIM and DVMRP routers


def router_announces_itself(lab: Lab, kind: str, igmp: dict[str, object] | None = None,
                            ) -> tuple[Segment, Snoopd, Peer]:
    """snoopd (.100) starts first and is querier; then the router (.200, the higher address)
    comes up: at its first PIM hello / DVMRP probe snoopd stands down, and it sends no
    general query for as long as the router lives (measured over 10 s)."""
    require_peer(kind)
    seg = segment(lab, SNOOPD_LOW)
    d = Snoopd(lab, seg.sw, "kernel", igmp=igmp)
    wait_until(lambda: querier(d)["role"] == "querier", 8, "snoopd to be querier")
    wait_until(lambda: general_queries(seg.sw, "p2", seg.addr), 5, "snoopd's first query")
    peer = start_peer(lab, kind, addr=ROUTER, query_interval=2.0, query_response_interval=1.0)
    hello = wait_until(lambda: peer.check_running() or announcements(seg, peer), 15,
                       f"{kind}'s first PIM hello / DVMRP probe at the switch")
    t_hello = stamp(hello[0])
    wait_until(lambda: (q := querier(d))["role"] == "non-querier" and ROUTER in q["routers"], 3,
               f"snoopd to stand down for {kind}")
    assert "querier.standing_down" in d.log
    wait_router_port(seg, d)
    streams = join_and_stream(seg, d, peer)
    wait_peer_groups(peer, timeout=20)
    throughput = Throughput(seg, streams)
    h2_left_out(seg, streams)

    wait_absence_window(t_hello)
    late = general_queries(seg.sw, "p2", seg.addr, after=t_hello + RACE_MARGIN)
    assert late == [], (f"snoopd queried after {kind}'s announcement at {t_hello:.3f}: "
                        + "; ".join(f"{stamp(c):.3f} {c.describe()}" for c in late))
    q = querier(d)
    assert q["role"] == "non-querier" and ROUTER in q["routers"], q  # type: ignore[operator]
    assert router_port_in_snoopd(d) and ROUTER_PORT in seg.sw.router_ports()
    peer.check_running()
    throughput.check()
    for g in GROUPS:
        before = seen(peer.ns, "eth0", g)
        wait_until(lambda g=g, before=before: seen(peer.ns, "eth0", g) > before, 5, f"{kind} still gets {g}")
    wait_receiving(seg.h1, G1, 20)
    # snoopd's own queries, before the router came, pass tshark too.
    from_snoopd = [c for c in seg.h2.igmp() if c.kind == "query" and c.src == seg.addr]
    assert_tshark_good(write_pcap(lab.dir / "h2-sniffer.pcap", from_snoopd), seg.addr, at_least=1)
    print("\n" + describe_peer(seg, peer) + "\n" + describe_snoopd(seg, d))
    for s in streams.values():
        s.stop()
    return seg, d, peer


def test_frr_pim_hello_silences_snoopd(lab: Lab) -> None:
    seg, d, _ = router_announces_itself(lab, "frr")
    assert all(q.s_flag for q in general_queries(seg.sw, ROUTER_PORT, ROUTER))  # FRR's quirk
    assert d.stats().get("rx.router.pim", 0) >= 1
    router_port_held(d)
    assert d.stop() == 0


def test_pimd_pim_hello_silences_snoopd_and_its_bad_checksum_is_counted(lab: Lab) -> None:
    # pimd advertises QQI 2 s but queries on its 5 s timer tick (5.0-5.8 s apart here),
    # with a fixed 10 s Max Resp Time: snoopd's timers are set to what it really does
    # (RFC 3376 §8.4, §8.5 with QI 6 s, QRI 10 s), as an operator would.
    seg, d, _ = router_announces_itself(
        lab, "pimd", igmp={"membership_interval": 22.0, "other_querier_present_interval": 17.0})
    # Its first query has a bad IGMP checksum: snoopd counts it, drops it and runs on.
    queries = [c for c in seg.sw.captured(ROUTER_PORT) if c.incoming and c.kind == "query" and c.src == ROUTER]
    assert queries and not queries[0].checksum_ok, [c.describe() for c in queries[:2]]
    assert d.stats().get("malformed.bad_checksum", 0) >= 1
    assert d.process.alive()
    router_port_held(d)
    assert d.stop() == 0


def test_mrouted_dvmrp_probe_silences_snoopd(lab: Lab) -> None:
    _, d, _ = router_announces_itself(lab, "mrouted")
    assert d.stats().get("rx.router.dvmrp", 0) >= 1
    router_port_held(d)
    assert d.stop() == 0


def test_pim_router_that_stops_querying_stays_a_router_port(lab: Lab) -> None:
    """FRR is querier until a lower-addressed querier (the kernel's, .150) comes; then it
    only sends PIM hellos (holdtime 105 s). Its port must stay a router port for that
    holdtime (RFC 4541 §2.1.1: router ports are learned from queries AND PIM hellos), not
    lapse one other-querier-present interval after its last query."""
    require_peer("frr")
    require_peer("kernel")
    seg = segment(lab, SNOOPD_HIGH)
    d = Snoopd(lab, seg.sw, "kernel")
    frr = start_peer(lab, "frr", addr=ROUTER, query_interval=2.0, query_response_interval=1.0)
    wait_until(lambda: frr.check_running() or announcements(seg, frr), 15, "FRR's PIM hello")
    wait_until(lambda: general_queries(seg.sw, ROUTER_PORT, ROUTER), 8, "FRR's first query")
    wait_router_port(seg, d)
    low = "192.0.2.150"
    start_peer(lab, "kernel", name="rq", port_name="pq", addr=low, query_interval=2.0, query_response_interval=1.0)
    first = wait_until(lambda: general_queries(seg.sw, "pq", low), 5, "the kernel querier's first query")
    t_low = stamp(first[0])
    wait_until(lambda: querier(d)["querier"] == low, 5, "snoopd to take .150 as querier")

    wait_absence_window(t_low, 12.0)
    frr_late = general_queries(seg.sw, ROUTER_PORT, ROUTER, after=t_low + 2.5)
    assert frr_late == [], "FRR was meant to stop querying (the scenario): " + str([c.describe() for c in frr_late])
    frr.check_running()
    q = querier(d)
    print("\n" + describe_peer(seg, frr) + "\n" + describe_snoopd(seg, d))
    assert ROUTER in q["routers"], q  # type: ignore[operator]  # snoopd itself says the router lives
    router_port_held(d)
    assert router_port_in_snoopd(d) and ROUTER_PORT in seg.sw.router_ports()
    assert d.stop() == 0
