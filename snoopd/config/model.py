"""The loaded configuration: :class:`Config`, and :class:`ConfigError` for a bad one."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from snoopd.config.schema import dotted, split_listen
from snoopd.core.settings import CoreSettings, PortSettings


class Mode(Enum):
    KERNEL = "kernel"  # program the bridge MDB; the kernel forwards
    SOFTWARE = "software"  # snoopd replicates frames itself


class ConfigError(Exception):
    """A bad config file or bad flags. ``errors`` holds one message per problem, each
    naming the file (or "command line") and the key; ``str()`` joins them, one a line."""

    def __init__(self, errors: str | list[str]) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


def default_socket_path(bridge: str) -> str:
    """The control socket of the daemon for ``bridge`` (interface.md)."""
    return f"/run/snoopd/{bridge}.sock"


@dataclass(frozen=True, slots=True)
class Config:
    """Everything ``snoopd run`` is configured with, except the CLI-only log flags.

    ``core`` carries the settings the pure core needs; the rest is for the daemon.
    ``source`` and ``warnings`` do not take part in comparisons.
    """

    bridge: str | None = None
    mode: Mode = Mode.KERNEL
    max_groups: int = 16384
    socket: str | None = None  # None: /run/snoopd/<bridge>.sock
    metrics_listen: str | None = None  # "HOST:PORT"; None: no metrics endpoint
    require_router_alert: bool = False  # [igmp] require_router_alert, for the decoder
    core: CoreSettings = field(default_factory=CoreSettings)
    source: str | None = field(default=None, compare=False)  # the file it came from
    warnings: tuple[str, ...] = field(default=(), compare=False)  # for the caller to log

    @property
    def socket_path(self) -> str:
        """The control socket: ``socket`` if set, else the bridge's default path."""
        if self.socket is not None:
            return self.socket
        if self.bridge is None:
            raise ConfigError("no bridge: give --bridge or set bridge in the config")
        return default_socket_path(self.bridge)

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """``metrics_listen`` as (host, port), or None when metrics are off."""
        return None if self.metrics_listen is None else split_listen(self.metrics_listen)

    def effective(self) -> dict[str, object]:
        """Every setting in force, by dotted key, derived defaults filled in.

        Values are as they would be written in the file (enums as their strings).
        Port sections appear for the ports configured explicitly.
        """
        core, timers = self.core, self.core.timers
        out: dict[str, object] = {
            "bridge": self.bridge,
            "mode": self.mode.value,
            "max_groups": self.max_groups,
            "socket": self.socket if self.bridge is None else self.socket_path,
            "metrics_listen": self.metrics_listen,
            "igmp.version": core.igmp_version,
        }
        for name in ("robustness", "query_interval", "query_response_interval", "last_member_query_interval",
                     "last_member_query_count", "startup_query_interval", "startup_query_count",
                     "membership_interval", "other_querier_present_interval"):
            out[f"igmp.{name}"] = getattr(timers, name)
        out["igmp.require_router_alert"] = self.require_router_alert
        out["querier.mode"] = core.querier_mode.value
        out["querier.address"] = core.querier_address or "auto"
        out["querier.startup_wait"] = core.querier_startup_wait
        out["querier.yield_to_routers"] = core.yield_to_routers
        for name, port in [("default", core.default_port), *sorted(core.ports.items())]:
            out.update(_port_items(name, port))
        out["static"] = tuple(sorted(core.static, key=lambda s: (s.group, s.port, s.source or "")))
        return out

    def diff(self, other: Config) -> list[str]:
        """The dotted keys whose effective value differs between ``self`` and ``other``
        (for the reload log line). Static memberships count as one key, ``static``."""
        mine, theirs = self.effective(), other.effective()
        keys = list(mine) + [k for k in theirs if k not in mine]
        return [k for k in keys if mine.get(k, _ABSENT) != theirs.get(k, _ABSENT)]


_ABSENT = object()


def _port_items(name: str, port: PortSettings) -> dict[str, object]:
    return {
        dotted("ports", name, "fast_leave"): port.fast_leave,
        dotted("ports", name, "router"): port.router.value,
    }
