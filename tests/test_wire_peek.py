"""peek_membership: the join's short cut reads a frame exactly as decode() does, or not at all.

The property: for every frame, ``peek_membership(frame)`` is None or what ``decode(frame)``
means in its terms (``meaning`` below). For frames of the common forms (an IGMPv2 report or
leave, an IGMPv3 report of up to 8 IS_EX/TO_EX/TO_IN records without sources, behind IPv4
with the Router Alert option alone), it must not be None: the short cut has to be taken.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snoopd.core.messages import Leave, Message, Report
from snoopd.wire import decode
from snoopd.wire.codes import inet_checksum
from snoopd.wire.peek import example_join, peek_membership

from .test_core_properties import as_peeked
from .test_wire_properties import ipv4_frame, mutate, mutations, with_checksum
from .wire_frames import GOLDEN

Peeked = tuple[str, tuple[tuple[bool, str], ...]]
HOST = "192.0.2.1"
GROUP = b"\xef\x01\x02\x03"  # 239.1.2.3


def meaning(message: Message | object) -> Peeked | None:
    """What peek_membership must answer for a frame that decodes to ``message``: the core's
    reading (as_peeked), for messages with Router Alert and without aux data."""
    if type(message) is Leave:
        return as_peeked(message)
    if type(message) is not Report or not message.router_alert or any(r.aux_data for r in message.records):
        return None
    return as_peeked(message)


def common_frame(kind: int, group: bytes, record_type: int = 4, source: bytes = b"\xc0\x00\x02\x01",
                 padding: bytes = b"\x00" * 14, records: list[tuple[int, bytes]] | None = None) -> bytes:
    """A host's frame: IGMPv2 report (0x16) / leave (0x17), or IGMPv3 report (0x22) of one
    ``record_type`` record for ``group`` (or of ``records``: (type, group) each), no
    sources, Ethernet-padded."""
    if kind == 0x22:
        records = records if records is not None else [(record_type, group)]
        igmp = struct.pack("!BBHHH", 0x22, 0, 0, 0, len(records))
        igmp += b"".join(struct.pack("!BBH", rtype, 0, 0) + address for rtype, address in records)
    else:
        igmp = struct.pack("!BBH", kind, 0, 0) + group
    frame = bytearray(ipv4_frame(with_checksum(igmp), destination="224.0.0.22", padding=padding))
    frame[26:30] = source
    return fix_ip_checksum(frame)


def fix_ip_checksum(frame: bytearray) -> bytes:
    frame[24:26] = b"\0\0"
    frame[24:26] = inet_checksum(bytes(frame[14:38])).to_bytes(2, "big")
    return bytes(frame)


def agrees(frame: bytes) -> Peeked | None:
    peeked = peek_membership(frame)
    assert peeked is None or peeked == meaning(decode(frame)), (frame.hex(), peeked, decode(frame))
    return peeked


@pytest.mark.parametrize(("kind", "record_type", "expected"), [
    (0x16, 0, (HOST, ((True, "239.1.2.3"),))),
    (0x17, 0, (HOST, ((False, "239.1.2.3"),))),
    (0x22, 2, (HOST, ((True, "239.1.2.3"),))),  # IS_EX {}: a host's answer to a query
    (0x22, 4, (HOST, ((True, "239.1.2.3"),))),  # TO_EX {}: a join
    (0x22, 3, (HOST, ((False, "239.1.2.3"),))),  # TO_IN {}: a leave
    (0x22, 1, None),  # IS_IN {}: no join
    (0x22, 5, None),  # ALLOW {}
    (0x22, 7, None),  # unknown record type: decode skips the record
])
def test_the_common_forms_are_read_as_decode_reads_them(kind: int, record_type: int, expected: Peeked | None) -> None:
    for padding in (b"", b"\x00" * 14):
        assert agrees(common_frame(kind, GROUP, record_type, padding=padding)) == expected


def test_a_channel_change_is_one_report_and_is_read_whole() -> None:
    # Linux sends pending state changes together: leaving one group and joining the next.
    change = common_frame(0x22, GROUP, records=[(3, b"\xef\x01\x02\x02"), (4, GROUP)])
    assert agrees(change) == (HOST, ((False, "239.1.2.2"), (True, "239.1.2.3")))
    most = common_frame(0x22, GROUP, records=[(4, bytes([239, 1, 2, i])) for i in range(8)])
    assert agrees(most) == (HOST, tuple((True, f"239.1.2.{i}") for i in range(8)))
    too_many = common_frame(0x22, GROUP, records=[(4, bytes([239, 1, 2, i])) for i in range(9)])
    assert agrees(too_many) is None  # a burst: decode takes it
    one_allow = common_frame(0x22, GROUP, records=[(4, GROUP), (5, b"\xef\x01\x02\x02")])
    assert agrees(one_allow) is None
    one_unicast = common_frame(0x22, GROUP, records=[(4, GROUP), (4, b"\xc0\x00\x02\x07")])
    assert agrees(one_unicast) is None


def test_what_decode_rejects_or_reads_otherwise_is_left_to_it() -> None:
    good = common_frame(0x22, b"\xef\x01\x02\x03")
    assert peek_membership(good) is not None
    bad_igmp = bytearray(good)
    bad_igmp[40] ^= 1  # IGMP checksum
    bad_ip = bytearray(good)
    bad_ip[24] ^= 1  # IPv4 header checksum
    unicast = common_frame(0x22, b"\xc0\x00\x02\x07")  # a "group" outside 224/4
    tagged = good[:12] + b"\x81\x00\x00\x0a" + good[12:]  # in-band 802.1Q: decode's business
    no_ra = ipv4_frame(with_checksum(good[38:54]), options=b"")
    nops = bytearray(good)
    nops[34:38] = b"\x01\x01\x01\x01"  # four NOPs instead of Router Alert
    fragments = []
    for flags in (b"\x20\x00", b"\x00\x01", b"\x40\x08"):  # MF; offset 8 bytes; DF + offset 64
        fragment = bytearray(good)
        fragment[20:22] = flags
        fragments.append(fix_ip_checksum(fragment))
    longer = bytearray(good)
    longer[16:18] = (int.from_bytes(good[16:18], "big") + 2).to_bytes(2, "big")  # 2 bytes past the record
    for frame in (bytes(bad_igmp), bytes(bad_ip), unicast, tagged, no_ra, fix_ip_checksum(nops), *fragments,
                  fix_ip_checksum(longer), good[:53]):
        assert agrees(frame) is None


@given(kind=st.sampled_from([0x16, 0x17, 0x22]), records=st.lists(st.tuples(st.integers(0, 8), st.binary(
       min_size=4, max_size=4)), min_size=1, max_size=10), source=st.binary(min_size=4, max_size=4),
       padding=st.binary(max_size=20))
def test_every_common_form_is_taken_when_decode_reads_it_so(kind: int, records: list[tuple[int, bytes]],
                                                            source: bytes, padding: bytes) -> None:
    frame = common_frame(kind, records[0][1], source=source, padding=padding, records=records)
    peeked = agrees(frame)
    if kind != 0x22 or all(rtype in (2, 3, 4) for rtype, _ in records):
        assert peeked == meaning(decode(frame))  # never None where decode says joins and leaves
    # (decode skips records of unknown type and reads the rest; peek leaves such reports to it)


@given(frame=st.binary(max_size=120))
def test_arbitrary_bytes_are_never_misread(frame: bytes) -> None:
    agrees(frame)


@given(kind=st.sampled_from([0x16, 0x17, 0x22]), records=st.lists(st.tuples(st.sampled_from([2, 3, 4]),
       st.sampled_from([b"\xef\x01\x02\x03", b"\xe0\x00\x00\xfb"])), min_size=1, max_size=3), edits=mutations,
       fix_checksums=st.booleans())
def test_mutated_common_forms_are_never_misread(kind: int, records: list[tuple[int, bytes]],
                                                edits: list[tuple[str, int, int]], fix_checksums: bool) -> None:
    frame = mutate(common_frame(kind, records[0][1], records=records), edits)
    if fix_checksums and len(frame) >= 54:  # reach past the checksums with the mutation
        fix_ip_checksum(frame)
        end = 14 + min(int.from_bytes(frame[16:18], "big"), len(frame) - 14)
        frame[38:end] = with_checksum(bytes(frame[38:end]))
    agrees(bytes(frame))


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda g: g.name)
def test_golden_frames_are_read_as_decode_reads_them(golden: object) -> None:
    frame = golden.frame  # type: ignore[attr-defined]
    peeked = agrees(frame)
    message = decode(frame)
    if meaning(message) is not None and frame[14] == 0x46 and frame[34:38] == b"\x94\x04\x00\x00" \
            and int.from_bytes(frame[16:18], "big") in (32, 40):
        assert peeked is not None  # a host's join or leave in the common form: taken
    if peeked is not None:
        assert all(ipaddress.ip_address(group).is_multicast for _, group in peeked[1])


def test_the_example_join_is_what_linux_sends() -> None:
    """The daemon's start-up rehearsal frame: byte for byte a Linux host's IGMPv3 join
    (golden frame), but for the source MAC; and the short cut takes it."""
    linux = next(g for g in GOLDEN if g.name == "linux_v3_report_to_ex").frame
    frame = example_join("192.0.2.1", "239.1.1.1")
    assert frame[:6] == linux[:6] and frame[12:] == linux[12:]
    assert agrees(frame) == ("192.0.2.1", ((True, "239.1.1.1"),))
    assert agrees(example_join("198.18.0.7", "232.1.2.3")) == ("198.18.0.7", ((True, "232.1.2.3"),))
