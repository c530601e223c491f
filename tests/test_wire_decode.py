"""Tests for snoopd.wire.decode (and snoopd.wire.describe, which renders its result).

Golden frames (tests/wire_frames.py) come from the reference's test vectors, a real
Linux kernel and scapy. Mutations and cross-checks use scapy as an independent
implementation: it rebuilds IP headers and checksums, builds random messages, and
parses what we decode.
"""

from __future__ import annotations

import json
import random
import struct

import pytest
from scapy.layers.igmp import IGMP_MQ, IGMP_MR, IGMPv2_LG, IGMPv2_MR, IGMPv3_MR, IGMPv3_MR_Group
from scapy.layers.inet import IP, IPOption_NOP, IPOption_Router_Alert
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet, Raw
from scapy.utils import checksum as scapy_checksum

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
)
from snoopd.wire import decode, decode_ip, describe, describe_text, frame_from_hex

from .wire_frames import BY_NAME, GOLDEN, Golden

M = MalformedReason
IGMP_GOLDEN = [
    g for g in GOLDEN if len(g.frame) > 23 and g.frame[23 + 4 * (g.frame[12:14] == b"\x81\x00")] == 2
]
IPV4_GOLDEN = [g for g in GOLDEN if g.name != "scapy_ipv6"]


def same(got: Message | Malformed, expected: Message | Malformed) -> bool:
    """Equality, except that for Malformed only the reason counts."""
    if isinstance(expected, Malformed):
        return isinstance(got, Malformed) and got.reason == expected.reason
    return got == expected


def ip_layout(frame: bytes) -> tuple[int, int, int]:
    """(offset of the IPv4 header, its length, IP total length), read by scapy."""
    packet = Ether(frame)
    offset = 18 if Dot1Q in packet else 14
    return offset, packet[IP].ihl * 4, packet[IP].len


def payload_of(frame: bytes) -> bytes:
    offset, header, total = ip_layout(frame)
    return frame[offset + header : offset + total]


def with_checksum(igmp: bytes) -> bytes:
    """Fill an IGMP/PIM checksum field (bytes 2-3) with scapy's checksum."""
    if len(igmp) < 4:
        return igmp
    blank = igmp[:2] + b"\x00\x00" + igmp[4:]
    return blank[:2] + struct.pack("!H", scapy_checksum(blank)) + blank[4:]


def rebuild(frame: bytes, payload: bytes, **ip_fields: object) -> bytes:
    """``frame`` with a new IP payload (no padding), IP length and checksum by scapy."""
    offset, header_length, _ = ip_layout(frame)
    # Parse the IP header alone: dissecting an IGMP payload makes scapy add a Router
    # Alert option to the parsed IP layer (IGMP.add_underlayer).
    header = IP(frame[offset : offset + header_length])
    del header.len, header.chksum, header.ihl
    for name, value in ip_fields.items():
        setattr(header, name, value)
    return frame[:offset] + bytes(header / Raw(payload))


def frame_of(ip_packet: Packet) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="01:00:5e:00:00:16") / ip_packet)


def ip(dst: str, router_alert: bool = True, **fields: object) -> IP:
    options = [IPOption_Router_Alert()] if router_alert else []
    return IP(src="192.0.2.1", dst=dst, ttl=1, tos=0xC0, proto=2, options=options, **fields)


def raw_igmp(dst: str, igmp: bytes, router_alert: bool = True) -> bytes:
    """A frame carrying ``igmp`` bytes as they are, checksum filled in by scapy."""
    return frame_of(ip(dst, router_alert) / Raw(with_checksum(igmp)))


# ---- golden frames ---------------------------------------------------------------------


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda g: g.name)
def test_golden_frame(golden: Golden) -> None:
    got = decode(golden.frame)
    assert same(got, golden.expected), got
    assert decode(memoryview(golden.frame)) == got
    assert decode(bytearray(golden.frame)) == got


def test_reference_vectors_are_inside_the_golden_frames() -> None:
    # snoopd reference §3.12
    vectors = {
        "ref_v2_general_query": "11 64 ee 9b 00 00 00 00",
        "ref_v2_group_query": "11 0a fe f2 ef 01 01 01",
        "ref_v2_report": "16 00 f9 fc ef 01 01 01",
        "ref_v2_leave": "17 00 f8 fc ef 01 01 01",
        "ref_v3_general_query": "11 64 ec 1e 00 00 00 00 02 7d 00 00",
        "ref_v3_report_to_ex": "22 00 e9 fb 00 00 00 01 04 00 00 00 ef 01 01 01",
    }
    for name, vector in vectors.items():
        assert payload_of(BY_NAME[name].frame) == bytes.fromhex(vector)
    header = "46 c0 00 28 00 00 40 00 01 02 42 47 c0 a8 01 0a e0 00 00 16 94 04 00 00"
    assert BY_NAME["ref_v3_report_to_ex"].frame[14:38] == bytes.fromhex(header)


def test_every_record_type_is_covered_with_sources_and_aux_data() -> None:
    records = [r for g in GOLDEN if isinstance(g.expected, Report) for r in g.expected.records]
    assert {r.record_type for r in records if r.sources} == set(RecordType)
    assert {r.record_type for r in records if r.aux_data} >= {RecordType.CHANGE_TO_INCLUDE_MODE}
    kinds = {type(g.expected).__name__ + str(getattr(g.expected, "version", "")) for g in GOLDEN}
    assert kinds >= {"Report1", "Report2", "Report3", "Leave", "Query1", "Query2", "Query3", "RouterHello"}


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda g: g.name)
def test_truncated_at_every_length(golden: Golden) -> None:
    frame = golden.frame
    full = decode(frame)
    ethernet = 18 if frame[12:14] == b"\x81\x00" else 14
    ip_end = ethernet + ip_layout(frame)[2] if golden.name != "scapy_ipv6" else len(frame)
    for length in range(len(frame)):
        got = decode(frame[:length])
        if length < ethernet:
            assert got.reason is M.TRUNCATED, length
        elif golden.name == "scapy_ipv6":
            assert got.reason is M.NOT_IPV4
        elif length < ip_end:
            assert isinstance(got, Malformed) and got.reason in (M.TRUNCATED, M.BAD_IP_LENGTH), (length, got)
        else:  # only Ethernet padding was cut
            assert got == full


def _truncation_expectation(golden: Golden, payload: bytes, length: int) -> set[MalformedReason] | None:
    """Reasons allowed when the IGMP payload is cut to ``length`` (IP and IGMP checksums
    fixed), or None when the message must still decode as it did whole."""
    kind = payload[0]
    if length < (4 if kind in (0x31, 0x32) else 8):
        return {M.TRUNCATED}
    if kind == 0x22:
        records_end = 8
        for _ in range(struct.unpack_from("!H", payload, 6)[0]):
            aux_words, source_count = (
                payload[records_end + 1],
                struct.unpack_from("!H", payload, records_end + 2)[0],
            )
            records_end += 8 + 4 * source_count + 4 * aux_words
        return {M.TRUNCATED} if length < records_end else None
    if kind == 0x11 and len(payload) >= 12:
        if length == 8:
            return set()  # becomes a valid v1/v2 query
        if length < 12:
            return {M.BAD_QUERY_LENGTH}
        return {M.TRUNCATED} if length < len(payload) else None
    return None


@pytest.mark.parametrize("golden", IGMP_GOLDEN, ids=lambda g: g.name)
def test_igmp_message_truncated_inside_consistent_ip(golden: Golden) -> None:
    payload = payload_of(golden.frame)
    for length in range(len(payload) + 1):
        frame = rebuild(golden.frame, with_checksum(payload[:length]))
        got = decode(frame)
        allowed = _truncation_expectation(golden, payload, length)
        if allowed is None:
            assert same(got, golden.expected), (length, got)
        elif allowed:
            assert isinstance(got, Malformed) and got.reason in allowed, (length, got)
        else:
            assert isinstance(got, Query) and got.version in (1, 2), (length, got)


def test_pim_hello_truncated_inside_consistent_ip() -> None:
    golden = BY_NAME["scapy_pim_hello"]
    payload = payload_of(golden.frame)
    for length in range(len(payload) + 1):
        got = decode(rebuild(golden.frame, with_checksum(payload[:length])))
        if length < 4:
            assert got.reason is M.TRUNCATED
        else:  # options that do not fit are ignored; holdtime is the first option
            assert isinstance(got, RouterHello) and got.holdtime == (105.0 if length >= 10 else None), length


# ---- Ethernet, 802.1Q, IP options ------------------------------------------------------


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda g: g.name)
def test_ethernet_padding_is_ignored(golden: Golden) -> None:
    for padding in (b"\x00" * 18, b"\xff" * 3, bytes(range(40))):
        assert decode(golden.frame + padding) == decode(golden.frame)


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda g: g.name)
def test_one_in_frame_vlan_tag_is_skipped(golden: Golden) -> None:
    frame = golden.frame
    if frame[12:14] == b"\x81\x00":
        frame = frame[:12] + frame[16:]
    tagged = frame[:12] + bytes.fromhex("8100 effe") + frame[12:]  # priority 7, VLAN 4094
    assert Ether(tagged)[Dot1Q].vlan == 4094
    assert decode(tagged) == decode(frame)


def test_double_vlan_tag_is_not_ipv4() -> None:
    frame = BY_NAME["scapy_vlan_v3_report"].frame
    double = frame[:12] + b"\x81\x00\x00\x05" + frame[12:]
    assert decode(double).reason is M.NOT_IPV4
    assert decode(frame[:17]).reason is M.TRUNCATED


@pytest.mark.parametrize(
    ("options", "router_alert"),
    [
        ([], False),
        ([IPOption_Router_Alert()], True),
        ([IPOption_NOP()] * 4, False),
        ([IPOption_NOP(), IPOption_NOP(), IPOption_NOP(), IPOption_Router_Alert(), IPOption_NOP()], True),
        ([Raw(b"\x07\x07\x04\x00\x00\x00\x00"), IPOption_NOP(), IPOption_Router_Alert()], True),  # after RR
        ([Raw(b"\x00\x00\x00\x00"), IPOption_Router_Alert()], False),  # after End of Options
        ([Raw(b"\x94\x03\x00\x00")], False),  # wrong RA length
        ([Raw(b"\x94\x04\x00\x01")], True),  # RA with another value still is RA (RFC 2113 §2.1)
        ([Raw(b"\x01\x01\x01\x94")], False),  # RA type byte cut off by the header end
        ([Raw(b"\x44\x01\x00\x00")], False),  # option length 1 < 2: malformed, stop
        ([Raw(b"\x88\x20\x00\x00")], False),  # option overruns the header
        ([Raw(b"\x01" * 36), IPOption_Router_Alert()], True),  # IHL 15
    ],
)
def test_router_alert_among_ip_options(options: list[Packet], router_alert: bool) -> None:
    igmp = bytes(IGMPv2_MR(gaddr="239.1.1.1"))
    frame = frame_of(IP(src="192.0.2.1", dst="239.1.1.1", ttl=1, proto=2, options=options) / Raw(igmp))
    got = decode(frame)
    assert isinstance(got, Report) and got.router_alert is router_alert, got
    strict = decode(frame, require_router_alert=True)
    assert strict == got if router_alert else strict.reason is M.MISSING_ROUTER_ALERT


# ---- IP header errors ---------------------------------------------------------------


@pytest.mark.parametrize("golden", IPV4_GOLDEN, ids=lambda g: g.name)
def test_bad_ip_header_checksum(golden: Golden) -> None:
    offset = ip_layout(golden.frame)[0]
    frame = bytearray(golden.frame)
    frame[offset + 8] ^= 0x01  # TTL, covered by the header checksum only
    assert decode(bytes(frame)).reason is M.BAD_IP_CHECKSUM


def test_ip_header_errors() -> None:
    frame = BY_NAME["ref_v2_report"].frame
    payload = payload_of(frame)

    def patched(**fields: object) -> bytes:
        return rebuild(frame, payload, **fields)

    assert decode(patched(version=6)).reason is M.BAD_IP_HEADER
    assert decode(patched(ihl=4)).reason is M.BAD_IP_HEADER
    assert decode(patched(len=100)).reason is M.BAD_IP_LENGTH  # more than the frame has
    assert decode(patched(len=20)).reason is M.BAD_IP_LENGTH  # less than IHL * 4 (24)
    assert decode(patched(len=23, options=[])).reason is M.TRUNCATED  # IGMP of 3 bytes
    assert decode(patched(flags="MF")).reason is M.BAD_IP_HEADER  # first fragment
    assert decode(patched(frag=1)).reason is M.BAD_IP_HEADER  # later fragment
    assert isinstance(decode(patched(flags=0)), Report)  # DF not required
    assert decode(patched(proto=17)).reason is M.NOT_IGMP
    arp = bytes.fromhex("ffffffffffff020000000001 0806") + bytes(28)
    assert decode(arp).reason is M.NOT_IPV4


def test_decode_ip_without_ethernet() -> None:
    for golden in IPV4_GOLDEN:
        offset = ip_layout(golden.frame)[0]
        assert decode_ip(golden.frame[offset:]) == decode(golden.frame)
    assert decode_ip(b"").reason is M.TRUNCATED


# ---- IGMP checksum, lengths, types -------------------------------------------------------


@pytest.mark.parametrize("golden", [*IGMP_GOLDEN, BY_NAME["scapy_pim_hello"]], ids=lambda g: g.name)
def test_bad_igmp_or_pim_checksum(golden: Golden) -> None:
    payload = bytearray(payload_of(golden.frame))
    for position in (2, len(payload) - 1):  # the checksum field; the last byte
        damaged = bytearray(payload)
        damaged[position] ^= 0x01
        got = decode(rebuild(golden.frame, bytes(damaged)))
        assert got.reason is M.BAD_CHECKSUM, (position, got)


def test_checksum_covers_the_whole_payload_not_eight_bytes() -> None:
    # RFC 2236 §2.5: extra bytes after a v2 report are in the checksum.
    igmp = bytes(IGMPv2_MR(gaddr="239.1.1.1")) + b"\x00\x01"  # scapy's checksum covers 8 bytes
    assert decode(frame_of(ip("239.1.1.1") / Raw(igmp))).reason is M.BAD_CHECKSUM
    assert isinstance(decode(raw_igmp("239.1.1.1", igmp)), Report)  # checksum over all 10 bytes


@pytest.mark.parametrize("length", [9, 10, 11])
def test_query_of_9_to_11_bytes_is_ignored(length: int) -> None:
    igmp = bytes.fromhex("11640000 00000000 027d0000")[:length]
    assert decode(raw_igmp("224.0.0.1", igmp)).reason is M.BAD_QUERY_LENGTH


@pytest.mark.parametrize(
    ("version", "destination"),
    [(1, "224.0.0.2"), (2, "192.0.2.2"), (3, "239.1.1.1"), (3, "224.0.0.22")],
)
def test_general_query_must_go_to_all_systems(version: int, destination: str) -> None:
    igmp = {1: "11000000 00000000", 2: "11640000 00000000", 3: "11640000 00000000 027d0000"}[version]
    got = decode(raw_igmp(destination, bytes.fromhex(igmp)))
    assert got.reason is M.GENERAL_QUERY_BAD_DESTINATION


def test_queries_to_unicast_or_any_group_address_are_fine_when_group_specific() -> None:
    igmp = bytes.fromhex("110a0000 ef010101 027d0000")
    got = decode(raw_igmp("192.0.2.2", igmp))
    assert isinstance(got, Query) and got.group == "239.1.1.1" and got.destination == "192.0.2.2"


def test_v1_query_group_field_is_ignored() -> None:
    got = decode(raw_igmp("224.0.0.1", bytes.fromhex("11000000 ef010101")))
    assert isinstance(got, Query) and (got.version, got.group, got.max_response_time) == (1, "0.0.0.0", 10.0)


def test_v3_query_with_max_resp_code_0() -> None:
    got = decode(raw_igmp("224.0.0.1", bytes.fromhex("11000000 00000000 00000000")))
    assert isinstance(got, Query) and (got.version, got.max_response_time, got.query_interval) == (
        3,
        0.0,
        0.0,
    )


def test_v3_query_sources_must_fit() -> None:
    igmp = bytes.fromhex("110a0000 e8010101 0200 0003 c0000201 c0000202")
    assert decode(raw_igmp("232.1.1.1", igmp)).reason is M.TRUNCATED
    got = decode(raw_igmp("232.1.1.1", igmp + bytes.fromhex("c0000203 ffff")))  # + 2 extra bytes
    assert isinstance(got, Query) and got.sources == ("192.0.2.1", "192.0.2.2", "192.0.2.3")


@pytest.mark.parametrize(
    "igmp",
    [
        "12000000 0a000001",  # v1 report
        "16000000 c0000201",  # v2 report
        "17000000 00000000",  # leave
        "11640000 7f000001",  # v2 query
        "11640000 f0000001 02000000",  # v3 query, class E
        "22000000 00000002 04000000 ef010101 04000000 c0a80001",  # second record
    ],
)
def test_non_multicast_group(igmp: str) -> None:
    assert decode(raw_igmp("224.0.0.22", bytes.fromhex(igmp))).reason is M.NOT_MULTICAST_GROUP


@pytest.mark.parametrize(
    "igmp",
    [
        "22000000 00000002 04000000 ef010101 05000002 ef020202 c0000201",  # sources past end
        "22000000 00000001 04010000 ef010101",  # aux data past end
        "22000000 00000002 04000000 ef010101",  # record count too high
        "22000000 00000001 040000",  # record header cut
        "22000000 0000ffff",
    ],
)
def test_v3_report_record_overrun(igmp: str) -> None:
    assert decode(raw_igmp("224.0.0.22", bytes.fromhex(igmp))).reason is M.TRUNCATED


def test_v3_report_without_records_and_with_only_unknown_records() -> None:
    for igmp in ("22000000 00000000", "22000000 00000001 07000000 0a000001"):
        got = decode(raw_igmp("224.0.0.22", bytes.fromhex(igmp)))
        assert isinstance(got, Report) and got.records == (), igmp


@pytest.mark.parametrize(
    ("igmp", "destination"),
    [
        ("14000000 00000000", "224.0.0.2"),  # PIMv1
        ("1e000000 00000000", "224.0.0.2"),  # mtrace response
        ("1f000000 00000000", "224.0.0.2"),  # mtrace
        ("f0000000 00000000", "224.0.0.2"),  # experimental, RFC 3228
        ("13020000 00000000", "224.0.0.4"),  # DVMRP report, not a probe
        ("30140000 007d0002", "224.0.0.2"),  # MRD advertisement not to All-Snoopers (RFC 4286 §3.5)
        ("32000000", "224.0.0.1"),  # MRD termination not to All-Snoopers (RFC 4286 §5.4)
        ("31000000", "224.0.0.2"),  # MRD solicitation: only routers care
    ],
)
def test_unknown_or_unused_igmp_types(igmp: str, destination: str) -> None:
    assert decode(raw_igmp(destination, bytes.fromhex(igmp))).reason is M.UNKNOWN_TYPE


def test_short_messages() -> None:
    assert decode(raw_igmp("224.0.0.106", b"")).reason is M.TRUNCATED
    assert decode(raw_igmp("224.0.0.106", bytes.fromhex("3200"))).reason is M.TRUNCATED
    assert decode(raw_igmp("224.0.0.106", bytes.fromhex("300000"))).reason is M.TRUNCATED
    assert decode(raw_igmp("224.0.0.22", bytes.fromhex("16000000 ef01"))).reason is M.TRUNCATED


def test_pim_variants() -> None:
    hello = payload_of(BY_NAME["scapy_pim_hello"].frame)
    pim_frame = BY_NAME["scapy_pim_hello"].frame
    assert decode(rebuild(pim_frame, hello, dst="224.0.0.5")).reason is M.NOT_IGMP
    join = with_checksum(b"\x23" + hello[1:])  # type 3 = Join/Prune
    assert decode(rebuild(pim_frame, join)).reason is M.NOT_IGMP
    pimv1 = with_checksum(b"\x10" + hello[1:])
    assert decode(rebuild(pim_frame, pimv1)).reason is M.NOT_IGMP
    bare = decode(rebuild(pim_frame, with_checksum(bytes.fromhex("20000000"))))
    assert isinstance(bare, RouterHello) and bare.holdtime is None
    odd_holdtime = with_checksum(bytes.fromhex("20000000 00010003 000069"))  # holdtime option of 3 bytes
    got = decode(rebuild(pim_frame, odd_holdtime))
    assert isinstance(got, RouterHello) and got.holdtime is None
    overrun = with_checksum(bytes.fromhex("20000000 00010002 0069 00140008 0000"))
    got = decode(rebuild(pim_frame, overrun))
    assert isinstance(got, RouterHello) and got.holdtime == 105.0


# ---- Router Alert policy -------------------------------------------------------------------


def _needs_router_alert(message: Message | Malformed) -> bool:
    if isinstance(message, Report | Query):
        return message.version >= 2  # RFC 1112 App. I: IGMPv1 has no Router Alert
    return isinstance(message, Leave)


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda g: g.name)
def test_require_router_alert(golden: Golden) -> None:
    got = decode(golden.frame, require_router_alert=True)
    expected = golden.expected
    if _needs_router_alert(expected) and not getattr(expected, "router_alert", True):
        assert got.reason is M.MISSING_ROUTER_ALERT
    else:
        assert same(got, expected)


@pytest.mark.parametrize("golden", IGMP_GOLDEN, ids=lambda g: g.name)
def test_router_alert_removed(golden: Golden) -> None:
    lenient = decode(rebuild(golden.frame, payload_of(golden.frame), options=[]))
    strict = decode(rebuild(golden.frame, payload_of(golden.frame), options=[]), require_router_alert=True)
    expected = golden.expected
    if hasattr(expected, "router_alert"):
        assert lenient == expected._replace(router_alert=False)
        assert strict.reason is M.MISSING_ROUTER_ALERT if _needs_router_alert(expected) else strict == lenient
    else:
        assert same(lenient, expected) and same(strict, expected)


# ---- scapy cross-checks ----------------------------------------------------------------------


def _random_address(rng: random.Random, first: int) -> str:
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"


@pytest.mark.parametrize("seed", range(40))
def test_random_v3_reports_built_by_scapy(seed: int) -> None:
    rng = random.Random(seed)
    wanted = []
    scapy_records = []
    for _ in range(rng.randrange(0, 12)):
        record_type = RecordType(rng.randint(1, 6))
        group = _random_address(rng, rng.randint(224, 239))
        sources = tuple(_random_address(rng, rng.randint(1, 223)) for _ in range(rng.randrange(0, 5)))
        aux = bytes(rng.randrange(256) for _ in range(4 * rng.choice((0, 0, 1, 3))))
        record = IGMPv3_MR_Group(
            rtype=int(record_type), maddr=group, srcaddrs=list(sources), auxdlen=len(aux) // 4
        )
        scapy_records.append(record / Raw(aux) if aux else record)
        wanted.append(GroupRecord(record_type, group, sources, aux))
    frame = frame_of(ip("224.0.0.22") / IGMPv3_MR(records=scapy_records))
    got = decode(frame, require_router_alert=True)
    assert got == Report(3, tuple(wanted), "192.0.2.1", "224.0.0.22")
    if not any(r.aux_data for r in wanted):  # scapy's group record class cannot parse aux data
        parsed = Ether(frame)[IGMPv3_MR].records
        assert [(r.rtype, r.maddr, tuple(r.srcaddrs)) for r in parsed] == [
            (int(r.record_type), r.group, r.sources) for r in got.records
        ]


@pytest.mark.parametrize("seed", range(40))
def test_random_v1_v2_messages_built_by_scapy(seed: int) -> None:
    rng = random.Random(seed)
    group = _random_address(rng, rng.randint(224, 239))
    code = rng.randint(1, 255)
    cases: list[tuple[Packet, str, Message]] = [
        (IGMP_MR(gaddr=group), group, Report(1, (GroupRecord(RecordType.MODE_IS_EXCLUDE, group),), "", "")),
        (IGMPv2_MR(gaddr=group), group, Report(2, (GroupRecord(RecordType.MODE_IS_EXCLUDE, group),), "", "")),
        (IGMPv2_LG(gaddr=group), "224.0.0.2", Leave(group, "", "")),
        (IGMP_MQ(mrcode=code, gaddr=group), group, Query(2, group, "", "", code / 10)),
        (IGMP_MQ(mrcode=code), "224.0.0.1", Query(2, "0.0.0.0", "", "", code / 10)),
    ]
    for message, destination, expected in cases:
        got = decode(frame_of(ip(destination) / message))
        assert got == expected._replace(source="192.0.2.1", destination=destination)


# ---- describe ----------------------------------------------------------------------------


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda g: g.name)
def test_describe_every_golden_frame(golden: Golden) -> None:
    info = describe(golden.frame)
    assert json.loads(json.dumps(info, allow_nan=False)) == info
    expected_kind = {
        Report: "report",
        Leave: "leave",
        Query: "query",
        RouterHello: "router_hello",
        Malformed: "malformed",
    }[type(golden.expected)]
    assert info["kind"] == expected_kind and info["length"] == len(golden.frame)
    text = describe_text(golden.frame)
    assert len(text.splitlines()) >= 2
    if isinstance(golden.expected, Malformed):
        assert info["reason"] == golden.expected.reason.value and golden.expected.reason.value in text
    else:
        assert golden.expected.source in text


def test_describe_fields() -> None:
    report = describe(BY_NAME["scapy_v3_report_all_types"].frame)
    assert report["version"] == 3 and report["router_alert"] is True and report["ttl"] == 1
    records = report["records"]
    assert isinstance(records, list) and records[3] == {
        "type": "CHANGE_TO_EXCLUDE_MODE",
        "type_code": 4,
        "group": "239.4.4.4",
        "sources": ["192.0.2.13"],
        "aux_data": b"aux-data".hex(),
    }
    query = describe(BY_NAME["linux_bridge_v3_group_query_s_flag"].frame)
    assert query["variant"] == "group-specific" and query["suppress_router_processing"] is True
    assert (query["max_response_code"], query["qqic"], query["qrv"]) == (10, 3, 2)
    gss = describe(BY_NAME["linux_bridge_v3_gss_query"].frame)
    assert gss["variant"] == "group-and-source-specific" and gss["sources"] == ["192.0.2.99"]
    vlan = describe(BY_NAME["scapy_vlan_v3_report"].frame)
    assert vlan["ethernet"] == {
        "destination": "01:00:5e:00:00:16",
        "source": "02:00:00:00:00:01",
        "vlan": 10,
        "ethertype": "0x0800",
    }
    assert describe(BY_NAME["scapy_pim_holdtime_forever"].frame)["holdtime"] == "infinite"
    assert describe(BY_NAME["scapy_dvmrp_probe"].frame)["holdtime"] is None
    short = describe(b"\x01\x02")
    assert short == {"length": 2, "kind": "malformed", "reason": "truncated", "detail": short["detail"]}
    assert describe(BY_NAME["scapy_v2_report_to_all_systems_no_ra"].frame, require_router_alert=True)[
        "reason"
    ] == ("missing_router_alert")


def test_describe_text_rendering() -> None:
    text = describe_text(BY_NAME["linux_v3_report_is_in_is_ex"].frame)
    assert text.splitlines()[1:] == [
        "IGMPv3 report 192.0.2.1 > 224.0.0.22, TTL 1, router alert",
        "  MODE_IS_INCLUDE (1) 232.1.1.1: 192.0.2.99",
        "  MODE_IS_EXCLUDE (2) 239.1.1.1: no sources",
    ]
    query = describe_text(BY_NAME["scapy_v3_query_sources"].frame)
    assert "code 0xaf" in query and "QQIC 0x8c" in query and "S flag" in query and "QRV 7" in query
    assert "aux data 41555831" in describe_text(BY_NAME["scapy_v3_report_all_types"].frame)
    assert "PIM router hello" in describe_text(BY_NAME["scapy_pim_hello"].frame)
    assert describe_text(b"").splitlines() == [
        "0 bytes",
        "malformed: truncated (frame shorter than an Ethernet header)",
    ]


def test_frame_from_hex() -> None:
    frame = BY_NAME["ref_v2_leave"].frame
    assert frame_from_hex(frame.hex()) == frame
    assert frame_from_hex(" ".join(f"0x{b:02X}" for b in frame)) == frame
    assert frame_from_hex(":".join(f"{b:02x}" for b in frame) + "\n") == frame
    for bad in ("abc", "zz", "01 0g"):
        with pytest.raises(ValueError):
            frame_from_hex(bad)
