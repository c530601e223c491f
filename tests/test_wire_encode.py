"""Tests for snoopd.wire.encode and snoopd.wire.codes.

Independent checks: scapy 2.8 (``scapy.layers.igmp``, which has IGMPv1/v2/v3 since
2.6; ``scapy.contrib.igmpv3`` is only a deprecated alias of it now) parses every
encoded query, tshark verifies checksums, and the reference's test vectors (§3.12)
and float-code examples (§3.5) pin exact bytes.
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from bisect import bisect_right
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.igmp import IGMP, IGMPv3_MQ
from scapy.layers.inet import IP, IPOption_Router_Alert
from scapy.layers.l2 import Ether
from scapy.utils import checksum as scapy_checksum
from scapy.utils import wrpcap

from snoopd.core.messages import Query
from snoopd.wire import decode, encode_ip_query, encode_query
from snoopd.wire.codes import (
    FLOAT_CODE_MAX,
    checksum_ok,
    decode_float_code,
    encode_float_code,
    inet_checksum,
    ipv4_multicast_mac,
)

# ---- float codes (RFC 3376 §4.1.1, §4.1.7) -----------------------------------------


def _rfc_decode(code: int) -> int:
    """Straight from the RFC 3376 §4.1.1 figure, written independently."""
    if code < 128:
        return code
    exp = (code >> 4) & 0x7
    mant = code & 0xF
    return (mant | 0x10) << (exp + 3)


def _reference_encode(value: int) -> int:
    """The reference's §3.5 encoder (round-trip tested there)."""
    if value < 128:
        return value
    value = min(value, 31744)
    for exp in range(8):
        mant = value >> (exp + 3)
        if mant <= 0x1F:
            return 0x80 | (exp << 4) | (mant & 0x0F)
    raise AssertionError("unreachable")


@pytest.mark.parametrize("code", range(256))
def test_float_code_decodes_like_the_rfc_and_scapy(code: int) -> None:
    assert decode_float_code(code) == _rfc_decode(code)
    raw = struct.pack("!BBH4sBBH", 0x11, code, 0, b"\0" * 4, 2, code, 0)
    parsed = IGMPv3_MQ(raw)
    assert parsed.getfieldval("mrcode") == decode_float_code(code)  # .mrcode is i2h: the code again


def test_all_256_float_codes_round_trip() -> None:
    assert [encode_float_code(decode_float_code(code)) for code in range(256)] == list(range(256))


def test_float_code_examples_from_the_reference() -> None:
    assert [decode_float_code(c) for c in (0x80, 0x81, 0x8F, 0x90, 0xFF)] == [128, 136, 248, 256, 31744]
    assert encode_float_code(200) == 0x89
    assert encode_float_code(255) == 0x8F  # 248, the next lower value
    assert encode_float_code(1000) == 0xAF  # 992
    assert FLOAT_CODE_MAX == 31744


def test_float_encoding_is_exact_or_next_lower_for_every_value() -> None:
    values = sorted({decode_float_code(c) for c in range(256)})
    for value in range(0, 33000):
        code = encode_float_code(value)
        assert code == _reference_encode(value)
        next_lower = values[bisect_right(values, value) - 1]  # the largest representable <= value
        assert decode_float_code(code) == next_lower


def test_float_encoding_matches_scapy_on_a_sample() -> None:
    rng = random.Random(3376)
    for value in [128, 129, 255, 256, 999, 31743, 31744, *rng.sample(range(128, 31745), 300)]:
        built = bytes(IGMPv3_MQ(mrcode=value))
        assert built[1] == encode_float_code(value), value


def test_float_encoding_clamps_out_of_range_values() -> None:
    assert encode_float_code(-5) == 0
    assert encode_float_code(10**9) == 0xFF


# ---- Internet checksum --------------------------------------------------------------


@pytest.mark.parametrize("length", range(0, 70))
def test_inet_checksum_matches_scapy(length: int) -> None:
    rng = random.Random(length)
    for _ in range(20):
        data = bytes(rng.randrange(256) for _ in range(length))
        assert inet_checksum(data) == scapy_checksum(data)


def test_inet_checksum_edge_cases() -> None:
    assert inet_checksum(b"") == 0xFFFF
    assert inet_checksum(b"\x00\x00") == 0xFFFF
    assert inet_checksum(b"\xff\xff") == 0x0000
    assert inet_checksum(b"\xff\xff\xff\xff") == 0x0000
    assert inet_checksum(memoryview(b"\x12\x34")) == scapy_checksum(b"\x12\x34")
    # verification: a message with its checksum folded in sums to 0xFFFF
    message = bytes.fromhex("1164ee9b00000000")
    assert inet_checksum(message) == 0 and checksum_ok(message)
    assert not checksum_ok(b"\x00" * 8)
    assert not checksum_ok(bytes.fromhex("1164ee9a00000000"))


def test_multicast_mac_mapping() -> None:
    assert ipv4_multicast_mac(bytes([224, 0, 0, 1])) == bytes.fromhex("01005e000001")
    # RFC 1112 §6.4: the top 5 bits of the 28 are lost, 32 groups share a MAC.
    for group in ([224, 1, 1, 1], [225, 1, 1, 1], [224, 129, 1, 1], [239, 129, 1, 1]):
        assert ipv4_multicast_mac(bytes(group)) == bytes.fromhex("01005e010101")


# ---- queries --------------------------------------------------------------------------

# (version, group, sources, max_response_time, suppress, qrv, query_interval, source_address)
VARIANTS: list[tuple[Any, ...]] = [
    (1, "0.0.0.0", (), 10.0, False, 2, 125.0, "192.0.2.1"),
    (2, "0.0.0.0", (), 10.0, False, 2, 125.0, "192.0.2.1"),
    (2, "239.1.1.1", (), 1.0, False, 2, 125.0, "192.0.2.1"),
    (2, "239.1.1.1", (), 0.0, False, 2, 125.0, "0.0.0.0"),  # MRT clamped to 0.1 s
    (2, "0.0.0.0", (), 99.0, False, 2, 125.0, "192.0.2.1"),  # MRT capped at 25.5 s
    (3, "0.0.0.0", (), 10.0, False, 2, 125.0, "192.0.2.1"),
    (3, "0.0.0.0", (), 10.0, False, 2, 125.0, "0.0.0.0"),
    (3, "239.1.1.1", (), 1.0, True, 2, 125.0, "192.0.2.1"),
    (3, "232.1.1.1", ("192.0.2.10",), 1.0, False, 7, 60.0, "192.0.2.1"),
    (3, "232.1.1.1", tuple(f"192.0.2.{i}" for i in range(10, 60)), 2.3, True, 3, 31744.0, "192.0.2.1"),
    (3, "239.255.255.250", (), 13.0, False, 8, 1000.0, "192.0.2.1"),  # MRC 12.8 s, QRV 0, QQIC 992
    (3, "0.0.0.0", (), 3174.4, False, 1, 0.0, "192.0.2.254"),
    (3, "0.0.0.0", (), 9999.0, False, 0, 99999.0, "192.0.2.254"),  # both clamped to 0xFF
]


def _expected_query(
    version: int,
    group: str,
    sources: tuple[str, ...],
    mrt: float,
    suppress: bool,
    qrv: int,
    qi: float,
    source: str,
) -> Query:
    destination = "224.0.0.1" if group == "0.0.0.0" else group
    if version == 1:
        return Query(1, group, source, destination, 10.0)
    tenths = int(mrt * 10 + 1e-9)
    if version == 2:
        return Query(2, group, source, destination, min(max(tenths, 1), 255) / 10)
    mrt_wire = decode_float_code(encode_float_code(tenths)) / 10
    qi_wire = float(decode_float_code(encode_float_code(int(qi))))
    return Query(3, group, source, destination, mrt_wire, sources, suppress, qrv if qrv <= 7 else 0, qi_wire)


@pytest.mark.parametrize("variant", VARIANTS)
def test_encode_decode_round_trip(variant: tuple[Any, ...]) -> None:
    frame = encode_query(*variant)
    assert decode(frame, require_router_alert=True) == _expected_query(*variant)


@pytest.mark.parametrize("variant", VARIANTS)
def test_scapy_parses_encoded_query_with_the_same_fields(variant: tuple[Any, ...]) -> None:
    version, group, sources, _, suppress, _, _, source = variant
    expected = _expected_query(*variant)
    frame = encode_query(*variant, src_mac=bytes.fromhex("020000000001"))
    packet = Ether(frame)
    octets = [int(x) for x in expected.destination.split(".")]
    assert packet.dst == f"01:00:5e:{octets[1] & 0x7F:02x}:{octets[2]:02x}:{octets[3]:02x}"  # RFC 1112 §6.4
    assert packet.src == "02:00:00:00:00:01" and packet.type == 0x0800
    ip = packet[IP]
    assert (ip.version, ip.ihl, ip.tos, ip.ttl, ip.proto, ip.flags.DF) == (4, 6, 0xC0, 1, 2, True)
    assert (ip.src, ip.dst, ip.len) == (source, expected.destination, len(frame) - 14)
    assert [type(o) for o in ip.options] == [IPOption_Router_Alert] and ip.options[0].alert == 0
    assert scapy_checksum(bytes(ip)[:24]) == 0
    igmp = ip.payload
    assert scapy_checksum(bytes(igmp)) == 0
    assert igmp.type == 0x11 and igmp.gaddr == group
    if version == 3:
        assert isinstance(igmp, IGMPv3_MQ)
        assert igmp.getfieldval("mrcode") / 10 == expected.max_response_time  # scapy decodes it
        assert decode_float_code(igmp.qqic) == expected.query_interval
        assert (igmp.s, igmp.qrv, tuple(igmp.srcaddrs or ())) == (int(suppress), expected.qrv, sources)
    else:
        assert isinstance(igmp, IGMP) and len(igmp) == 8
        assert bytes(igmp)[1] == round(expected.max_response_time * 10) * (version == 2)


def test_reference_vectors() -> None:
    # snoopd reference §3.12, IGMP parts
    def igmp(*args: Any) -> str:
        return encode_ip_query(*args)[24:].hex()

    assert igmp(2, "0.0.0.0", (), 10.0, False, 2, 125.0, "0.0.0.0") == "1164ee9b00000000"
    assert igmp(2, "239.1.1.1", (), 1.0, False, 2, 125.0, "0.0.0.0") == "110afef2ef010101"
    assert igmp(3, "0.0.0.0", (), 10.0, False, 2, 125.0, "0.0.0.0") == "1164ec1e00000000027d0000"


def test_full_frame_layout_matches_the_reference() -> None:
    # reference §3.11: 46 c0 00 24 | id | 40 00 | 01 02 csum | src | e0 00 00 01 | 94 04 00 00
    frame = encode_query(3, "0.0.0.0", (), 10.0, False, 2, 125.0, "192.0.2.1", bytes.fromhex("020000000001"))
    assert frame[:14] == bytes.fromhex("01005e000001 020000000001 0800")
    header = frame[14:38]
    assert header[:4] == bytes.fromhex("46c00024") and header[6:10] == bytes.fromhex("40000102")
    assert header[12:] == bytes.fromhex("c0000201 e0000001 94040000")
    assert len(frame) == 14 + 24 + 12


def test_ip_query_is_the_frame_without_ethernet() -> None:
    for variant in VARIANTS:
        assert encode_query(*variant)[14:] == encode_ip_query(*variant)
    assert encode_query(*VARIANTS[0])[6:12] == b"\x00" * 6


def test_group_specific_query_goes_to_the_group_mac() -> None:
    frame = encode_query(3, "239.129.2.3", (), 1.0, False, 2, 125.0, "192.0.2.1")
    assert frame[:6] == bytes.fromhex("01005e010203") and frame[30:34] == bytes([239, 129, 2, 3])


def test_times_round_down_never_up() -> None:
    def decoded(mrt: float, qi: float) -> Query:
        message = decode(encode_query(3, "0.0.0.0", (), mrt, False, 2, qi, "192.0.2.1"))
        assert isinstance(message, Query)
        return message

    assert decoded(2.3, 125.0).max_response_time == 2.3  # 2.3 * 10 = 22.999...
    assert decoded(0.15, 125.9).max_response_time == 0.1
    assert decoded(0.15, 125.9).query_interval == 125.0
    assert decoded(13.0, 130.0).max_response_time == 12.8
    assert decoded(13.0, 130.0).query_interval == 128.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((4, "0.0.0.0", (), 1.0, False, 2, 125.0, "192.0.2.1"), "version"),
        ((3, "10.0.0.1", (), 1.0, False, 2, 125.0, "192.0.2.1"), "multicast"),
        ((3, "239.1.1", (), 1.0, False, 2, 125.0, "192.0.2.1"), "IPv4"),
        ((3, "239.1.1.1", ("192.0.2.300",), 1.0, False, 2, 125.0, "192.0.2.1"), "IPv4"),
        ((3, "239.1.1.1", (), 1.0, False, 2, 125.0, "fe80::1"), "IPv4"),
        ((2, "239.1.1.1", ("192.0.2.3",), 1.0, False, 2, 125.0, "192.0.2.1"), "sources"),
        ((1, "239.1.1.1", (), 1.0, False, 2, 125.0, "192.0.2.1"), "General"),
        ((3, "0.0.0.0", (), -1.0, False, 2, 125.0, "192.0.2.1"), "max_response_time"),
        ((3, "0.0.0.0", (), float("nan"), False, 2, 125.0, "192.0.2.1"), "max_response_time"),
        ((3, "0.0.0.0", (), 1.0, False, 2, float("inf"), "192.0.2.1"), "query_interval"),
        ((3, "0.0.0.0", (), 1.0, False, -1, 125.0, "192.0.2.1"), "qrv"),
        ((3, "232.1.1.1", ("192.0.2.1",) * 65536, 1.0, False, 2, 125.0, "192.0.2.1"), "16-bit"),
    ],
)
def test_bad_arguments_raise_value_error(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_query(*args)


def test_bad_source_mac_raises() -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        encode_query(3, "0.0.0.0", (), 1.0, False, 2, 125.0, "192.0.2.1", b"\x02\x00")


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_accepts_every_encoded_query(tmp_path: Path) -> None:
    frames = [encode_query(*variant) for variant in VARIANTS]
    pcap = tmp_path / "queries.pcap"
    wrpcap(str(pcap), [Ether(frame) for frame in frames])
    fields = [
        "igmp.checksum.status",
        "ip.checksum.status",
        "igmp.version",
        "igmp.type",
        "ip.ttl",
        "ip.opt.ra",
        "ip.dsfield",
        "igmp.maddr",
        "igmp.max_resp",
        "igmp.qqic",
        "igmp.qrv",
        "igmp.s",
        "igmp.saddr",
    ]
    command = [
        "tshark",
        "-n",
        "-r",
        str(pcap),
        "-o",
        "ip.check_checksum:TRUE",
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]
    for field in fields:
        command += ["-e", field]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout
    lines = output.splitlines()
    assert len(lines) == len(frames)
    for variant, line in zip(VARIANTS, lines, strict=True):
        row = dict(zip(fields, line.split("\t"), strict=True))
        expected = _expected_query(*variant)
        assert row["igmp.checksum.status"] == "1", (variant, row)  # 1 = Good
        assert row["ip.checksum.status"] == "1", (variant, row)
        assert (row["igmp.version"], row["igmp.type"]) == (str(expected.version), "0x11")
        assert (row["ip.ttl"], row["ip.opt.ra"], row["ip.dsfield"]) == ("1", "0", "0xc0")
        assert row["igmp.maddr"] == expected.group
        if expected.version == 3:
            assert float(row["igmp.max_resp"]) == round(expected.max_response_time * 10)
            assert decode_float_code(int(row["igmp.qqic"])) == expected.query_interval
            assert (int(row["igmp.qrv"]), row["igmp.s"]) == (
                expected.qrv,
                str(int(expected.suppress_router_processing)),
            )
            assert tuple(filter(None, row["igmp.saddr"].split(","))) == expected.sources
        elif expected.version == 2:
            assert float(row["igmp.max_resp"]) == round(expected.max_response_time * 10)
