"""Real multicast routers and queriers (tests/peers.py) against a plain Linux bridge.

Each peer starts in its own router namespace on a switch port, sends queries that arrive on
the switch (decoded from an AF_PACKET capture in the switch namespace, checksums verified),
learns a host's join through the switch, and stops cleanly: no process, no namespace left.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab import Captured, Lab, lab_session, pid_alive, run, wait_until
from tests.peers import PEERS, Peer, require_peer, start_peer

pytestmark = [pytest.mark.netns, pytest.mark.peers]

GROUP = "239.1.1.1"

# What each peer's general queries look like here (measured; see peers.md).
EXPECTED_QUERY = {
    # kind: (IGMP version, S flag, max response time in seconds)
    "kernel": (3, False, 1.0),
    "frr": (3, True, 1.0),  # FRR sets the S flag even in general queries
    "pimd": (3, False, 10.0),  # pimd's max response time is fixed at 10 s
    "igmpproxy": (2, False, 10.0),  # v2 only, not configurable
    "mrouted": (3, False, 1.0),
}
# Exit statuses on SIGTERM: FRR's pimd exits 1 from its SIGTERM handler.
CLEAN_EXIT = {"frr/pimd": {0, 1}}


@pytest.fixture
def lab() -> Iterator[Lab]:
    yield from lab_session("snpp")


def good_queries(lab: Lab, peer: Peer) -> list[Captured]:
    sw = lab.default_switch
    assert sw is not None
    return [q for q in sw.queries(peer.port, src=peer.address) if q.checksum_ok]


@pytest.mark.parametrize("kind", list(PEERS))
def test_peer_queries_learns_a_join_and_stops_cleanly(lab: Lab, kind: str) -> None:
    require_peer(kind)
    sw = lab.switch("sw")  # plain snooping bridge, no querier of its own
    sw.sniff()  # every interface, including the peer's port once it exists
    host = lab.host("h1", "p1", "192.0.2.1")
    peer = start_peer(lab, kind, port_name="pr", query_interval=2.0, query_response_interval=1.0)

    queries = wait_until(lambda: good_queries(lab, peer), peer.first_good_query_within + 5,
                         f"a query from {kind} with a good checksum")
    query = queries[0]
    version, s_flag, max_resp = EXPECTED_QUERY[kind]
    assert query.kind == "query" and query.group == "0.0.0.0" and query.dst == "224.0.0.1", query.describe()
    assert query.ip_checksum_ok
    assert (query.version, query.s_flag, query.max_resp) == (version, s_flag, max_resp), query.describe()
    print(f"{kind}: {query.describe()}; TTL {query.ttl}, router alert {query.router_alert}")
    # The bridge takes the querier's port as a multicast-router port.
    wait_until(lambda: "pr" in sw.router_ports(), 3, f"switch learns {kind}'s port as router port")

    host.join(GROUP)
    wait_until(lambda: GROUP in peer.groups(), 5, f"{kind} learns {GROUP}")

    processes = list(peer.processes)
    statuses = peer.stop()
    for process in processes:
        assert not process.killed, f"{process.name} needed SIGKILL"
        assert statuses[process.name] in CLEAN_EXIT.get(process.name, {0}), (process.name, statuses)
        assert not pid_alive(process.pid)
    assert peer.ns.name not in run(["ip", "netns", "list"]).split()
    # Its veth goes with its namespace (the kernel dismantles namespaces asynchronously).
    wait_until(lambda: "pr" not in sw.ports(), 5, "the peer's switch port to disappear")
