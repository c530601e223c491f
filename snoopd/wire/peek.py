"""A look at a frame for the join's short cut, before (and much cheaper than) ``decode``.

Nearly every join and leave on a LAN is one of four frames, always in the same layout:
Ethernet, IPv4 with exactly the Router Alert option (IHL 6), then an IGMPv2 report or
leave (8 bytes), or an IGMPv3 report of one record with no sources (16 bytes).
``peek_membership`` recognises just those, with every check ``decode`` makes on them,
and says what they mean in three values. It never accepts a frame that ``decode`` would
reject or read differently (a property test holds it to that); anything else is None,
and the caller decodes as usual.

Measured with the daemon's own timestamps after idle periods (the bench's join loop),
the join's short cut with this look instead of ``decode`` + ``Snooper.admit`` reached the
MDB write ~0.07 ms sooner (p50 of 5 A/B runs, 0.50 -> 0.43 ms report-to-data).
"""

from __future__ import annotations

from socket import inet_ntoa

from snoopd.wire.codes import checksum_ok

# Offsets in an untagged frame with a 24-byte IPv4 header (Router Alert only).
_IP = 14
_IGMP = _IP + 24
_RA_OPTION = b"\x94\x04\x00\x00"
# IGMP types; IGMPv3 record types (RFC 3376 §4.2.12) of an any-source join or leave.
_V2_REPORT, _V2_LEAVE, _V3_REPORT = 0x16, 0x17, 0x22
_JOIN_RECORDS = (2, 4)  # MODE_IS_EXCLUDE, CHANGE_TO_EXCLUDE_MODE
_LEAVE_RECORD = 3  # CHANGE_TO_INCLUDE_MODE


def peek_membership(frame: bytes) -> tuple[bool, str, str] | None:
    """(True, group, host) for an any-source join of ``group`` by ``host`` (an IGMPv2
    report, or an IGMPv3 report of one IS_EX {} or TO_EX {} record), (False, group, host)
    for an any-source leave (an IGMPv2 leave, or an IGMPv3 report of one TO_IN {} record);
    None for any other frame, valid or not."""
    if len(frame) < _IGMP + 8 or frame[12] != 0x08 or frame[13] != 0x00 or frame[_IP] != 0x46:
        return None
    if frame[_IP + 9] != 2 or frame[_IP + 6] & 0x3F or frame[_IP + 7] or frame[_IP + 20 : _IGMP] != _RA_OPTION:
        return None  # not IGMP, a fragment, or options other than Router Alert alone
    kind = frame[_IGMP]
    size = 16 if kind == _V3_REPORT else 8
    total = frame[_IP + 2] << 8 | frame[_IP + 3]
    if total != 24 + size or len(frame) < _IGMP + size:
        return None
    if kind == _V3_REPORT:
        # one record (count 1), no aux data, no sources
        if frame[_IGMP + 6 : _IGMP + 8] != b"\x00\x01" or frame[_IGMP + 9] or frame[_IGMP + 10] or frame[_IGMP + 11]:
            return None
        record = frame[_IGMP + 8]
        if record in _JOIN_RECORDS:
            join = True
        elif record == _LEAVE_RECORD:
            join = False
        else:
            return None
        group = frame[_IGMP + 12 : _IGMP + 16]
    elif kind in (_V2_REPORT, _V2_LEAVE):
        join = kind == _V2_REPORT
        group = frame[_IGMP + 4 : _IGMP + 8]
    else:
        return None
    if group[0] & 0xF0 != 0xE0 or not checksum_ok(frame[_IP:_IGMP]) or not checksum_ok(frame[_IGMP : _IGMP + size]):
        return None
    return join, inet_ntoa(group), inet_ntoa(frame[_IP + 12 : _IP + 16])
