"""Kernel mode: carry out the core's actions on a Linux bridge.

The core decides; this module only applies: MDB entries over netlink, router
ports through IFLA_BRPORT_MULTICAST_ROUTER, report/leave forwarding to router
ports (the ingress filter keeps them from the bridge), and our queries sent out
of the bridge device. Everything it changes on the bridge is recorded and put
back by ``stop()``.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from snoopd.adapters.bridge import BridgeControl, BridgeError, MulticastRouter
from snoopd.adapters.ingress import KERNEL_ONLY_IP_ID, IngressFilter
from snoopd.adapters.mdb import MdbError, MdbOp, NetlinkMdb
from snoopd.adapters.threaded import InThread
from snoopd.core.actions import (
    Action,
    FilterMode,
    ForwardControl,
    InstallGroup,
    Notice,
    RemoveGroup,
    SendQuery,
    SetRouterPort,
)
from snoopd.outbound import Outbound, log_notices
from snoopd.wire.codes import inet_checksum

log = logging.getLogger(__name__)

KERNEL_ENFORCE_MARGIN = 0.2  # seconds added to the Max Resp Time of the kernel-only copy


def bridge_settings_for(max_groups: int, take_over_querier: bool,
                        other_querier_present_interval: float | None = None,
                        query_response_interval: float = 10.0) -> dict[str, float]:
    """Bridge options kernel mode needs (see the architecture guide's facts)."""
    wanted: dict[str, float] = {
        "mcast_snooping": 1,
        "mcast_igmp_version": 3,  # or the kernel ignores (S,G) entries
        # The kernel turns snooping off for the whole bridge when its table reaches
        # mcast_hash_max; snoopd keeps its own, lower limit (max_groups counts groups,
        # and each group can add (S,G) entries), so the kernel's is never reached.
        "mcast_hash_max": max(8 * max_groups, 4096),
    }
    if take_over_querier:
        wanted["mcast_querier"] = 0  # snoopd is the fallback querier now
    if other_querier_present_interval is not None:
        # The kernel forgets a querier mcast_querier_interval after its last query, and
        # floods until it sees the next one plus that query's Max Resp Time. Keep it
        # remembering a little longer than snoopd does, so that when snoopd takes over
        # (after its own other-querier-present interval) the kernel's view never lapses.
        wanted["mcast_querier_interval"] = other_querier_present_interval + max(query_response_interval, 1.0)
    return wanted


def kernel_only(frame: bytes) -> bytes:
    """The query ``frame`` from 0.0.0.0 with the IP ID our egress filter drops."""
    ip = bytearray(frame[14:])
    ihl = (ip[0] & 0x0F) * 4
    ip[4:6] = KERNEL_ONLY_IP_ID.to_bytes(2, "big")
    ip[12:16] = b"\0\0\0\0"
    ip[10:12] = b"\0\0"
    ip[10:12] = inet_checksum(bytes(ip[:ihl])).to_bytes(2, "big")
    return frame[:14] + bytes(ip)


class KernelPlane:
    """The kernel bridge as snoopd's data plane."""

    # Every second: while the kernel has snooping off (its hash limit) the bridge floods
    # all multicast, so the check bounds that to a second; it is one RTM_GETLINK (0.03 ms
    # warm). It also keeps the daemon from idling for long, which matters on the VM we
    # measure on: there the memory of a process idle for seconds goes cold (a C loop
    # touching 16 MB: 4.7 us per page after 8 s asleep, 0.03 us after 1 ms), and the
    # daemon's first join 3 s after start took 1.4-2.3 ms with a 5 s check, 0.6-0.8 ms
    # with this one. Its cost there: 0.1-0.45% of one CPU while idle (0.08% before).
    health_interval = 1.0

    def __init__(self, bridge: str, *, max_groups: int, take_over_querier: bool,
                 counters: Counter[str], other_querier_present_interval: float | None = None,
                 query_response_interval: float = 10.0) -> None:
        self.bridge = bridge
        self.counters = counters
        self._max_groups = max_groups
        self._take_over_querier = take_over_querier
        self._oqpi = other_querier_present_interval
        self._qri = query_response_interval
        # pyroute2's IPRoute must live off the daemon's event-loop thread (see threaded.py).
        self.control: Any = InThread(BridgeControl, bridge)  # raises BridgeGone / NotABridge
        self.mdb = NetlinkMdb(bridge)
        self.ingress: Any = InThread(IngressFilter)
        self.ifindex = self.control.ifindex
        self.out = Outbound(bridge, self.ifindex, counters)
        self.ports: dict[str, int] = {}  # name -> ifindex
        self._saved_bridge: dict[str, float] = {}
        self._saved_ports: dict[str, dict[str, int]] = {}
        self._pending: list[MdbOp] = []
        self._installed: set[tuple[int, str]] = set()  # (port ifindex, group) of our (*,G) entries
        # (port ifindex, group) -> installed (True) or removed (False) by apply_now, unconfirmed
        self._early: dict[tuple[int, str], bool] = {}

    # ----------------------------------------------------------- start / stop

    def start(self) -> None:
        """Take the bridge over: options, no stale entries or filters of ours."""
        stale = self.mdb.own_entries()
        if stale:
            log.info("mdb.stale_removed bridge=%s entries=%d", self.bridge, len(stale))
            self.mdb.flush_own()
        cleaned = self.ingress.remove_stale()
        if cleaned:
            log.info("ingress.stale_removed bridge=%s ports=%d", self.bridge, len(cleaned))
        self._saved_bridge = self.control.ensure(
            bridge_settings_for(self._max_groups, self._take_over_querier, self._oqpi, self._qri))

    def stop(self, bridge_gone: bool = False) -> None:
        """Put the bridge back as it was. Each step runs even if an earlier one failed.
        With the bridge gone there is nothing to put back: only sockets are closed."""
        if bridge_gone:
            self._close()
            return
        steps: list[tuple[str, Callable[[], object]]] = [("mdb", self._remove_installed)]
        steps += [(f"ingress {name}", partial(self.ingress.remove, i)) for name, i in self.ports.items()]
        steps += [(f"port {name}", partial(self._restore_port, name)) for name in list(self._saved_ports)]
        steps.append(("bridge options", lambda: self.control.restore(self._saved_bridge)))
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # keep going: leave as little behind as possible
                log.error("stop.failed step=%r error=%s", what, exc)
        self._close()

    def _remove_installed(self) -> None:
        """Delete the (*,G) entries we installed (their (S,G)s go with them): no dump of
        the whole MDB on the way out. A crash leaves them to the next start's flush."""
        ops = [MdbOp.remove(ifindex, group) for ifindex, group in self._installed]
        errors = self.mdb.apply(ops)
        log.info("mdb.flushed bridge=%s entries=%d errors=%d", self.bridge, len(ops), len(errors))
        self._installed.clear()

    def _close(self) -> None:
        for closer in (self.mdb.close, self.ingress.close, self.out.close, self.control.close):
            with contextlib.suppress(Exception):
                closer()

    # ------------------------------------------------------------------ ports

    def add_port(self, name: str, ifindex: int) -> None:
        """A port joined the bridge: filter its reports, and take its router flag."""
        self.ports[name] = ifindex
        self.mdb.prepare_port(ifindex)
        try:
            self.ingress.install(ifindex)
            # snoopd decides router ports; the kernel must not learn them itself.
            saved = self.control.set_port(ifindex, multicast_router=MulticastRouter.DISABLED)
            self._saved_ports.setdefault(name, saved)
        except (BridgeError, OSError) as exc:
            self.counters["port.setup_failed"] += 1
            log.error("port.setup_failed port=%s error=%s", name, exc)

    def remove_port(self, name: str, still_exists: bool) -> None:
        ifindex = self.ports.pop(name, None)
        if ifindex is None:
            return
        self.mdb.forget_port(ifindex)
        if still_exists:  # it left the bridge but lives on: take our filter away
            try:
                self.ingress.remove(ifindex)
            except Exception as exc:
                log.warning("ingress.remove_failed port=%s error=%s", name, exc)
        self._saved_ports.pop(name, None)

    def _restore_port(self, name: str) -> None:
        saved = self._saved_ports.pop(name, None)
        if saved:
            self.control.restore_port(name, saved)

    def health_check(self) -> None:
        """Periodic: the kernel may have turned snooping off (its hash limit reached, or an
        administrator): say so loudly and turn it back on."""
        if not self.mdb.snooping_enabled():
            self.counters["kernel.snooping_off"] += 1
            log.critical("kernel.snooping_off bridge=%s: snooping was turned off on the bridge; turning it back on",
                         self.bridge)
            self.ensure_snooping()

    def ensure_snooping(self) -> None:
        """The kernel turned snooping off (its hash limit, or an admin): turn it on."""
        self.control.ensure({"mcast_snooping": 1})

    # ---------------------------------------------------------------- actions

    def apply_now(self, port: str, joins: list[str], leaves: list[str]) -> None:
        """Carry out what the core has admitted (``Snooper.admit``) before it processes
        the report: new any-source joins installed, fast leaves removed, so the host's
        traffic starts or stops a few hundred microseconds sooner. The action that
        confirms each one in the next ``apply`` is not carried out again."""
        ifindex = self.ports.get(port)
        if ifindex is None:
            return
        if joins:
            errors = self.mdb.install_any_source(ifindex, joins)
            failed = {error.op.group for error in errors}
            for group in joins:
                if group not in failed:
                    self._early[(ifindex, group)] = True
                    self._installed.add((ifindex, group))
            self._count_early("install", len(joins), errors)
        if leaves:
            errors = self.mdb.apply([MdbOp.remove(ifindex, group) for group in leaves])
            failed = {error.op.group for error in errors}
            for group in leaves:
                if group not in failed:
                    self._early[(ifindex, group)] = False
                    self._installed.discard((ifindex, group))
            self._count_early("remove", len(leaves), errors)

    def _count_early(self, what: str, count: int, errors: list[MdbError]) -> None:
        self.counters[f"mdb.early_{what}s"] += count - len(errors)
        if errors:  # the confirming action carries it out the ordinary way
            self.counters["mdb.failures"] += len(errors)
            log.error("mdb.failed %s", errors[0])

    def apply(self, actions: Iterable[Action]) -> None:
        """Carry out actions in order; MDB changes are batched into one send. Log lines
        come after the writes (they cost more than the netlink round trip), and so do
        the reports and leaves forwarded to router ports: a join is in the kernel first."""
        notices: list[Notice] = []
        forwards: list[ForwardControl] = []
        early = self._early
        for action in actions:
            kind = type(action)
            if kind is InstallGroup:
                assert isinstance(action, InstallGroup)
                ifindex = self.ports.get(action.port)
                if ifindex is not None:
                    pair = (ifindex, action.group)
                    if early and early.pop(pair, False) and action.mode is FilterMode.EXCLUDE \
                            and not action.sources:
                        continue  # apply_now installed exactly this
                    self._pending.append(MdbOp.install(ifindex, action.group, action.mode, action.sources))
                    self._installed.add(pair)
            elif kind is RemoveGroup:
                assert isinstance(action, RemoveGroup)
                ifindex = self.ports.get(action.port)
                if ifindex is not None:
                    if early and early.pop((ifindex, action.group), True) is False:
                        continue  # apply_now removed it
                    self._pending.append(MdbOp.remove(ifindex, action.group))
                    self._installed.discard((ifindex, action.group))
            elif kind is ForwardControl:
                assert isinstance(action, ForwardControl)
                forwards.append(action)
            elif kind is SendQuery:
                assert isinstance(action, SendQuery)
                self._flush()  # entries first, then the query that may enforce them
                self._send_query(action)
            elif kind is SetRouterPort:
                assert isinstance(action, SetRouterPort)
                self._flush()
                self._set_router(action)
            elif kind is Notice:
                assert isinstance(action, Notice)
                notices.append(action)
        if early:  # done early but never confirmed (the core failed on the report): undo
            self.counters["mdb.early_unconfirmed"] += len(early)
            log.error("mdb.early_unconfirmed entries=%d", len(early))
            for (ifindex, group), installed in early.items():
                if installed:
                    self._pending.append(MdbOp.remove(ifindex, group))
                    self._installed.discard((ifindex, group))
                else:  # admit() only removes plain any-source joins
                    self._pending.append(MdbOp.install(ifindex, group, FilterMode.EXCLUDE))
                    self._installed.add((ifindex, group))
            early.clear()
        self._flush()
        for forward in forwards:
            self.out.forward_control(forward, self.ports)
        log_notices(notices)

    def _flush(self) -> None:
        if not self._pending:
            return
        ops, self._pending = self._pending, []
        errors = self.mdb.apply(ops)
        self.counters["mdb.ops"] += len(ops)
        if errors:
            self.counters["mdb.failures"] += len(errors)
            for error in errors[:5]:
                log.error("mdb.failed %s", error)
            self.health_check()

    def _send_query(self, q: SendQuery) -> None:
        if q.group == "0.0.0.0":
            # First a copy for the kernel bridge alone: from 0.0.0.0, which the bridge's
            # querier election always accepts, so its view of "a querier exists" follows
            # snoopd's without a gap (a takeover from a lower-addressed router included);
            # our egress filter drops it at every port, so it never reaches the wire.
            # The kernel starts enforcing one Max Resp Time after the first query it
            # sees: a little later than the hosts' deadline, so that a host answering
            # at the very end of it is in the MDB before then.
            later = q._replace(max_response_time=q.max_response_time + KERNEL_ENFORCE_MARGIN)
            self.out.send_to_bridge(kernel_only(self.out.query_frame(later)), "tx.query_kernel_only")
        self.out.send_to_bridge(self.out.query_frame(q))

    def _set_router(self, action: SetRouterPort) -> None:
        ifindex = self.ports.get(action.port)
        if ifindex is None:
            return
        wanted = MulticastRouter.PERMANENT if action.is_router else MulticastRouter.DISABLED
        try:
            self.control.set_port(ifindex, multicast_router=wanted)
        except (BridgeError, OSError) as exc:
            self.counters["port.router_failed"] += 1
            log.error("router_port.failed port=%s error=%s", action.port, exc)
