"""Golden frames for the wire codec tests, as hex, with where each came from.

Three origins:

* ``ref_*``: the IGMP bytes are the test vectors of the snoopd reference
  (``/work/shared/reference/igmp-mld.md`` §3.12, verified there with scapy 2.8);
  the Ethernet/IPv4 wrapper was built with scapy 2.8 (IHL 6 with Router Alert,
  TOS 0xC0, TTL 1, DF, src 192.0.2.1). ``ref_v3_report_to_ex`` uses the
  reference's own IPv4 header vector as well (192.168.1.10 → 224.0.0.22).
* ``linux_*``: captured with tcpdump from a real Linux 6.18 kernel. A host
  namespace (veth0, 192.0.2.1, ``force_igmp_version`` 1/2/3) joined groups with
  ``IP_ADD_MEMBERSHIP`` / ``IP_ADD_SOURCE_MEMBERSHIP`` from a Python socket; its
  veth peer was a port of a bridge in a second namespace with ``mcast_querier 1``,
  ``mcast_query_use_ifaddr 1`` (192.0.2.2), query interval 3 s, response
  interval 1 s, so ``linux_bridge_*`` frames are the kernel bridge querier's
  own. Note the bridge sends its IGMPv2 group-specific queries to 224.0.0.1 and
  sets the S flag on retransmitted group-specific queries.
* ``scapy_*``: built with scapy 2.8 (``scapy.layers.igmp``, ``scapy.contrib.pim``;
  raw IGMP bytes where scapy has no layer), recipe in the comment.

Spaces in the hex separate Ethernet header | IPv4 header | IP payload | padding.
"""

from __future__ import annotations

from typing import NamedTuple

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


class Golden(NamedTuple):
    name: str
    hex: str
    expected: Message | Malformed  # for Malformed only ``reason`` is compared

    @property
    def frame(self) -> bytes:
        return bytes.fromhex(self.hex)


IS_IN = RecordType.MODE_IS_INCLUDE
IS_EX = RecordType.MODE_IS_EXCLUDE
TO_IN = RecordType.CHANGE_TO_INCLUDE_MODE
TO_EX = RecordType.CHANGE_TO_EXCLUDE_MODE
ALLOW = RecordType.ALLOW_NEW_SOURCES
BLOCK = RecordType.BLOCK_OLD_SOURCES
PIM = RouterProtocol.PIM
MRD = RouterProtocol.MRD
DVMRP = RouterProtocol.DVMRP
H1 = "192.0.2.1"  # scapy frames' sender and the Linux host
BR = "192.0.2.2"  # the Linux bridge querier (mcast_query_use_ifaddr)
ALL_SYSTEMS = "224.0.0.1"
IGMPV3_ROUTERS = "224.0.0.22"


def _v12_report(version: int, group: str, source: str, destination: str, router_alert: bool = True) -> Report:
    return Report(version, (GroupRecord(IS_EX, group, ()),), source, destination, 1, router_alert)


GOLDEN: tuple[Golden, ...] = (
    # ---- reference §3.12 vectors -------------------------------------------------
    Golden(
        "ref_v2_general_query",
        "01005e0000010200000000010800 46c000200000400001024215c0000201e000000194040000 1164ee9b00000000",
        Query(2, "0.0.0.0", H1, ALL_SYSTEMS, 10.0),
    ),
    Golden(
        "ref_v2_group_query",
        "01005e0101010200000000010800 46c000200000400001023214c0000201ef01010194040000 110afef2ef010101",
        Query(2, "239.1.1.1", H1, "239.1.1.1", 1.0),
    ),
    Golden(
        "ref_v2_report",
        "01005e0101010200000000010800 46c000200000400001023214c0000201ef01010194040000 1600f9fcef010101",
        _v12_report(2, "239.1.1.1", H1, "239.1.1.1"),
    ),
    Golden(
        "ref_v2_leave",
        "01005e0000020200000000010800 46c000200000400001024214c0000201e000000294040000 1700f8fcef010101",
        Leave("239.1.1.1", H1, "224.0.0.2"),
    ),
    Golden(
        "ref_v3_general_query",
        (
            "01005e0000010200000000010800 "
            "46c000240000400001024211c0000201e000000194040000 "
            "1164ec1e00000000027d0000"
        ),
        Query(3, "0.0.0.0", H1, ALL_SYSTEMS, 10.0, (), False, 2, 125.0),
    ),
    Golden(
        "ref_v3_report_to_ex",
        (
            "01005e0000160200000000010800 "
            "46c000280000400001024247c0a8010ae000001694040000 "
            "2200e9fb0000000104000000ef010101"
        ),
        Report(3, (GroupRecord(TO_EX, "239.1.1.1"),), "192.168.1.10", IGMPV3_ROUTERS),
    ),
    # ---- Linux 6.18 kernel captures --------------------------------------------
    # force_igmp_version=1: v1 report (Linux adds Router Alert even to v1).
    Golden(
        "linux_v1_report",
        "01005e0101019a57402db4ce0800 46c000200000400001023214c0000201ef01010194040000 1200fdfcef010101",
        _v12_report(1, "239.1.1.1", H1, "239.1.1.1"),
    ),
    Golden(
        "linux_v2_report",
        "01005e0101011a03fe9a9fdb0800 46c000200000400001023214c0000201ef01010194040000 1600f9fcef010101",
        _v12_report(2, "239.1.1.1", H1, "239.1.1.1"),
    ),
    Golden(
        "linux_v2_leave",
        "01005e0000021a03fe9a9fdb0800 46c000200000400001024214c0000201e000000294040000 1700f8fcef010101",
        Leave("239.1.1.1", H1, "224.0.0.2"),
    ),
    Golden(
        "linux_bridge_v2_general_query",
        "01005e0000012a26e27d42e40800 46c000200000400001024214c0000202e000000194040000 110aeef500000000",
        Query(2, "0.0.0.0", BR, ALL_SYSTEMS, 1.0),
    ),
    # The bridge's v2 group-specific query goes to 224.0.0.1, not the group.
    Golden(
        "linux_bridge_v2_group_query",
        "01005e0000012a26e27d42e40800 46c000200000400001024214c0000202e000000194040000 110afef2ef010101",
        Query(2, "239.1.1.1", BR, ALL_SYSTEMS, 1.0),
    ),
    # Query interval 3 s and response interval 1 s are written as codes 3 and 10.
    Golden(
        "linux_bridge_v3_general_query",
        (
            "01005e0000014a9bad4e30580800 "
            "46c000240000400001024210c0000202e000000194040000 "
            "110aecf20000000002030000"
        ),
        Query(3, "0.0.0.0", BR, ALL_SYSTEMS, 1.0, (), False, 2, 3.0),
    ),
    Golden(
        "linux_bridge_v3_gss_query",
        (
            "01005e0101014a9bad4e30580800 "
            "46c00028000040000102390bc0000202e801010194040000 "
            "110a418be801010102030001c0000263"
        ),
        Query(3, "232.1.1.1", BR, "232.1.1.1", 1.0, ("192.0.2.99",), False, 2, 3.0),
    ),
    Golden(
        "linux_bridge_v3_group_query_s_flag",
        (
            "01005e0101014a9bad4e30580800 "
            "46c00024000040000102320fc0000202ef01010194040000 "
            "110af4efef0101010a030000"
        ),
        Query(3, "239.1.1.1", BR, "239.1.1.1", 1.0, (), True, 2, 3.0),
    ),
    # The bridge joins All-Snoopers (RFC 4286 §3.3) through its own v3 report.
    Golden(
        "linux_bridge_v3_report_all_snoopers",
        (
            "01005e0000164a9bad4e30580800 "
            "46c0002800004000010241f7c0000202e000001694040000 "
            "2200f9930000000104000000e000006a"
        ),
        Report(3, (GroupRecord(TO_EX, "224.0.0.106"),), BR, IGMPV3_ROUTERS),
    ),
    Golden(
        "linux_v3_report_to_ex",
        (
            "01005e000016be72c50d3b9b0800 "
            "46c0002800004000010241f8c0000201e000001694040000 "
            "2200e9fb0000000104000000ef010101"
        ),
        Report(3, (GroupRecord(TO_EX, "239.1.1.1"),), H1, IGMPV3_ROUTERS),
    ),
    Golden(
        "linux_v3_report_is_ex",
        (
            "01005e000016be72c50d3b9b0800 "
            "46c0002800004000010241f8c0000201e000001694040000 "
            "2200ebfb0000000102000000ef010101"
        ),
        Report(3, (GroupRecord(IS_EX, "239.1.1.1"),), H1, IGMPV3_ROUTERS),
    ),
    Golden(
        "linux_v3_report_allow",
        (
            "01005e000016be72c50d3b9b0800 "
            "46c0002c00004000010241f4c0000201e000001694040000 "
            "22002d970000000105000001e8010101c0000263"
        ),
        Report(3, (GroupRecord(ALLOW, "232.1.1.1", ("192.0.2.99",)),), H1, IGMPV3_ROUTERS),
    ),
    Golden(
        "linux_v3_report_is_in_is_ex",
        (
            "01005e000016be72c50d3b9b0800 "
            "46c0003400004000010241ecc0000201e000001694040000 "
            "22003f930000000201000001e8010101c000026302000000ef010101"
        ),
        Report(
            3,
            (GroupRecord(IS_IN, "232.1.1.1", ("192.0.2.99",)), GroupRecord(IS_EX, "239.1.1.1")),
            H1,
            IGMPV3_ROUTERS,
        ),
    ),
    Golden(
        "linux_v3_report_block",
        (
            "01005e000016be72c50d3b9b0800 "
            "46c0002c00004000010241f4c0000201e000001694040000 "
            "22002c970000000106000001e8010101c0000263"
        ),
        Report(3, (GroupRecord(BLOCK, "232.1.1.1", ("192.0.2.99",)),), H1, IGMPV3_ROUTERS),
    ),
    Golden(
        "linux_v3_report_to_in",
        (
            "01005e000016be72c50d3b9b0800 "
            "46c0002800004000010241f8c0000201e000001694040000 "
            "2200eafb0000000103000000ef010101"
        ),
        Report(3, (GroupRecord(TO_IN, "239.1.1.1"),), H1, IGMPV3_ROUTERS),
    ),
    # ---- scapy 2.8 ----------------------------------------------------------------
    # IP(proto=2, no options)/Raw(bytes(IGMP_MQ(mrcode=0))): IGMPv1 query, no RA.
    Golden(
        "scapy_v1_query",
        "01005e0000010200000000010800 45c0001c000040000102d71dc0000201e0000001 1100eeff00000000",
        Query(1, "0.0.0.0", H1, ALL_SYSTEMS, 10.0, router_alert=False),
    ),
    # IP(ttl=64, options=RA)/IGMP_MQ(mrcode=255): TTL != 1 is accepted (and visible).
    Golden(
        "scapy_v2_query_ttl_64",
        "01005e0000010200000000010800 46c000200001000040024314c0000201e000000194040000 11ffee0000000000",
        Query(2, "0.0.0.0", H1, ALL_SYSTEMS, 25.5, ttl=64),
    ),
    # IGMPv3_MQ(mrcode=1000 -> code 0xaf = 992, gaddr=232.7.7.7, s=1, qrv=7, qqic=0x8c = 224,
    #           srcaddrs=[.30, .31, .32])
    Golden(
        "scapy_v3_query_sources",
        (
            "01005e0707070200000000010800 "
            "46c0003000004000010232f8c0000201e807070794040000 "
            "11afa953e80707070f8c0003c000021ec000021fc0000220"
        ),
        Query(
            3, "232.7.7.7", H1, "232.7.7.7", 99.2, ("192.0.2.30", "192.0.2.31", "192.0.2.32"), True, 7, 224.0
        ),
    ),
    # IGMPv3_MR with one record of each type 1-6; records 3 and 4 carry aux data
    # (IGMPv3_MR_Group(auxdlen=1)/Raw(b"AUX1"), auxdlen=2 / Raw(b"aux-data")).
    Golden(
        "scapy_v3_report_all_types",
        (
            "01005e0000160200000000010800 "
            "46c0008000004000010241a0c0000201e000001694040000 "
            "2200104d0000000601000002e8010101c000020ac000020b02000001ef020202c000020c03010001ef030303 "
            "c00002124155583104020001ef040404c000020d6175782d6461746105000003e8050505c000020ec000020f "
            "c000021006000001e8060606c0000211"
        ),
        Report(
            3,
            (
                GroupRecord(IS_IN, "232.1.1.1", ("192.0.2.10", "192.0.2.11")),
                GroupRecord(IS_EX, "239.2.2.2", ("192.0.2.12",)),
                GroupRecord(TO_IN, "239.3.3.3", ("192.0.2.18",), b"AUX1"),
                GroupRecord(TO_EX, "239.4.4.4", ("192.0.2.13",), b"aux-data"),
                GroupRecord(ALLOW, "232.5.5.5", ("192.0.2.14", "192.0.2.15", "192.0.2.16")),
                GroupRecord(BLOCK, "232.6.6.6", ("192.0.2.17",)),
            ),
            H1,
            IGMPV3_ROUTERS,
        ),
    ),
    # Records of type 9 (with a source and aux data) and type 0 (group 10.0.0.1)
    # around a TO_EX: unknown types are skipped, RFC 3376 §4.2.12.
    Golden(
        "scapy_v3_report_unknown_record_types",
        (
            "01005e0000160200000000010800 "
            "46c0004000004000010241e0c0000201e000001694040000 "
            "22009e500000000309010001ef090909c00002143f3f3f3f04000000ef010101000000000a000001"
        ),
        Report(3, (GroupRecord(TO_EX, "239.1.1.1"),), H1, IGMPV3_ROUTERS),
    ),
    # IGMPv3_MR(...)/Raw(b"extra"): bytes after the last record, RFC 3376 §4.2.11.
    Golden(
        "scapy_v3_report_trailing_bytes",
        (
            "01005e0000160200000000010800 "
            "46c0003100004000010241efc0000201e000001694040000 "
            "2200f2e60000000105000001e8010101c00002286578747261"
        ),
        Report(3, (GroupRecord(ALLOW, "232.1.1.1", ("192.0.2.40",)),), H1, IGMPV3_ROUTERS),
    ),
    # IGMPv2_MR/Raw(4 bytes): a 12-byte v2 report, RFC 2236 §2.5.
    Golden(
        "scapy_v2_report_long",
        (
            "01005e0101010200000000010800 "
            "46c000240000400001023210c0000201ef01010194040000 "
            "1600f7f8ef01010100010203"
        ),
        _v12_report(2, "239.1.1.1", H1, "239.1.1.1"),
    ),
    # Reports to 224.0.0.1 without Router Alert (IP(proto=2)/Raw(bytes(IGMPv2_MR / IGMPv3_MR))).
    Golden(
        "scapy_v2_report_to_all_systems_no_ra",
        "01005e0000010200000000010800 45c0001c000040000102d71dc0000201e0000001 1600f9fcef010101",
        _v12_report(2, "239.1.1.1", H1, ALL_SYSTEMS, router_alert=False),
    ),
    Golden(
        "scapy_v3_report_to_all_systems_no_ra",
        (
            "01005e0000010200000000010800 "
            "45c00024000040000102d715c0000201e0000001 "
            "2200e9fb0000000104000000ef010101"
        ),
        Report(3, (GroupRecord(TO_EX, "239.1.1.1"),), H1, ALL_SYSTEMS, 1, False),
    ),
    # Ether/Dot1Q(vlan=10, prio=6)/IP/IGMPv3_MR: one in-frame 802.1Q tag.
    Golden(
        "scapy_vlan_v3_report",
        (
            "01005e0000160200000000018100c00a0800 "
            "46c0002800004000010241f8c0000201e000001694040000 "
            "2200e2e90000000102000000ef0a0a0a"
        ),
        Report(3, (GroupRecord(IS_EX, "239.10.10.10"),), H1, IGMPV3_ROUTERS),
    ),
    # IGMPv2_MR/Padding(14 zero bytes): Ethernet minimum-size padding.
    Golden(
        "scapy_padded_v2_report",
        (
            "01005e0101010200000000010800 "
            "46c000200000400001023214c0000201ef01010194040000 "
            "1600f9fcef010101 "
            "0000000000000000000000000000"
        ),
        _v12_report(2, "239.1.1.1", H1, "239.1.1.1"),
    ),
    # IP options NOP, RA, NOP x3 (IHL 7); Leave sent to the group (RFC 2236 §9).
    Golden(
        "scapy_options_nop_ra",
        (
            "01005e0101010200000000010800 "
            "47c00024000040000102be7ec0000201ef0101010194040000010101 "
            "1700f8fcef010101"
        ),
        Leave("239.1.1.1", H1, "239.1.1.1"),
    ),
    # IGMPv3_MRA(advIntvl=20, qryIntvl=125, robust=2) -> holdtime 3 * 20 s.
    Golden(
        "scapy_mrd_advertisement",
        "01005e00006a0200000000010800 46c0002000004000010241acc0000201e000006a94040000 3014cf6c007d0002",
        RouterHello(MRD, H1, "224.0.0.106", 60.0),
    ),
    # IGMPv3_MRS(type=0x32): 4-byte Termination (scapy's IGMPv3_MRT has type 0x31).
    Golden(
        "scapy_mrd_termination",
        "01005e00006a0200000000010800 46c0001c00004000010241b0c0000201e000006a94040000 3200cdff",
        RouterHello(MRD, H1, "224.0.0.106", 0.0),
    ),
    Golden(
        "scapy_mrd_solicitation",
        "01005e0000020200000000010800 46c0001c0000400001024218c0000201e000000294040000 3100ceff",
        Malformed(MalformedReason.UNKNOWN_TYPE),
    ),
    # PIMv2Hdr/PIMv2Hello(Holdtime 105, DR priority 1, Generation ID).
    Golden(
        "scapy_pim_hello",
        (
            "01005e00000d0200000000010800 "
            "45c0002e000100000167169ac0000201e000000d "
            "200076b700010002006900130004000000010014000412345678"
        ),
        RouterHello(PIM, H1, "224.0.0.13", 105.0),
    ),
    Golden(
        "scapy_pim_goodbye",
        "01005e00000d0200000000010800 45c0001e00010000016716aac0000201e000000d 2000dffc000100020000",
        RouterHello(PIM, H1, "224.0.0.13", 0.0),
    ),
    # Holdtime 0xFFFF = never time out (RFC 7761 §4.9.2), after a DR priority option.
    Golden(
        "scapy_pim_holdtime_forever",
        (
            "01005e00000d0200000000010800 "
            "45c0002600010000016716a2c0000201e000000d "
            "2000dfe4001300040000000100010002ffff"
        ),
        RouterHello(PIM, H1, "224.0.0.13", float("inf")),
    ),
    # Raw DVMRP Probe: 13 01 csum, reserved 000e, capabilities ff, version 3, generation id 0x42.
    Golden(
        "scapy_dvmrp_probe",
        (
            "01005e0000040200000000010800 "
            "46c00024000040000102420ec0000201e000000494040000 "
            "1301edaa000eff0300000042"
        ),
        RouterHello(DVMRP, H1, "224.0.0.4", None),
    ),
    Golden(
        "scapy_udp",
        "01005e0101010200000000010800 45000020000100004011c8c8c0000201ef010101 03e807d0000c695764617461",
        Malformed(MalformedReason.NOT_IGMP),
    ),
    Golden(
        "scapy_ipv6",
        (
            "33330000000102000000000186dd "
            "6000000000091140fe800000000000000000000000000001ff02000000000000000000000000000100350035 "
            "000989ec78"
        ),
        Malformed(MalformedReason.NOT_IPV4),
    ),
)

BY_NAME: dict[str, Golden] = {golden.name: golden for golden in GOLDEN}
