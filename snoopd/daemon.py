"""The daemon: one asyncio loop that wires capture, codec, core and data plane.

After every call into the core it carries out ``take_actions()`` and re-arms the
one timer at ``core.next_deadline()``. The core's clock is ``loop.time()``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol

from snoopd import __version__
from snoopd.adapters.capture import PacketCapture
from snoopd.adapters.links import LinkWatcher
from snoopd.config import Config, ConfigError, load_config
from snoopd.core.actions import Action
from snoopd.core.messages import Leave, Malformed, Message, Query, Report
from snoopd.core.snooper import Snooper
from snoopd.wire import decode
from snoopd.wire.peek import example_join, peek_membership

log = logging.getLogger(__name__)
REHEARSALS = 20  # runs of the join short cut's pure steps at start (see _rehearse_join)


class DataPlane(Protocol):
    ports: dict[str, int]
    health_interval: float  # seconds between health_check calls

    def start(self) -> None: ...
    def stop(self, bridge_gone: bool = False) -> None: ...
    def health_check(self) -> None: ...
    def add_port(self, name: str, ifindex: int) -> None: ...
    def remove_port(self, name: str, still_exists: bool) -> None: ...
    def apply(self, actions: list[Action]) -> None: ...
    def apply_now(self, port: str, joins: list[str], leaves: list[str]) -> None: ...


class StartupError(Exception):
    """A clear, expected reason not to start (exit code 1)."""


def make_plane(config: Config, counters: Counter[str]) -> DataPlane:
    from snoopd.core.settings import QuerierMode

    take_over = config.core.querier_mode is not QuerierMode.OFF
    if config.mode.value == "software":
        from snoopd.software_plane import SoftwarePlane

        return SoftwarePlane(config.bridge or "", max_groups=config.max_groups, counters=counters,
                             take_over_querier=take_over)
    from snoopd.kernel_plane import KernelPlane

    timers = config.core.timers
    return KernelPlane(config.bridge or "", max_groups=config.max_groups, take_over_querier=take_over,
                       counters=counters, other_querier_present_interval=timers.other_querier_present_interval,
                       query_response_interval=timers.query_response_interval)


class Daemon:
    def __init__(self, config: Config, config_path: str | None = None,
                 overrides: Mapping[str, object] | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.overrides = dict(overrides or {})
        self.bridge = config.bridge or ""
        self.counters: Counter[str] = Counter()
        self.exit_code = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._stopping: asyncio.Event | None = None
        self.snooper: Snooper | None = None
        self.plane: DataPlane | None = None
        self.capture: PacketCapture | None = None
        self.links: LinkWatcher | None = None
        self.control: Any = None
        self._metrics: Any = None
        self._bridge_gone = False
        self._ports_ready = False  # set once start-up has captured and filtered every port
        self._early_ok = False  # the next report may take the early-install path
        self._health: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------- lifecycle

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    async def run(self) -> int:
        loop = self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            self._start(loop)
        except StartupError as exc:
            log.error("%s", exc)
            self._shutdown()
            return 1
        except Exception:
            self._shutdown()
            raise
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        self._rehearse_join()
        gc.freeze()  # start-up objects need no more collection passes (faster bursts)
        log.info("ready bridge=%s mode=%s version=%s", self.bridge, self.config.mode.value, __version__)
        notify_systemd("READY=1")
        await self._stopping.wait()
        log.info("stopping bridge=%s", self.bridge)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        self._shutdown()
        log.info("stopped bridge=%s", self.bridge)
        return self.exit_code

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        from snoopd.adapters.bridge import BridgeError
        from snoopd.control import ControlServer

        if os.geteuid() != 0:
            raise StartupError("snoopd needs root (CAP_NET_ADMIN and CAP_NET_RAW) to run")
        self.control = ControlServer(self.config.socket_path, self)
        self.control.claim()  # refuses if another daemon serves this socket
        try:
            self.plane = make_plane(self.config, self.counters)
            self.plane.start()
        except BridgeError as exc:
            raise StartupError(f"bridge {self.bridge}: {exc}") from exc
        # The querier's source: the bridge's address now (the link watcher follows changes).
        self.snooper = Snooper(self.config.core, self.now(), our_address=interface_ipv4(self.bridge))
        # Actions are carried out once per drained burst: the MDB writes of a burst of
        # reports go out in one netlink send, and a single join is written at once.
        self.capture = PacketCapture(self._on_frame, on_drained=self._after_core)
        self.links = LinkWatcher(self.bridge, self._on_port, self._on_address, self._on_bridge_gone)
        try:
            self.links.start(loop)
        except LookupError as exc:
            raise StartupError(f"bridge {self.bridge}: {exc}") from exc
        # Only now, with every port captured and filtered, do the core's first actions
        # run (its start-up query among them: no answer may reach an unwatched port).
        self._ports_ready = True
        self._after_core()
        self.control.start(loop)
        self._health = loop.call_later(self.plane.health_interval, self._health_check)
        if self.config.metrics_address is not None:
            from snoopd.metrics import start_metrics

            try:
                self._metrics = start_metrics(self.config.metrics_address, self.stats, self.bridge)
            except OSError as exc:
                raise StartupError(f"metrics_listen {self.config.metrics_listen}: {exc}") from exc

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def _shutdown(self) -> None:
        # The data plane first: the bridge is put back as fast as possible (nothing runs
        # on the loop meanwhile, so no frame or port event can interleave).
        for closer in (self._close_timer, self._close_plane, self._close_links, self._close_capture,
                       self._close_control):
            try:
                closer()
            except Exception:
                log.exception("shutdown step %s failed", closer.__name__)

    def _close_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._health is not None:
            self._health.cancel()

    def _close_links(self) -> None:
        if self.links is not None:
            self.links.close()

    def _close_capture(self) -> None:
        if self.capture is not None:
            self.capture.close()

    def _close_plane(self) -> None:
        if self.plane is not None:
            self.plane.stop(bridge_gone=self._bridge_gone)
            self.plane = None

    def _close_control(self) -> None:
        if self.control is not None:
            self.control.close()
        if self._metrics is not None:
            self._metrics.shutdown()

    def reload(self) -> None:
        """SIGHUP: apply a changed config without losing learned state."""
        if self.config_path is None:
            log.warning("reload.skipped reason=no config file")
            return
        try:
            new = load_config(self.config_path, self.overrides)
        except ConfigError as exc:
            self.counters["config.reload_failed"] += 1
            log.error("reload.failed %s (keeping the running config)", str(exc).replace("\n", "; "))
            return
        for warning in new.warnings:
            log.warning("config.warning %s", warning)
        changed = self.config.diff(new)
        if new.bridge != self.config.bridge or new.mode != self.config.mode:
            log.error("reload.failed bridge and mode need a restart (keeping the running config)")
            return
        self.config = new
        assert self.snooper is not None
        self.snooper.reconfigure(new.core, self.now())
        self._after_core()
        log.info("reloaded changed=%s", ",".join(changed) or "-")

    # ---------------------------------------------------------------- events

    def _on_frame(self, port: str, frame: bytes, vlan: int | None) -> None:
        """One captured frame: the boundary that keeps one bad frame from the rest."""
        try:
            snooper = self.snooper
            assert snooper is not None and self.plane is not None
            now = self.now()
            early = self._early_ok and not snooper.actions_pending
            if early and (peeked := peek_membership(frame)) is not None:
                # A wake-up's first joins or leaves, in the forms nearly all take: the data
                # plane hears of them before the frame is even decoded.
                early = self._early_ok = False
                joins, leaves = snooper.admit_memberships(*peeked, port, now)
                if joins or leaves:
                    self._apply_now(port, joins, leaves)
            message = decode(frame, require_router_alert=self.config.require_router_alert)
            if type(message) is Malformed:
                self.counters[f"malformed.{message.reason.value}"] += 1
                log.debug("malformed port=%s reason=%s %s", port, message.reason.value, message.detail)
                return
            assert not isinstance(message, Malformed)
            if early and (type(message) is Report or type(message) is Leave):
                # Any other first report or leave: its plain joins and fast leaves go to the
                # data plane before the core's full processing (half the Python of it).
                self._early_ok = False
                joins, leaves = snooper.admit(message, port, now)
                if joins or leaves:
                    self._apply_now(port, joins, leaves)
            self._count_ip_anomalies(message)
            snooper.receive(message, port, now, frame)
        except Exception:
            self.counters["errors.frame"] += 1
            log.exception("frame.error port=%s frame=%s", port, frame[:64].hex())

    def _rehearse_join(self) -> None:
        """Take a made-up join through the short cut's pure steps (``peek_membership``,
        ``Snooper.admit_memberships``) and ``decode`` a few times, with no effect: CPython
        specializes a function's bytecode only after its first runs, and the daemon's first
        join was its slowest (here, the first join 3 s after start: median 0.97 ms in 14
        runs without this, 0.64 ms in 10 with it; later joins ~0.4 ms)."""
        snooper, plane = self.snooper, self.plane
        if snooper is None or plane is None or not plane.ports:
            return
        port = next(iter(plane.ports))
        frame = example_join("192.0.2.1", "239.255.0.1")
        for _ in range(REHEARSALS):
            peeked = peek_membership(frame)
            if peeked is not None:
                snooper.admit_memberships(*peeked, port, self.now())
            decode(frame)

    def _apply_now(self, port: str, joins: list[str], leaves: list[str]) -> None:
        assert self.plane is not None
        try:
            self.plane.apply_now(port, joins, leaves)
        except Exception:  # the core's own actions will try again
            self.counters["errors.dataplane"] += 1
            log.exception("dataplane.error")

    def _count_ip_anomalies(self, message: Message) -> None:
        if type(message) is Report or type(message) is Query:
            if message.ttl != 1:
                self.counters["rx.ttl_not_1"] += 1
            if not message.router_alert:
                self.counters["rx.no_router_alert"] += 1

    def _on_port(self, name: str, ifindex: int, up: bool, present: bool) -> None:
        assert self.plane is not None and self.capture is not None and self.snooper is not None
        assert self._loop is not None
        try:
            if present:
                if name not in self.plane.ports:
                    self.plane.add_port(name, ifindex)
                    self.capture.add_port(name, ifindex, self._loop)
                self.snooper.port_changed(name, self.now(), up=up)
            else:
                self.snooper.port_changed(name, self.now(), up=False, present=False)
                self._after_core()  # remove its entries while the plane still knows it
                self.capture.remove_port(name)
                self.plane.remove_port(name, still_exists=_link_exists(ifindex))
            self._after_core()
        except Exception:
            self.counters["errors.port_event"] += 1
            log.exception("port.error port=%s", name)

    def _on_address(self, addresses: list[str]) -> None:
        assert self.snooper is not None
        address = addresses[0] if addresses else None
        if address is None and self.config.core.querier_address is None:
            log.warning("querier.no_address bridge=%s: queries go out from 0.0.0.0, which some hosts ignore",
                        self.bridge)
        self.snooper.address_changed(address, self.now())
        self._after_core()

    def _on_bridge_gone(self) -> None:
        log.error("bridge.gone bridge=%s: the bridge was deleted; stopping", self.bridge)
        self._bridge_gone = True
        self.exit_code = 1
        self.stop()

    def _health_check(self) -> None:
        """Every plane.health_interval: is the bridge still snooping? (See KernelPlane.health_check.)"""
        assert self._loop is not None
        if self.plane is None or self._bridge_gone:
            return
        self._health = self._loop.call_later(self.plane.health_interval, self._health_check)
        try:
            self.plane.health_check()
        except Exception as exc:
            self.counters["errors.health_check"] += 1
            log.error("health_check.failed error=%s", exc)

    # ------------------------------------------------------------- core glue

    def _after_core(self) -> None:
        snooper, plane = self.snooper, self.plane
        if snooper is None or plane is None or not self._ports_ready:
            return
        actions = snooper.take_actions()
        if actions:
            try:
                plane.apply(actions)
            except Exception:
                self.counters["errors.dataplane"] += 1
                log.exception("dataplane.error")
        self._arm(snooper.next_deadline())
        self._early_ok = True

    def _arm(self, deadline: float | None) -> None:
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            assert self._loop is not None
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        assert self.snooper is not None
        try:
            self.snooper.handle_timers(self.now())
        except Exception:
            self.counters["errors.timer"] += 1
            log.exception("timer.error")
        self._after_core()

    # --------------------------------------------------------------- queries

    def ifindexes(self) -> dict[str, int]:
        return dict(self.plane.ports) if self.plane is not None else {}

    def stats(self) -> dict[str, Any]:
        assert self.snooper is not None
        counters: Counter[str] = Counter(self.snooper.counters)
        counters.update(self.counters)
        capture: dict[str, Any] = {}
        if self.capture is not None:
            counters["capture.packets"] = self.capture.total_packets
            counters["capture.drops"] = self.capture.total_drops
            capture = {name: {"packets": p, "drops": d} for name, (p, d) in self.capture.stats().items()}
        return {"counters": dict(sorted(counters.items())), "capture": capture,
                "gauges": {"groups": self.snooper.group_count, "memberships": self.snooper.membership_count}}


def interface_ipv4(name: str) -> str | None:
    """The interface's primary IPv4 address (SIOCGIFADDR), None if it has none."""
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            ifreq = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("16s16x", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(ifreq[20:24])


def _link_exists(ifindex: int) -> bool:
    try:
        socket.if_indextoname(ifindex)
        return True
    except OSError:
        return False


def notify_systemd(state: str) -> None:
    """sd_notify without a dependency: one datagram to $NOTIFY_SOCKET."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(path)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("systemd.notify_failed error=%s", exc)
