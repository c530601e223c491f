"""IngressFilter: keep IGMP reports and leaves away from the kernel bridge.

While snoopd runs in kernel mode its table is the only source of truth, so the
bridge must not learn from reports itself. Per port, a ``clsact`` qdisc carries a
``cls_bpf`` direct-action filter with a classic BPF program that drops IPv4 IGMP
membership reports and leaves (types 0x12, 0x16, 0x17, 0x22) and passes
everything else: queries (so the bridge still sees the querier), data, PIM, ARP.
(This kernel has no tc flower, matchall or gact.)

snoopd still sees the dropped frames: an AF_PACKET/ETH_P_ALL socket on the port
taps them before tc ingress.

With direct action the program's return value is the TC verdict: TC_ACT_SHOT (2)
drops; TC_ACT_UNSPEC (-1, what the program returns to pass) means "not mine":
classification goes on to later filters, and with none the frame passes. Measured
on 6.18 with a constant program: 0 (OK), -1 and 1 pass; 2 (SHOT) and 7 (TRAP) drop.
At tc ingress cls_bpf pushes the MAC header back first, so offsets count from the
Ethernet header.

The filter is marked by its handle and priority (``FILTER_HANDLE`` "snpd",
``FILTER_PRIO``), so a clean stop and the next start after a crash (``remove_stale``)
find it. A clsact qdisc that snoopd created is removed again by ``remove`` when it
holds no other filters; after a crash it stays (empty, harmless).

pyroute2 0.9 cannot add classic BPF: its cls_bpf options declare TCA_BPF_OPS as a
u32 and never send the program. ``tcmsg_cls_bpf`` declares the message properly
(a fresh nlmsg class: subclassing pyroute2's compiled ``tcmsg`` would reuse its
NLA table) and goes out through ``IPRoute.nlm_request``.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
from typing import TYPE_CHECKING, Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_DELTFILTER, RTM_NEWTFILTER
from pyroute2.netlink.rtnl.tcmsg import tcmsg

if TYPE_CHECKING:
    from snoopd.adapters.mdb_msg import nla, nlmsg
else:
    from pyroute2.netlink import nla, nlmsg

log = logging.getLogger(__name__)

TC_H_CLSACT_INGRESS = 0xFFFFFFF2  # TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)
FILTER_HANDLE = 0x736E7064  # "snpd"
FILTER_PRIO = 0xC0DE
ETH_P_IP = 0x0800
TCA_BPF_FLAG_ACT_DIRECT = 1
TC_ACT_UNSPEC = -1
TC_ACT_OK = 0
TC_ACT_SHOT = 2

NLM_F_REQUEST, NLM_F_ACK, NLM_F_REPLACE, NLM_F_CREATE = 0x1, 0x4, 0x100, 0x400

# classic BPF opcodes (linux/bpf_common.h)
_LDH_ABS, _LDB_ABS, _LDB_IND, _LDXB_MSH = 0x28, 0x30, 0x50, 0xB1
_JEQ_K, _JSET_K, _RET_K = 0x15, 0x45, 0x06

IGMP_REPORT_TYPES = (0x12, 0x16, 0x17, 0x22)  # v1 report, v2 report, v2 leave, v3 report

# struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}; jumps are relative to the next insn
IGMP_REPORT_DROP: tuple[tuple[int, int, int, int], ...] = (
    (_LDH_ABS, 0, 0, 12),                  # 0: A = ethertype
    (_JEQ_K, 0, 10, ETH_P_IP),             # 1: not IPv4 -> 12 pass
    (_LDB_ABS, 0, 0, 23),                  # 2: A = IP protocol
    (_JEQ_K, 0, 8, 2),                     # 3: not IGMP -> 12 pass
    (_LDH_ABS, 0, 0, 20),                  # 4: A = flags | fragment offset
    (_JSET_K, 6, 0, 0x1FFF),               # 5: not the first fragment -> 12 pass
    (_LDXB_MSH, 0, 0, 14),                 # 6: X = IHL * 4 (IP options included)
    (_LDB_IND, 0, 0, 14),                  # 7: A = IGMP type, at 14 + IHL * 4
    (_JEQ_K, 4, 0, IGMP_REPORT_TYPES[0]),  # 8: v1 report -> 13 drop
    (_JEQ_K, 3, 0, IGMP_REPORT_TYPES[1]),  # 9: v2 report -> 13 drop
    (_JEQ_K, 2, 0, IGMP_REPORT_TYPES[2]),  # 10: leave -> 13 drop
    (_JEQ_K, 1, 0, IGMP_REPORT_TYPES[3]),  # 11: v3 report -> 13 drop
    (_RET_K, 0, 0, TC_ACT_UNSPEC & 0xFFFFFFFF),  # 12: pass (queries, PIM, DVMRP, ...)
    (_RET_K, 0, 0, TC_ACT_SHOT),           # 13: drop
)  # fmt: skip


# The egress filter: drops snoopd's "kernel-only" queries (source 0.0.0.0, IP ID
# KERNEL_ONLY_IP_ID) on their way out of the ports. snoopd sends them through the
# bridge device so the kernel bridge's querier state follows snoopd's (its
# select_querier() accepts 0.0.0.0 from anyone), without a 0.0.0.0 query ever
# reaching the wire, where Linux queriers would stand down for it.
KERNEL_ONLY_IP_ID = 0x736E  # "sn"
_LD_W_ABS = 0x20
KERNEL_ONLY_QUERY_DROP: tuple[tuple[int, int, int, int], ...] = (
    (_LDH_ABS, 0, 0, 12),                  # 0: A = ethertype
    (_JEQ_K, 0, 9, ETH_P_IP),              # 1: not IPv4 -> 11 pass
    (_LDB_ABS, 0, 0, 23),                  # 2: A = IP protocol
    (_JEQ_K, 0, 7, 2),                     # 3: not IGMP -> 11 pass
    (_LDH_ABS, 0, 0, 18),                  # 4: A = IP identification
    (_JEQ_K, 0, 5, KERNEL_ONLY_IP_ID),     # 5: not our marker -> 11 pass
    (_LD_W_ABS, 0, 0, 26),                 # 6: A = IP source
    (_JEQ_K, 0, 3, 0),                     # 7: not 0.0.0.0 -> 11 pass
    (_LDXB_MSH, 0, 0, 14),                 # 8: X = IHL * 4
    (_LDB_IND, 0, 0, 14),                  # 9: A = IGMP type
    (_JEQ_K, 1, 0, 0x11),                  # 10: a query -> 12 drop
    (_RET_K, 0, 0, TC_ACT_UNSPEC & 0xFFFFFFFF),  # 11: pass
    (_RET_K, 0, 0, TC_ACT_SHOT),           # 12: drop
)  # fmt: skip
TC_H_CLSACT_EGRESS = TC_H_CLSACT_INGRESS + 1


def encode_program(program: tuple[tuple[int, int, int, int], ...] = IGMP_REPORT_DROP) -> bytes:
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


class tcmsg_cls_bpf(nlmsg):
    """RTM_NEWTFILTER / RTM_DELTFILTER for a cls_bpf filter with classic BPF::

        struct tcmsg {
            unsigned char tcm_family; unsigned char tcm__pad1; unsigned short tcm__pad2;
            int tcm_ifindex; __u32 tcm_handle; __u32 tcm_parent;
            __u32 tcm_info;          /* prio << 16 | htons(protocol) */
        };
        [TCA_KIND] = "bpf"
        [TCA_OPTIONS] = {
            [TCA_BPF_CLASSID] u32, [TCA_BPF_OPS_LEN] u16 (instructions),
            [TCA_BPF_OPS] struct sock_filter[OPS_LEN], [TCA_BPF_FLAGS] u32 (ACT_DIRECT)
        }
    """

    __slots__ = ()
    prefix = "TCA_"
    fields = tcmsg.fields
    nla_map = (
        ("TCA_UNSPEC", "none"),
        ("TCA_KIND", "asciiz"),
        ("TCA_OPTIONS", "cls_bpf_options"),
    )

    class cls_bpf_options(nla):
        __slots__ = ()
        prefix = "TCA_BPF_"
        nla_map = (
            ("TCA_BPF_UNSPEC", "none"),
            ("TCA_BPF_ACT", "hex"),
            ("TCA_BPF_POLICE", "hex"),
            ("TCA_BPF_CLASSID", "uint32"),
            ("TCA_BPF_OPS_LEN", "uint16"),
            ("TCA_BPF_OPS", "cdata"),
            ("TCA_BPF_FD", "uint32"),
            ("TCA_BPF_NAME", "asciiz"),
            ("TCA_BPF_FLAGS", "uint32"),
            ("TCA_BPF_FLAGS_GEN", "uint32"),
            ("TCA_BPF_TAG", "hex"),
            ("TCA_BPF_ID", "uint32"),
        )


def _filter_msg(ifindex: int, program: bytes | None, parent: int = TC_H_CLSACT_INGRESS) -> tcmsg_cls_bpf:
    msg = tcmsg_cls_bpf()
    msg["family"] = socket.AF_UNSPEC
    msg["index"] = ifindex
    msg["handle"] = FILTER_HANDLE
    msg["parent"] = parent
    msg["info"] = (FILTER_PRIO << 16) | socket.htons(ETH_P_IP)
    attrs: list[list[Any]] = [["TCA_KIND", "bpf"]]
    if program is not None:
        options = [
            ["TCA_BPF_OPS_LEN", len(program) // 8],
            ["TCA_BPF_OPS", program],
            ["TCA_BPF_FLAGS", TCA_BPF_FLAG_ACT_DIRECT],
        ]
        attrs.append(["TCA_OPTIONS", {"attrs": options}])
    msg["attrs"] = attrs
    return msg


class IngressFilter:
    """The report-dropping ingress filter on ports (in network namespace ``netns``)."""

    def __init__(self, *, netns: str | None = None) -> None:
        self.ipr = IPRoute(netns=netns, flags=0) if netns else IPRoute()
        self.ipr.status["nlm_generator"] = True
        self._created_clsact: set[int] = set()
        self._program = encode_program()
        self._egress_program = encode_program(KERNEL_ONLY_QUERY_DROP)

    def close(self) -> None:
        self.ipr.close()

    def __enter__(self) -> IngressFilter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, msg: tcmsg_cls_bpf, msg_type: int, flags: int) -> None:
        for _ in self.ipr.nlm_request(msg, msg_type, flags):
            pass

    def install(self, ifindex: int) -> None:
        """Add (or replace) the filter on port ``ifindex``, with a clsact qdisc if needed."""
        try:
            self.ipr.tc("add", "clsact", ifindex)
            self._created_clsact.add(ifindex)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise
        flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
        self._request(_filter_msg(ifindex, self._program), RTM_NEWTFILTER, flags)
        self._request(_filter_msg(ifindex, self._egress_program, TC_H_CLSACT_EGRESS), RTM_NEWTFILTER, flags)
        log.info("ingress.installed ifindex=%d", ifindex)

    def _ours(self, ifindex: int) -> list[Any]:
        """Our filters on the port, ingress and egress."""
        ours = []
        for parent in (TC_H_CLSACT_INGRESS, TC_H_CLSACT_EGRESS):
            try:
                found = self.ipr.get_filters(index=ifindex, parent=parent)
            except NetlinkError as e:
                if e.code in (errno.EINVAL, errno.ENOENT, errno.ENODEV):  # no clsact / no link
                    return []
                raise
            ours += [
                f for f in found
                if f.get_attr("TCA_KIND") == "bpf" and f["handle"] == FILTER_HANDLE
                and f["info"] >> 16 == FILTER_PRIO
            ]  # fmt: skip
        return ours

    def installed(self, ifindex: int) -> bool:
        return bool(self._ours(ifindex))

    def remove(self, ifindex: int) -> bool:
        """Remove our filter from port ``ifindex`` (and the clsact qdisc if we added it
        and it is now empty). False if there was nothing to remove (or no such port)."""
        removed = False
        for f in self._ours(ifindex):
            msg = _filter_msg(ifindex, None, f["parent"])
            msg["info"] = f["info"]
            try:
                self._request(msg, RTM_DELTFILTER, NLM_F_REQUEST | NLM_F_ACK)
                removed = True
            except NetlinkError as e:
                if e.code not in (errno.ENOENT, errno.ENODEV):
                    raise
        if ifindex in self._created_clsact:
            self._created_clsact.discard(ifindex)
            self._remove_empty_clsact(ifindex)
        if removed:
            log.info("ingress.removed ifindex=%d", ifindex)
        return removed

    def _remove_empty_clsact(self, ifindex: int) -> None:
        try:
            for parent in (TC_H_CLSACT_INGRESS, TC_H_CLSACT_INGRESS + 1):  # ingress, egress
                if tuple(self.ipr.get_filters(index=ifindex, parent=parent)):
                    return
            self.ipr.tc("del", "clsact", ifindex)
        except NetlinkError as e:
            if e.code not in (errno.EINVAL, errno.ENOENT, errno.ENODEV):
                raise

    def remove_stale(self) -> list[int]:
        """Remove our filter from every link of the namespace (after a crash); returns
        the ifindexes it was found on."""
        cleaned = []
        for link in self.ipr.get_links():
            if self.remove(link["index"]):
                cleaned.append(link["index"])
        return cleaned
