"""Read-only views of the core's state, for the control socket and the CLI.

Times are absolute (``*_at``, the core's clock); ``expires_in`` values are
computed by the caller with the same clock.
"""

from __future__ import annotations

from typing import NamedTuple

from snoopd.core.actions import FilterMode


class SourceView(NamedTuple):
    address: str
    forwarding: bool
    expires_at: float | None  # None: timer not running (excluded source) or static


class EntryView(NamedTuple):
    group: str
    port: str
    mode: FilterMode
    sources: tuple[SourceView, ...]
    hosts: tuple[str, ...]
    expires_at: float | None  # group timer; None for INCLUDE mode or static-only entries
    compat: int
    origin: str  # "learned" | "static"


class PortView(NamedTuple):
    port: str
    up: bool
    router: str  # configured mode: "auto" | "on" | "off"
    is_router: bool
    router_expires_at: float | None
    fast_leave: bool
    groups: int


class QuerierView(NamedTuple):
    role: str  # "querier" | "non-querier" | "off"
    querier: str | None
    our_address: str
    querier_version: int
    other_querier_expires_at: float | None
    routers: tuple[str, ...]  # router-presence sources heard (PIM, DVMRP, MRD)


class Snapshot(NamedTuple):
    now: float
    entries: tuple[EntryView, ...]
    ports: tuple[PortView, ...]
    querier: QuerierView
