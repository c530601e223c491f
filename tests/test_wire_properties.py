"""Property tests for snoopd.wire (Hypothesis).

Profiles (tests/conftest.py): ``ci`` by default; ``HYPOTHESIS_PROFILE=hunt`` runs
100,000 examples per property, e.g. ``pytest tests/test_wire_properties.py -k raise``.
"""

from __future__ import annotations

import ipaddress
import os
import struct

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scapy.utils import checksum as scapy_checksum

from snoopd.core.messages import Leave, Malformed, MalformedReason, Query, Report, RouterHello
from snoopd.wire import decode, encode_query
from snoopd.wire.codes import checksum_ok, decode_float_code, encode_float_code, inet_checksum

from .wire_frames import GOLDEN, Golden

# A hunt takes minutes per property: lift pytest-timeout's per-test limit (pyproject) for it.
if os.environ.get("HYPOTHESIS_PROFILE") == "hunt":
    pytestmark = pytest.mark.timeout(0)

RESULT_TYPES = (Report, Leave, Query, RouterHello, Malformed)
ADDRESSES = [
    "224.0.0.1",
    "224.0.0.2",
    "224.0.0.4",
    "224.0.0.13",
    "224.0.0.22",
    "224.0.0.106",
    "239.1.1.1",
    "192.0.2.2",
    "0.0.0.0",
]


def check(frame: bytes) -> None:
    """decode() returns a message or a Malformed, whatever the options; it never raises."""
    for strict in (False, True):
        result = decode(frame, require_router_alert=strict)
        assert isinstance(result, RESULT_TYPES)
        if isinstance(result, Malformed):
            assert isinstance(result.reason, MalformedReason) and isinstance(result.detail, str)


def with_checksum(message: bytes) -> bytes:
    if len(message) < 4:
        return message
    blank = message[:2] + b"\x00\x00" + message[4:]
    return blank[:2] + inet_checksum(blank).to_bytes(2, "big") + blank[4:]


def ipv4_frame(
    payload: bytes,
    *,
    protocol: int = 2,
    destination: str = "224.0.0.22",
    options: bytes = b"\x94\x04\x00\x00",
    tagged: bool = False,
    padding: bytes = b"",
) -> bytes:
    """Ethernet (+ optional 802.1Q) + a valid IPv4 header around ``payload``."""
    options += b"\x00" * (-len(options) % 4)
    header_length = 20 + len(options)
    header = (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x40 | header_length // 4,
            0xC0,
            header_length + len(payload),
            0,
            0x4000,
            1,
            protocol,
            0,
            bytes([192, 0, 2, 1]),
            ipaddress.IPv4Address(destination).packed,
        )
        + options
    )
    header = header[:10] + inet_checksum(header).to_bytes(2, "big") + header[12:]
    ethernet = (
        bytes.fromhex("01005e000016 020000000001") + (b"\x81\x00\x00\x0a" if tagged else b"") + b"\x08\x00"
    )
    return ethernet + header + payload + padding


# ---- strategies -------------------------------------------------------------------------

u8 = st.integers(0, 255)
addresses = st.one_of(
    st.sampled_from([b"\xef\x01\x01\x01", b"\xe8\x01\x02\x03", b"\0\0\0\0"]),
    st.binary(min_size=4, max_size=4).map(lambda b: bytes([0xE0 | b[0] & 0x0F]) + b[1:]),
    st.binary(min_size=4, max_size=4),
)


@st.composite
def group_records(draw: st.DrawFn) -> bytes:
    """An IGMPv3 group record whose counts may or may not match its contents."""
    source_count = draw(st.integers(0, 4))
    claimed = draw(st.one_of(st.just(source_count), st.integers(0, 0xFFFF)))
    aux_words = draw(st.one_of(st.just(0), st.integers(0, 3), u8))
    record = struct.pack("!BBH", draw(st.integers(0, 8)), aux_words, claimed) + draw(addresses)
    record += b"".join(draw(addresses) for _ in range(source_count))
    return record + draw(st.binary(max_size=4 * min(aux_words, 3)))


@st.composite
def v3_reports(draw: st.DrawFn) -> bytes:
    records = draw(st.lists(group_records(), max_size=6))
    claimed = draw(st.one_of(st.just(len(records)), st.integers(0, 0xFFFF)))
    return struct.pack("!BBHHH", 0x22, 0, 0, 0, claimed) + b"".join(records) + draw(st.binary(max_size=6))


@st.composite
def v3_queries(draw: st.DrawFn) -> bytes:
    sources = draw(st.lists(addresses, max_size=5))
    claimed = draw(st.one_of(st.just(len(sources)), st.integers(0, 0xFFFF)))
    head = struct.pack("!BBH", 0x11, draw(u8), 0) + draw(addresses)
    return head + struct.pack("!BBH", draw(u8), draw(u8), claimed) + b"".join(sources)


@st.composite
def pim_messages(draw: st.DrawFn) -> bytes:
    options = b""
    for _ in range(draw(st.integers(0, 4))):
        value = draw(st.binary(max_size=6))
        length = draw(st.one_of(st.just(len(value)), st.integers(0, 0xFFFF)))
        options += struct.pack("!HH", draw(st.sampled_from([1, 2, 19, 20, 24, 0xFFFF])), length) + value
    return bytes([draw(st.sampled_from([0x20, 0x21, 0x10, 0x23])), 0, 0, 0]) + options


igmp_like = st.one_of(
    st.binary(max_size=64),
    st.builds(
        lambda kind, body: bytes([kind]) + body,
        st.sampled_from([0x11, 0x12, 0x13, 0x16, 0x17, 0x22, 0x30, 0x31, 0x32, 0x14, 0xF0]),
        st.binary(max_size=40),
    ),
    v3_reports(),
    v3_queries(),
)


# ---- decode never raises ------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_decode_never_raises_on_arbitrary_bytes(frame: bytes) -> None:
    check(frame)


@given(
    payload=st.one_of(igmp_like, pim_messages()),
    fix_checksum=st.sampled_from([True, True, True, False]),
    protocol=st.one_of(st.sampled_from([2, 2, 2, 103]), u8),
    destination=st.sampled_from(ADDRESSES),
    options=st.one_of(
        st.sampled_from([b"", b"\x94\x04\x00\x00", b"\x01\x94\x04\x00\x00"]), st.binary(max_size=40)
    ),
    tagged=st.booleans(),
    padding=st.one_of(st.just(b""), st.binary(max_size=20)),
)
def test_decode_never_raises_behind_a_valid_ipv4_header(
    payload: bytes,
    fix_checksum: bool,
    protocol: int,
    destination: str,
    options: bytes,
    tagged: bool,
    padding: bytes,
) -> None:
    if fix_checksum:
        payload = with_checksum(payload)
    frame = ipv4_frame(
        payload, protocol=protocol, destination=destination, options=options, tagged=tagged, padding=padding
    )
    check(frame)
    result = decode(frame)
    assert not (isinstance(result, Malformed) and result.reason.name.startswith(("BAD_IP", "NOT_IPV4")))


mutations = st.lists(
    st.one_of(
        st.tuples(st.just("flip"), st.integers(0, 400), st.integers(1, 255)),
        st.tuples(st.just("truncate"), st.integers(0, 400), st.just(0)),
        st.tuples(st.just("insert"), st.integers(0, 400), u8),
        st.tuples(st.just("delete"), st.integers(0, 400), st.integers(1, 8)),
    ),
    min_size=1,
    max_size=4,
)


def mutate(original: bytes, edits: list[tuple[str, int, int]]) -> bytearray:
    """``original`` with ``edits`` (from ``mutations``) applied in order."""
    frame = bytearray(original)
    for operation, position, value in edits:
        position %= len(frame) + 1
        if operation == "flip" and position < len(frame):
            frame[position] ^= value
        elif operation == "truncate":
            del frame[position:]
        elif operation == "insert":
            frame[position:position] = bytes([value])
        elif operation == "delete":
            del frame[position : position + value]
    return frame


@given(
    golden=st.sampled_from(GOLDEN),
    edits=mutations,
    fix_checksums=st.booleans(),
)
def test_decode_never_raises_on_mutated_golden_frames(
    golden: Golden, edits: list[tuple[str, int, int]], fix_checksums: bool
) -> None:
    frame = mutate(golden.frame, edits)
    if fix_checksums and len(frame) >= 34 and frame[12:14] == b"\x08\x00":
        # Make the mutation reach the IGMP parser: repair both checksums.
        header_length = max((frame[14] & 0x0F) * 4, 20)
        ip_header = bytes(frame[14 : 14 + header_length])
        ip_header = ip_header[:10] + b"\0\0" + ip_header[12:]
        frame[24:26] = inet_checksum(ip_header).to_bytes(2, "big")
        end = 14 + min(int.from_bytes(frame[16:18], "big"), len(frame) - 14)
        frame[14 + header_length : end] = with_checksum(bytes(frame[14 + header_length : end]))
    check(bytes(frame))


# ---- encode -> decode ------------------------------------------------------------------------

multicast_groups = st.builds(
    lambda first, rest: f"{first}.{rest >> 16}.{(rest >> 8) & 255}.{rest & 255}",
    st.integers(224, 239),
    st.integers(0, 2**24 - 1),
)
unicast = st.builds(lambda n: str(ipaddress.IPv4Address(n)), st.integers(0, 2**32 - 1))


@given(
    version=st.sampled_from([1, 2, 3]),
    group=st.one_of(st.just("0.0.0.0"), multicast_groups),
    sources=st.lists(unicast, max_size=20).map(tuple),
    max_response_time=st.floats(0, 5000, allow_nan=False),
    suppress=st.booleans(),
    qrv=st.integers(0, 20),
    query_interval=st.floats(0, 50000, allow_nan=False),
    source_address=unicast,
    src_mac=st.one_of(st.none(), st.binary(min_size=6, max_size=6)),
)
def test_encode_decode_round_trip(
    version: int,
    group: str,
    sources: tuple[str, ...],
    max_response_time: float,
    suppress: bool,
    qrv: int,
    query_interval: float,
    source_address: str,
    src_mac: bytes | None,
) -> None:
    if version == 1:
        group = "0.0.0.0"
    if version != 3:
        sources = ()
    frame = encode_query(
        version, group, sources, max_response_time, suppress, qrv, query_interval, source_address, src_mac
    )
    got = decode(frame, require_router_alert=True)
    assert isinstance(got, Query), got
    destination = "224.0.0.1" if group == "0.0.0.0" else group
    assert (got.version, got.group, got.source, got.destination) == (
        version,
        group,
        source_address,
        destination,
    )
    assert (got.ttl, got.router_alert) == (1, True)
    assert frame[6:12] == (src_mac or bytes(6))
    if version == 1:
        assert got.max_response_time == 10.0
        return
    # never announce more than asked (rounded down), and never less than one step below
    tenths = round(got.max_response_time * 10)
    if version == 2:
        assert tenths == min(max(int(max_response_time * 10 + 1e-9), 1), 255)
        return
    assert tenths == decode_float_code(encode_float_code(int(max_response_time * 10 + 1e-9)))
    assert tenths <= max_response_time * 10 + 1e-6 or max_response_time < 0.1
    assert got.query_interval == decode_float_code(encode_float_code(int(query_interval + 1e-9)))
    assert got.query_interval <= query_interval + 1e-9
    assert (got.sources, got.suppress_router_processing, got.qrv) == (
        sources,
        suppress,
        qrv if qrv <= 7 else 0,
    )


# ---- codes ---------------------------------------------------------------------------------


@given(st.binary(max_size=200))
def test_inet_checksum_agrees_with_scapy_and_verifies(data: bytes) -> None:
    assert inet_checksum(data) == scapy_checksum(data)
    padded = data + b"\x00" * (len(data) % 2)
    assert checksum_ok(padded + inet_checksum(padded).to_bytes(2, "big"))


@given(st.integers(0, 40000))
def test_float_code_is_the_largest_value_not_above(value: int) -> None:
    code = encode_float_code(value)
    assert decode_float_code(code) <= value
    assume(code < 255)
    assert decode_float_code(code + 1) > value
