"""The JSON shapes of interface.md, built from a core Snapshot (pure functions).

Every object printed by ``--json`` has ``"version": 1``. Times are turned from the
core's absolute ``*_at`` into ``expires_in`` seconds with the snapshot's clock.
"""

from __future__ import annotations

from typing import Any

from snoopd.core.settings import Timers
from snoopd.core.snapshot import Snapshot

JSON_VERSION = 1


def _left(at: float | None, now: float) -> float | None:
    return None if at is None else round(max(0.0, at - now), 1)


def mdb_json(snapshot: Snapshot, bridge: str, group: str | None = None, port: str | None = None) -> dict[str, Any]:
    now = snapshot.now
    entries = []
    for e in sorted(snapshot.entries, key=lambda e: (_group_key(e.group), e.port)):
        if (group is not None and e.group != group) or (port is not None and e.port != port):
            continue
        entries.append({
            "group": e.group, "port": e.port, "vlan": None, "mode": e.mode.value,
            "sources": [{"address": s.address, "forwarding": s.forwarding, "expires_in": _left(s.expires_at, now)}
                        for s in sorted(e.sources, key=lambda s: _group_key(s.address))],
            "hosts": sorted(e.hosts, key=_group_key),
            "expires_in": _left(e.expires_at, now),
            "compat": e.compat,
            "origin": e.origin,
        })
    return {"version": JSON_VERSION, "bridge": bridge, "entries": entries}


def ports_json(snapshot: Snapshot, ifindexes: dict[str, int]) -> dict[str, Any]:
    return {"version": JSON_VERSION, "ports": [
        {"port": p.port, "ifindex": ifindexes.get(p.port), "up": p.up, "router": p.router,
         "is_router": p.is_router, "fast_leave": p.fast_leave, "groups": p.groups}
        for p in sorted(snapshot.ports, key=lambda p: p.port)
    ]}


def port_json(snapshot: Snapshot, ifindexes: dict[str, int], name: str) -> dict[str, Any]:
    [entry] = [p for p in ports_json(snapshot, ifindexes)["ports"] if p["port"] == name]
    return {"version": JSON_VERSION, **entry}


def querier_json(snapshot: Snapshot, timers: Timers) -> dict[str, Any]:
    q = snapshot.querier
    return {
        "version": JSON_VERSION, "role": q.role, "querier": q.querier, "our_address": q.our_address,
        "querier_version": q.querier_version,
        "other_querier_expires_in": _left(q.other_querier_expires_at, snapshot.now),
        "routers": list(q.routers),
        "timers": {
            "query_interval": timers.query_interval,
            "query_response_interval": timers.query_response_interval,
            "last_member_query_interval": timers.last_member_query_interval,
            "last_member_query_count": timers.last_member_query_count,
            "membership_interval": timers.membership_interval,
            "other_querier_present_interval": timers.other_querier_present_interval,
        },
    }


def _group_key(address: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in address.split("."))
    except ValueError:
        return (999,)
