"""A look at a frame for the join's short cut, before (and much cheaper than) ``decode``.

Nearly every join and leave on a LAN takes one of a few forms, always in the same layout:
Ethernet, IPv4 with exactly the Router Alert option (IHL 6), then an IGMPv2 report or
leave (8 bytes), or an IGMPv3 report of records without sources (8 bytes each): a join,
a leave, or both at once when a host changes channel. ``peek_membership`` recognises just
those, with every check ``decode`` makes on them, and says what they mean. It never
accepts a frame that ``decode`` would reject or read differently (a property test holds it
to that); anything else is None, and the caller decodes as usual.

Measured with the daemon's own timestamps after idle periods (the bench's join loop),
the join's short cut with this look instead of ``decode`` + ``Snooper.admit`` reached the
MDB write ~0.07 ms sooner (p50 of 5 A/B runs, 0.50 -> 0.43 ms report-to-data). In the
bench's join loop most IGMPv3 joins came with the TO_IN {} of the group left 50 ms before
(Linux repeats a state change and sends pending ones together): 73 of 80 missed the short
cut while it took only one-record reports.
"""

from __future__ import annotations

from socket import inet_aton, inet_ntoa

from snoopd.wire.codes import checksum_ok, inet_checksum, ipv4_multicast_mac

# Offsets in an untagged frame with a 24-byte IPv4 header (Router Alert only).
_IP = 14
_IGMP = _IP + 24
_RA_OPTION = b"\x94\x04\x00\x00"
# IGMP types; IGMPv3 record types (RFC 3376 §4.2.12) of an any-source join or leave.
_V2_REPORT, _V2_LEAVE, _V3_REPORT = 0x16, 0x17, 0x22
_TO_EX_RECORD = 4  # CHANGE_TO_EXCLUDE_MODE
_JOIN_RECORDS = (2, _TO_EX_RECORD)  # MODE_IS_EXCLUDE, CHANGE_TO_EXCLUDE_MODE
_LEAVE_RECORD = 3  # CHANGE_TO_INCLUDE_MODE
MAX_RECORDS = 8  # larger reports are bursts (answers to a query): decode takes them


def peek_membership(frame: bytes) -> tuple[str, tuple[tuple[bool, str], ...]] | None:
    """(host, ((join, group), ...)) for a frame of any-source joins and leaves by ``host``:
    an IGMPv2 report (one join) or leave (one leave), or an IGMPv3 report whose records
    (up to MAX_RECORDS) are all IS_EX {} or TO_EX {} (joins) or TO_IN {} (leaves), in the
    report's order. A host changing channel sends the last kind: the new group's TO_EX {}
    with the old group's TO_IN {} in one report. None for any other frame, valid or not."""
    if len(frame) < _IGMP + 8 or frame[12] != 0x08 or frame[13] != 0x00 or frame[_IP] != 0x46:
        return None
    if frame[_IP + 9] != 2 or frame[_IP + 6] & 0x3F or frame[_IP + 7] or frame[_IP + 20 : _IGMP] != _RA_OPTION:
        return None  # not IGMP, a fragment, or options other than Router Alert alone
    kind = frame[_IGMP]
    total = frame[_IP + 2] << 8 | frame[_IP + 3]
    if kind == _V3_REPORT:
        count = frame[_IGMP + 6] << 8 | frame[_IGMP + 7]
        size = 8 + 8 * count
        if not 0 < count <= MAX_RECORDS or total != 24 + size or len(frame) < _IGMP + size:
            return None
        changes = []
        for at in range(_IGMP + 8, _IGMP + size, 8):
            join = frame[at] in _JOIN_RECORDS
            if not join and frame[at] != _LEAVE_RECORD:
                return None
            if frame[at + 1] or frame[at + 2] or frame[at + 3] or frame[at + 4] & 0xF0 != 0xE0:
                return None  # aux data or sources, or not a multicast group
            changes.append((join, inet_ntoa(frame[at + 4 : at + 8])))
    elif kind in (_V2_REPORT, _V2_LEAVE):
        size = 8
        if total != 32 or frame[_IGMP + 4] & 0xF0 != 0xE0:
            return None
        changes = [(kind == _V2_REPORT, inet_ntoa(frame[_IGMP + 4 : _IGMP + 8]))]
    else:
        return None
    if not checksum_ok(frame[_IP:_IGMP]) or not checksum_ok(frame[_IGMP : _IGMP + size]):
        return None
    return inet_ntoa(frame[_IP + 12 : _IP + 16]), tuple(changes)


def example_join(host: str, group: str) -> bytes:
    """The commonest join on a LAN, as a frame ``peek_membership`` takes: an IGMPv3 report
    of one CHANGE_TO_EXCLUDE {} record from ``host``, to 224.0.0.22 with Router Alert
    (what Linux sends on IP_ADD_MEMBERSHIP). For the daemon's start-up rehearsal."""
    destination = inet_aton("224.0.0.22")
    igmp = bytearray(bytes((_V3_REPORT, 0, 0, 0, 0, 0, 0, 1, _TO_EX_RECORD, 0, 0, 0)) + inet_aton(group))
    igmp[2:4] = inet_checksum(igmp).to_bytes(2, "big")
    ip = bytearray(bytes((0x46, 0xC0)) + (24 + len(igmp)).to_bytes(2, "big")
                   + bytes((0, 0, 0x40, 0, 1, 2, 0, 0)) + inet_aton(host) + destination + _RA_OPTION)
    ip[10:12] = inet_checksum(ip).to_bytes(2, "big")
    return ipv4_multicast_mac(destination) + b"\x02\x00\x00\x00\x00\x01\x08\x00" + bytes(ip) + bytes(igmp)
