"""The core's typed settings (pure). ``snoopd.config`` builds them from TOML.

Names follow RFC 3376 §8; all times are float seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class QuerierMode(Enum):
    AUTO = "auto"  # fallback querier: election, and silent while a router is present
    OFF = "off"  # never query
    ALWAYS = "always"  # query even with a router present (election still applies)


class RouterMode(Enum):
    AUTO = "auto"  # learned from queries, PIM hellos, DVMRP probes, MRD adverts
    ON = "on"  # always a multicast-router port
    OFF = "off"  # never a multicast-router port


@dataclass(frozen=True, slots=True)
class Timers:
    """RFC 3376 §8 variables. Derived values are filled in by :meth:`derive`."""

    robustness: int = 2
    query_interval: float = 125.0
    query_response_interval: float = 10.0
    last_member_query_interval: float = 1.0
    last_member_query_count: int = 2
    startup_query_interval: float = 31.25
    startup_query_count: int = 2
    membership_interval: float = 260.0
    other_querier_present_interval: float = 255.0

    @classmethod
    def derive(
        cls,
        robustness: int = 2,
        query_interval: float = 125.0,
        query_response_interval: float = 10.0,
        last_member_query_interval: float = 1.0,
        last_member_query_count: int | None = None,
        startup_query_interval: float | None = None,
        startup_query_count: int | None = None,
        membership_interval: float | None = None,
        other_querier_present_interval: float | None = None,
    ) -> Timers:
        """Timers with the RFC 3376 §8 defaults derived from the given ones."""
        rv, qi, qri = robustness, query_interval, query_response_interval
        return cls(
            robustness=rv,
            query_interval=qi,
            query_response_interval=qri,
            last_member_query_interval=last_member_query_interval,
            # RFC 3376 §8.7, §8.6, §8.4, §8.5
            last_member_query_count=rv if last_member_query_count is None else last_member_query_count,
            startup_query_interval=qi / 4 if startup_query_interval is None else startup_query_interval,
            startup_query_count=rv if startup_query_count is None else startup_query_count,
            membership_interval=rv * qi + qri if membership_interval is None else membership_interval,
            other_querier_present_interval=(
                rv * qi + qri / 2 if other_querier_present_interval is None else other_querier_present_interval
            ),
        )

    @property
    def last_member_query_time(self) -> float:
        """LMQT, RFC 3376 §8.8."""
        return self.last_member_query_interval * self.last_member_query_count

    @property
    def older_host_present_interval(self) -> float:
        """RFC 3376 §8.13: RV * QI + QRI."""
        return self.robustness * self.query_interval + self.query_response_interval


@dataclass(frozen=True, slots=True)
class PortSettings:
    fast_leave: bool = False
    router: RouterMode = RouterMode.AUTO


@dataclass(frozen=True, slots=True)
class StaticMembership:
    group: str
    port: str
    source: str | None = None


@dataclass(frozen=True, slots=True)
class CoreSettings:
    timers: Timers = field(default_factory=Timers)
    igmp_version: int = 3  # highest version snoopd queries with (2 or 3)
    querier_mode: QuerierMode = QuerierMode.AUTO
    querier_address: str | None = None  # None: follow the bridge's address
    startup_wait: float | None = None  # None: query_response_interval
    yield_to_routers: bool = True
    max_groups: int = 16384
    default_port: PortSettings = field(default_factory=PortSettings)
    ports: dict[str, PortSettings] = field(default_factory=dict)
    static: tuple[StaticMembership, ...] = ()

    def port(self, name: str) -> PortSettings:
        return self.ports.get(name, self.default_port)

    @property
    def querier_startup_wait(self) -> float:
        if self.startup_wait is None:
            return self.timers.query_response_interval
        return self.startup_wait
