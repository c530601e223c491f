"""Actions: what the core asks the data plane to do. ``Snooper.take_actions()``
returns them in order; adapters carry them out and make no protocol decisions.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class FilterMode(Enum):
    """Router-side filter mode of a (port, group), RFC 3376 §6.2."""

    INCLUDE = "include"
    EXCLUDE = "exclude"


class InstallGroup(NamedTuple):
    """Forward ``group`` to ``port`` (install or replace the port's entry).

    ``mode`` INCLUDE: forward only the ``sources``.
    ``mode`` EXCLUDE: forward every source except the ``sources`` (the blocked,
    timer-0 list Y of RFC 3376 §6.2.1; empty for an any-source join).
    Emitted only when what is forwarded changes, not on timer refreshes.
    """

    port: str
    group: str
    mode: FilterMode
    sources: frozenset[str] = frozenset()


class RemoveGroup(NamedTuple):
    """Stop forwarding ``group`` to ``port`` (remove the port's entry)."""

    port: str
    group: str


class SetRouterPort(NamedTuple):
    """``port`` is (or stops being) a multicast-router port (RFC 4541 §2.1.1(1))."""

    port: str
    is_router: bool


class ForwardControl(NamedTuple):
    """Send the captured IGMP ``frame`` out of ``ports`` (RFC 4541 §2.1.1).

    ``is_query``: queries are flooded by the kernel bridge itself in kernel mode;
    reports and leaves are not (snoopd's ingress filter drops them), so snoopd
    forwards those to router ports.
    """

    frame: bytes
    ingress: str
    ports: tuple[str, ...]
    is_query: bool


class SendQuery(NamedTuple):
    """Send a membership query out of the bridge (to every port).

    ``group`` "0.0.0.0" is a general query; ``sources`` makes it a
    group-and-source-specific query. Times in seconds; ``source_address`` is the
    IPv4 source to put in the IP header ("0.0.0.0" when the bridge has none).
    """

    version: int
    group: str
    sources: tuple[str, ...]
    max_response_time: float
    suppress_router_processing: bool
    qrv: int
    query_interval: float
    source_address: str


class Notice(NamedTuple):
    """A state change worth an INFO log line: ``event`` is a fixed name such as
    ``group.joined``; ``fields`` are its key=value pairs."""

    event: str
    fields: tuple[tuple[str, str], ...] = ()


Action = InstallGroup | RemoveGroup | SetRouterPort | ForwardControl | SendQuery | Notice
