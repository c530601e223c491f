"""Decoded protocol messages: what ``snoopd.wire`` produces and the core consumes.

Addresses are dotted-quad strings; times are float seconds (wire units are
converted in ``snoopd.wire``). Messages are NamedTuples because they are built on
the hot path (one per captured frame, one record per group).
"""

from __future__ import annotations

from enum import Enum, IntEnum
from typing import NamedTuple


class RecordType(IntEnum):
    """IGMPv3 group record types, RFC 3376 §4.2.12."""

    MODE_IS_INCLUDE = 1
    MODE_IS_EXCLUDE = 2
    CHANGE_TO_INCLUDE_MODE = 3
    CHANGE_TO_EXCLUDE_MODE = 4
    ALLOW_NEW_SOURCES = 5
    BLOCK_OLD_SOURCES = 6


class GroupRecord(NamedTuple):
    """One group record of an IGMPv3 report (RFC 3376 §4.2.4)."""

    record_type: RecordType
    group: str
    sources: tuple[str, ...] = ()
    aux_data: bytes = b""


class Report(NamedTuple):
    """A membership report of any version.

    IGMPv1 (type 0x12) and IGMPv2 (type 0x16) reports carry one record
    ``MODE_IS_EXCLUDE(group, ())`` and ``version`` 1 or 2; the core applies the
    RFC 3376 §7.3.2 compatibility rules. IGMPv3 reports carry their records as sent
    (records of unknown type are dropped by the decoder, RFC 3376 §4.2.12).
    """

    version: int
    records: tuple[GroupRecord, ...]
    source: str
    destination: str
    ttl: int = 1
    router_alert: bool = True


class Leave(NamedTuple):
    """IGMPv2 Leave Group (type 0x17, RFC 2236 §2)."""

    group: str
    source: str
    destination: str
    ttl: int = 1
    router_alert: bool = True


class Query(NamedTuple):
    """A membership query of any version (told apart as RFC 3376 §7.1 says).

    ``group`` is ``"0.0.0.0"`` for a general query. ``max_response_time`` is in
    seconds (v1 queries: 10 s, RFC 2236 §4). ``qrv`` and ``query_interval`` are 0
    when the query does not carry them (v1/v2) or carries 0.
    """

    version: int
    group: str
    source: str
    destination: str
    max_response_time: float
    sources: tuple[str, ...] = ()
    suppress_router_processing: bool = False
    qrv: int = 0
    query_interval: float = 0.0
    ttl: int = 1
    router_alert: bool = True

    @property
    def is_general(self) -> bool:
        return self.group == "0.0.0.0"


class RouterProtocol(Enum):
    """Multicast-router presence signals (besides queries)."""

    PIM = "pim"  # PIMv2 Hello, RFC 7761 §4.9.2
    DVMRP = "dvmrp"  # DVMRP Probe, IGMP type 0x13 code 1
    MRD = "mrd"  # Multicast Router Discovery Advertisement, RFC 4286 §3


class RouterHello(NamedTuple):
    """A router announced itself. ``holdtime`` in seconds, None when not carried.

    A PIM hello with holdtime 0 is a goodbye (RFC 7761 §4.3.1); an MRD
    Termination is reported with ``holdtime`` 0 too.
    """

    protocol: RouterProtocol
    source: str
    destination: str
    holdtime: float | None = None


class MalformedReason(Enum):
    """Why a frame was not understood; each has its own counter."""

    NOT_IPV4 = "not_ipv4"
    BAD_IP_HEADER = "bad_ip_header"
    BAD_IP_CHECKSUM = "bad_ip_checksum"
    BAD_IP_LENGTH = "bad_ip_length"
    TRUNCATED = "truncated"
    BAD_CHECKSUM = "bad_checksum"
    BAD_QUERY_LENGTH = "bad_query_length"
    NOT_MULTICAST_GROUP = "not_multicast_group"
    MISSING_ROUTER_ALERT = "missing_router_alert"
    GENERAL_QUERY_BAD_DESTINATION = "general_query_bad_destination"
    UNKNOWN_TYPE = "unknown_type"
    NOT_IGMP = "not_igmp"


class Malformed(NamedTuple):
    """A frame snoopd could not use. ``detail`` is for humans."""

    reason: MalformedReason
    detail: str = ""


Message = Report | Leave | Query | RouterHello
