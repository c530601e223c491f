"""Frame → message decoding: the hot path, hand-written with ``struct``.

``decode(frame)`` takes a whole Ethernet frame and returns a ``Report``, ``Leave``,
``Query`` or ``RouterHello`` (``snoopd.core.messages``), or ``Malformed(reason)``.
It never raises: every field is bounds-checked before it is read.

Validation follows what the Linux bridge does in ``ip_mc_check_igmp()`` (IPv4
version/IHL, header checksum, total length, IGMP checksum over the whole payload,
query length 8 or ≥ 12, General Query only to 224.0.0.1), plus a few deliberate
extra checks, each commented where it is made.
"""

from __future__ import annotations

import struct
from socket import inet_ntoa

from snoopd.core.messages import (
    GroupRecord,
    Leave,
    Malformed,
    MalformedReason,
    Message,
    Query,
    RecordType,
    Report,
    RouterHello,
    RouterProtocol,
)
from snoopd.wire.codes import checksum_ok, decode_float_code

__all__ = ["decode", "decode_ip"]

_ETH_P_IP = 0x0800
_ETH_P_8021Q = 0x8100
_IPPROTO_IGMP = 2
_IPPROTO_PIM = 103

_IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
_RECORD_HEADER = struct.Struct("!BBH4s")  # type, aux data len, number of sources, group
_U16 = struct.Struct("!H")
_U16_PAIR = struct.Struct("!HH")

_ZERO_ADDRESS = b"\x00\x00\x00\x00"
_ALL_SYSTEMS = b"\xe0\x00\x00\x01"  # 224.0.0.1
_ALL_PIM_ROUTERS = b"\xe0\x00\x00\x0d"  # 224.0.0.13
_ALL_SNOOPERS = b"\xe0\x00\x00\x6a"  # 224.0.0.106, RFC 4286 §3.3

# Record type byte → enum member; a dict lookup is much cheaper than RecordType(x).
_RECORD_TYPES: dict[int, RecordType] = {member.value: member for member in RecordType}

# Address → dotted-quad memo. Groups and hosts repeat, and a dict hit costs a
# third of inet_ntoa(); cleared when full so hostile traffic cannot grow it.
_ADDRESS_NAMES: dict[bytes, str] = {}
_ADDRESS_NAMES_MAX = 16384
_new_tuple = tuple.__new__  # builds a NamedTuple without its Python-level __new__

_TRUNCATED_ETHERNET = Malformed(MalformedReason.TRUNCATED, "frame shorter than an Ethernet header")
_TRUNCATED_IP = Malformed(MalformedReason.TRUNCATED, "frame shorter than the IPv4 header")
_BAD_IP_CHECKSUM = Malformed(MalformedReason.BAD_IP_CHECKSUM, "IPv4 header checksum does not verify")
_BAD_CHECKSUM = Malformed(MalformedReason.BAD_CHECKSUM, "IGMP checksum does not verify")
_BAD_PIM_CHECKSUM = Malformed(MalformedReason.BAD_CHECKSUM, "PIM checksum does not verify")
_MISSING_RA = Malformed(MalformedReason.MISSING_ROUTER_ALERT, "no IPv4 Router Alert option")
_NOT_MULTICAST = MalformedReason.NOT_MULTICAST_GROUP
_TRUNCATED = MalformedReason.TRUNCATED
_UNKNOWN_TYPE = MalformedReason.UNKNOWN_TYPE


def decode(
    frame: bytes | bytearray | memoryview, *, require_router_alert: bool = False
) -> Message | Malformed:
    """Decode an Ethernet frame (optionally with one in-frame 802.1Q tag).

    ``require_router_alert``: reject IGMPv2/v3 reports, leaves and queries that
    lack the Router Alert option (RFC 3376 §9.2 allows a router to; RFC 2236 §10
    warns that it breaks some old hosts). IGMPv1 never needs it.
    """
    buf = frame if type(frame) is bytes else bytes(frame)
    if len(buf) < 14:
        return _TRUNCATED_ETHERNET
    ethertype = (buf[12] << 8) | buf[13]
    offset = 14
    if ethertype == _ETH_P_8021Q:
        if len(buf) < 18:
            return _TRUNCATED_ETHERNET
        ethertype = (buf[16] << 8) | buf[17]
        offset = 18
    if ethertype != _ETH_P_IP:
        return Malformed(MalformedReason.NOT_IPV4, f"ethertype 0x{ethertype:04x}")
    return _decode_ipv4(buf, offset, require_router_alert)


def decode_ip(
    packet: bytes | bytearray | memoryview, *, require_router_alert: bool = False
) -> Message | Malformed:
    """Like ``decode`` for a bare IPv4 packet (no Ethernet header)."""
    buf = packet if type(packet) is bytes else bytes(packet)
    return _decode_ipv4(buf, 0, require_router_alert)


def _decode_ipv4(buf: bytes, offset: int, require_ra: bool) -> Message | Malformed:
    available = len(buf) - offset
    if available < 20:
        return _TRUNCATED_IP
    version_ihl = buf[offset]
    if version_ihl >> 4 != 4:
        return Malformed(MalformedReason.BAD_IP_HEADER, f"IP version {version_ihl >> 4}")
    header_length = (version_ihl & 0x0F) * 4
    if header_length < 20:
        return Malformed(MalformedReason.BAD_IP_HEADER, f"IHL {header_length // 4} < 5")
    if available < header_length:
        return _TRUNCATED_IP
    if not checksum_ok(buf[offset : offset + header_length]):
        return _BAD_IP_CHECKSUM
    _, _, total_length, _, fragment, ttl, protocol, _, source, destination = _IPV4_HEADER.unpack_from(
        buf, offset
    )
    if total_length > available or total_length < header_length:
        return Malformed(
            MalformedReason.BAD_IP_LENGTH,
            f"total length {total_length}, header {header_length}, {available} bytes available",
        )
    # Bytes after total_length are Ethernet padding (frames are at least 60 bytes).
    end = offset + total_length
    if fragment & 0x3FFF:
        # Not a Linux check. IGMP/PIM messages must fit one packet (RFC 3376
        # §4.2.16 splits large reports); a fragment cannot be checked alone.
        return Malformed(MalformedReason.BAD_IP_HEADER, "IP fragment")
    start = offset + header_length
    if protocol == _IPPROTO_IGMP:
        router_alert = header_length > 20 and _has_router_alert(buf, offset + 20, start)
        return _decode_igmp(buf, start, end, source, destination, ttl, router_alert, require_ra)
    if protocol == _IPPROTO_PIM:
        return _decode_pim(buf, start, end, source, destination)
    return Malformed(MalformedReason.NOT_IGMP, f"IP protocol {protocol}")


def _ntoa(address: bytes) -> str:
    """``inet_ntoa`` through the memo (hot loops inline the ``.get``)."""
    name = _ADDRESS_NAMES.get(address)
    if name is None:
        if len(_ADDRESS_NAMES) >= _ADDRESS_NAMES_MAX:
            _ADDRESS_NAMES.clear()
        name = _ADDRESS_NAMES[address] = inet_ntoa(address)
    return name


def _has_router_alert(buf: bytes, position: int, end: int) -> bool:
    """Look for the Router Alert option (0x94, length 4; RFC 2113 §2.1) in IPv4 options."""
    while position < end:
        option = buf[position]
        if option == 0:  # End of Option List (RFC 791)
            return False
        if option == 1:  # No Operation
            position += 1
            continue
        if position + 1 >= end:
            return False
        length = buf[position + 1]
        if length < 2 or position + length > end:
            return False  # malformed options: stop looking
        if option == 0x94 and length == 4:
            return True
        position += length
    return False


def _decode_igmp(
    buf: bytes,
    start: int,
    end: int,
    source: bytes,
    destination: bytes,
    ttl: int,
    router_alert: bool,
    require_ra: bool,
) -> Message | Malformed:
    length = end - start
    if length < 1:
        return Malformed(_TRUNCATED, "empty IGMP message")
    igmp_type = buf[start]
    # MRD Solicitation and Termination are 4 bytes (RFC 4286 §4.1, §5.1); every
    # other message we understand has at least the 8-byte IGMP header.
    minimum = 4 if igmp_type in (0x31, 0x32) else 8
    if length < minimum:
        return Malformed(_TRUNCATED, f"IGMP type 0x{igmp_type:02x}: {length} bytes")
    # RFC 2236 §2.3, RFC 3376 §4.1.2 / §4.2.2: the checksum covers the whole IGMP
    # message, i.e. IP total length minus IP header, not just the fixed part.
    if not checksum_ok(buf[start:end]):
        return _BAD_CHECKSUM
    if igmp_type == 0x22:
        if require_ra and not router_alert:
            return _MISSING_RA
        return _decode_report_v3(buf, start, end, source, destination, ttl, router_alert)
    if igmp_type == 0x11:
        return _decode_query(buf, start, end, source, destination, ttl, router_alert, require_ra)
    if igmp_type in (0x12, 0x16, 0x17):
        return _decode_report_v1_v2_or_leave(
            buf, start, igmp_type, source, destination, ttl, router_alert, require_ra
        )
    return _decode_other(buf, start, igmp_type, source, destination)


def _decode_report_v1_v2_or_leave(
    buf: bytes,
    start: int,
    igmp_type: int,
    source: bytes,
    destination: bytes,
    ttl: int,
    router_alert: bool,
    require_ra: bool,
) -> Message | Malformed:
    group = buf[start + 4 : start + 8]
    if group[0] & 0xF0 != 0xE0:
        # Not a Linux check: the kernel learns "groups" like 10.0.0.1; we refuse.
        return Malformed(_NOT_MULTICAST, f"group {_ntoa(group)}")
    # IGMPv1 (RFC 1112 App. I) has no Router Alert; v2 does (RFC 2236 §2).
    if require_ra and not router_alert and igmp_type != 0x12:
        return _MISSING_RA
    if igmp_type == 0x17:
        return Leave(_ntoa(group), _ntoa(source), _ntoa(destination), ttl, router_alert)
    # RFC 3376 §7.3.2: an older-version report counts as IS_EX({}) for the core.
    record = GroupRecord(RecordType.MODE_IS_EXCLUDE, _ntoa(group), ())
    version = 1 if igmp_type == 0x12 else 2
    return Report(version, (record,), _ntoa(source), _ntoa(destination), ttl, router_alert)


def _decode_report_v3(
    buf: bytes, start: int, end: int, source: bytes, destination: bytes, ttl: int, router_alert: bool
) -> Report | Malformed:
    """IGMPv3 Membership Report, RFC 3376 §4.2."""
    (record_count,) = _U16.unpack_from(buf, start + 6)
    position = start + 8
    records = []
    names = _ADDRESS_NAMES
    for index in range(record_count):
        if position + 8 > end:
            return Malformed(_TRUNCATED, f"record {index} of {record_count}: header past end")
        record_type, aux_words, source_count, group = _RECORD_HEADER.unpack_from(buf, position)
        sources_at = position + 8
        aux_at = sources_at + 4 * source_count
        position = aux_at + 4 * aux_words  # RFC 3376 §4.2.6: aux data length in 32-bit words
        if position > end:
            return Malformed(_TRUNCATED, f"record {index} of {record_count}: {source_count} sources past end")
        kind = _RECORD_TYPES.get(record_type)
        if kind is None:
            continue  # RFC 3376 §4.2.12: ignore records of unknown type, process the rest
        if group[0] & 0xF0 != 0xE0:
            # Deliberately strict and simple: one bad record drops the report (counted).
            return Malformed(_NOT_MULTICAST, f"record {index}: group {_ntoa(group)}")
        if source_count == 0:
            sources: tuple[str, ...] = ()
        elif source_count == 1:
            address = buf[sources_at:aux_at]
            sources = (names.get(address) or _ntoa(address),)
        else:
            sources = tuple([_ntoa(buf[at : at + 4]) for at in range(sources_at, aux_at, 4)])
        aux_data = buf[aux_at:position] if aux_words else b""
        records.append(_new_tuple(GroupRecord, (kind, names.get(group) or _ntoa(group), sources, aux_data)))
    # RFC 3376 §4.2.11: bytes after the last record are ignored.
    return Report(3, tuple(records), _ntoa(source), _ntoa(destination), ttl, router_alert)


def _decode_query(
    buf: bytes,
    start: int,
    end: int,
    source: bytes,
    destination: bytes,
    ttl: int,
    router_alert: bool,
    require_ra: bool,
) -> Query | Malformed:
    """Membership Query; the version is told by length and code, RFC 3376 §7.1."""
    length = end - start
    code = buf[start + 1]
    group = buf[start + 4 : start + 8]
    sources: tuple[str, ...] = ()
    suppress = False
    qrv = 0
    query_interval = 0.0
    if length == 8:
        if code == 0:
            # IGMPv1 query: Max Resp Time is fixed at 10 s (RFC 2236 §4) and the
            # query is always a General Query (RFC 1112 App. I, RFC 3376 §7.1).
            version, max_response_time, group = 1, 10.0, _ZERO_ADDRESS
        else:
            version, max_response_time = 2, code / 10  # RFC 2236 §2.2: units of 1/10 s
    elif length < 12:
        return Malformed(MalformedReason.BAD_QUERY_LENGTH, f"{length} bytes (RFC 3376 §7.1)")
    else:
        version = 3
        flags, qqic, source_count = struct.unpack_from("!BBH", buf, start + 8)
        if 12 + 4 * source_count > length:
            return Malformed(_TRUNCATED, f"query with {source_count} sources in {length} bytes")
        # A Max Resp Code of 0 decodes to 0.0 s; Linux hosts treat it as one tick.
        max_response_time = decode_float_code(code) / 10  # RFC 3376 §4.1.1
        suppress = bool(flags & 0x08)  # RFC 3376 §4.1.5
        qrv = flags & 0x07  # RFC 3376 §4.1.6
        query_interval = float(decode_float_code(qqic))  # RFC 3376 §4.1.7, seconds
        if source_count:
            at = start + 12
            sources = tuple([_ntoa(buf[a : a + 4]) for a in range(at, at + 4 * source_count, 4)])
    if group == _ZERO_ADDRESS:
        # RFC 3376 §9.1 (hosts SHOULD ignore); Linux ip_mc_check_igmp_query() rejects.
        if destination != _ALL_SYSTEMS:
            return Malformed(
                MalformedReason.GENERAL_QUERY_BAD_DESTINATION, f"general query to {_ntoa(destination)}"
            )
    elif group[0] & 0xF0 != 0xE0:
        return Malformed(_NOT_MULTICAST, f"query for group {_ntoa(group)}")
    if require_ra and not router_alert and version != 1:
        return _MISSING_RA
    return Query(
        version,
        _ntoa(group),
        _ntoa(source),
        _ntoa(destination),
        max_response_time,
        sources,
        suppress,
        qrv,
        query_interval,
        ttl,
        router_alert,
    )


def _decode_other(
    buf: bytes, start: int, igmp_type: int, source: bytes, destination: bytes
) -> Message | Malformed:
    """DVMRP Probe and MRD messages (router presence); anything else is unknown."""
    if igmp_type == 0x13:
        if buf[start + 1] == 1:  # DVMRP code 1 = Probe (RFC 1075, DVMRPv3 draft)
            return RouterHello(RouterProtocol.DVMRP, _ntoa(source), _ntoa(destination), None)
        return Malformed(_UNKNOWN_TYPE, f"DVMRP code {buf[start + 1]}")
    if igmp_type in (0x30, 0x32):
        # RFC 4286 §3.5 / §5.4: Advertisements and Terminations must be sent to
        # All-Snoopers; anything else is not a valid MRD message.
        if destination != _ALL_SNOOPERS:
            return Malformed(_UNKNOWN_TYPE, f"MRD type 0x{igmp_type:02x} to {_ntoa(destination)}")
        if igmp_type == 0x32:
            return RouterHello(RouterProtocol.MRD, _ntoa(source), _ntoa(destination), 0.0)
        # RFC 4286 §3.2: byte 1 = Advertisement Interval (s, 4-180 when valid). The
        # NeighborDeadInterval (RFC 4286 §3.1.5) is simplified to 3 * interval (the reference adds
        # 3 * jitter on top); an interval of 0 thus reads like a Termination.
        return RouterHello(RouterProtocol.MRD, _ntoa(source), _ntoa(destination), 3.0 * buf[start + 1])
    return Malformed(_UNKNOWN_TYPE, f"IGMP type 0x{igmp_type:02x}")


def _decode_pim(buf: bytes, start: int, end: int, source: bytes, destination: bytes) -> Message | Malformed:
    """PIMv2 Hello (RFC 7761 §4.9.2) to ALL-PIM-ROUTERS; other PIM is not ours."""
    if destination != _ALL_PIM_ROUTERS:
        return Malformed(MalformedReason.NOT_IGMP, f"PIM to {_ntoa(destination)}")
    if end - start < 4:
        return Malformed(_TRUNCATED, f"PIM message of {end - start} bytes")
    if buf[start] != 0x20:  # version 2 (high nibble), type 0 = Hello (RFC 7761 §4.9)
        return Malformed(MalformedReason.NOT_IGMP, f"PIM version/type byte 0x{buf[start]:02x}")
    if not checksum_ok(buf[start:end]):
        return _BAD_PIM_CHECKSUM
    holdtime: float | None = None
    position = start + 4
    while position + 4 <= end:  # options: type(2) length(2) value, RFC 7761 §4.9.2
        option_type, option_length = _U16_PAIR.unpack_from(buf, position)
        position += 4
        if position + option_length > end:
            break  # an option overruns the message: keep what we have
        if option_type == 1 and option_length == 2:
            (value,) = _U16.unpack_from(buf, position)
            # 0xFFFF = never time out; 0 = goodbye (RFC 7761 §4.9.2, §4.3.1).
            holdtime = float("inf") if value == 0xFFFF else float(value)
        position += option_length
    return RouterHello(RouterProtocol.PIM, _ntoa(source), _ntoa(destination), holdtime)
