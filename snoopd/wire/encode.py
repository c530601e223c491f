"""Membership Query encoding: what snoopd sends when it acts as (proxy) querier.

Strict on output (snoopd reference §2.3): TTL 1, Router Alert, TOS 0xC0, DF,
correct checksums, whatever the version (RFC 2236 §2, RFC 3376 §4).
Arguments that cannot be encoded are our bugs or bad configuration and raise
``ValueError``.
"""

from __future__ import annotations

import math
import struct
from ipaddress import IPv4Address

from snoopd.wire.codes import encode_float_code, inet_checksum, ipv4_multicast_mac

__all__ = ["encode_ip_query", "encode_query", "query_destination"]

_ALL_SYSTEMS = "224.0.0.1"
_ROUTER_ALERT = b"\x94\x04\x00\x00"  # RFC 2113 §2.1, value 0: examine packet
_TOS_INTERNETWORK_CONTROL = 0xC0  # RFC 3376 §4
_DONT_FRAGMENT = 0x4000
_IPPROTO_IGMP = 2
_ETH_P_IP = b"\x08\x00"
_MAX_SOURCES = 0xFFFF
# Float → integer units: a tiny allowance so that e.g. 2.3 s → 23 tenths, not 22.
_EPSILON = 1e-9


def _checked_address(text: str, what: str) -> bytes:
    try:
        return IPv4Address(text).packed  # strict dotted quad, unlike inet_aton
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an IPv4 address") from None


def _units(seconds: float, per_second: int, what: str) -> int:
    """Seconds → integer wire units, rounded down (never announce more than used)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{what} must be a finite number of seconds >= 0, not {seconds!r}")
    return math.floor(seconds * per_second + _EPSILON)


def query_destination(group: str) -> str:
    """IP destination of a query: 224.0.0.1 for a General Query, else the group
    (RFC 2236 §9, RFC 3376 §4.1.12)."""
    return _ALL_SYSTEMS if group == "0.0.0.0" else group


def _igmp_query(
    version: int,
    group: bytes,
    sources: tuple[bytes, ...],
    max_response_time: float,
    suppress: bool,
    qrv: int,
    query_interval: float,
) -> bytes:
    """The IGMP part of a query, checksum filled in."""
    tenths = _units(max_response_time, 10, "max_response_time")
    if version == 1:
        # RFC 1112 App. I: the second byte is unused (0); v1 queries are general.
        if group != b"\x00\x00\x00\x00":
            raise ValueError("an IGMPv1 query is always a General Query (group 0.0.0.0)")
        code = 0
    elif version == 2:
        # RFC 2236 §2.2: linear 1/10 s. 0 would turn it into a v1 query (RFC 3376 §7.1).
        code = min(max(tenths, 1), 255)
    else:
        code = encode_float_code(tenths)  # RFC 3376 §4.1.1
    if version != 3:
        if sources:
            raise ValueError(f"an IGMPv{version} query cannot carry sources")
        message = struct.pack("!BBH4s", 0x11, code, 0, group)
    else:
        if qrv < 0:
            raise ValueError(f"qrv must be >= 0, not {qrv}")
        # RFC 3376 §4.1.6: QRV is 0 when the robustness variable exceeds 7.
        flags = (0x08 if suppress else 0) | (qrv if qrv <= 7 else 0)
        qqic = encode_float_code(_units(query_interval, 1, "query_interval"))  # RFC 3376 §4.1.7
        message = struct.pack("!BBH4sBBH", 0x11, code, 0, group, flags, qqic, len(sources))
        message += b"".join(sources)
    checksum = inet_checksum(message)  # RFC 2236 §2.3 / RFC 3376 §4.1.2
    return message[:2] + checksum.to_bytes(2, "big") + message[4:]


def encode_ip_query(
    version: int,
    group: str,
    sources: tuple[str, ...],
    max_response_time: float,
    suppress: bool,
    qrv: int,
    query_interval: float,
    source_address: str,
) -> bytes:
    """A Membership Query as an IPv4 packet (for a raw IP socket).

    ``version`` 1, 2 or 3; ``group`` "0.0.0.0" for a General Query. ``sources``,
    ``suppress``, ``qrv`` and ``query_interval`` are used by version 3 only
    (``sources`` must be empty otherwise). Times are seconds; they are rounded
    down to what the wire can carry.
    """
    if version not in (1, 2, 3):
        raise ValueError(f"IGMP query version must be 1, 2 or 3, not {version}")
    packed_group = _checked_address(group, "group")
    if packed_group != b"\x00\x00\x00\x00" and packed_group[0] & 0xF0 != 0xE0:
        raise ValueError(f"group {group} is not an IPv4 multicast address")
    if len(sources) > _MAX_SOURCES:
        raise ValueError(f"{len(sources)} sources do not fit a 16-bit count")
    packed_sources = tuple(_checked_address(source, "source") for source in sources)
    igmp = _igmp_query(
        version, packed_group, packed_sources, max_response_time, suppress, qrv, query_interval
    )
    destination = _checked_address(query_destination(group), "destination")
    source = _checked_address(source_address, "source_address")
    header_length = 24  # 20 + Router Alert; IHL 6
    header = struct.pack(
        "!BBHHHBBH4s4s4s",
        0x40 | header_length // 4,
        _TOS_INTERNETWORK_CONTROL,
        header_length + len(igmp),
        0,  # identification: unused with DF (RFC 6864 §4.1), the Linux bridge sends 0 too
        _DONT_FRAGMENT,
        1,  # TTL 1: RFC 2236 §2, RFC 3376 §4
        _IPPROTO_IGMP,
        0,
        source,
        destination,
        _ROUTER_ALERT,
    )
    checksum = inet_checksum(header)
    return header[:10] + checksum.to_bytes(2, "big") + header[12:] + igmp


def encode_query(
    version: int,
    group: str,
    sources: tuple[str, ...],
    max_response_time: float,
    suppress: bool,
    qrv: int,
    query_interval: float,
    source_address: str,
    src_mac: bytes | None = None,
) -> bytes:
    """A Membership Query as a full Ethernet frame (for an AF_PACKET socket).

    Destination MAC is the RFC 1112 §6.4 mapping of the IP destination
    (01:00:5e:00:00:01 for a General Query); source MAC ``src_mac`` or zeros.
    The frame is not padded to 60 bytes (the kernel or NIC pads short frames).
    See ``encode_ip_query`` for the other arguments.
    """
    if src_mac is None:
        src_mac = b"\x00" * 6
    if len(src_mac) != 6:
        raise ValueError(f"src_mac must be 6 bytes, not {len(src_mac)}")
    packet = encode_ip_query(
        version, group, sources, max_response_time, suppress, qrv, query_interval, source_address
    )
    destination = packet[16:20]
    return ipv4_multicast_mac(destination) + bytes(src_mac) + _ETH_P_IP + packet
