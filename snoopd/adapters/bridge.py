"""BridgeControl: a bridge's ports and multicast options over netlink (pyroute2).

Bridge options are IFLA_BR_* attributes of the bridge's IFLA_INFO_DATA; port
options are IFLA_BRPORT_* (set through ``ipr.brport('set', ...)``, read back from
IFLA_INFO_SLAVE_DATA). Netlink carries the bridge's intervals in clock_t
(USER_HZ = 100, so centiseconds: the 10 s default query response interval reads
1000); this module takes and returns seconds as floats. The kernel converts them
to jiffies and back, truncating: with HZ 250, 0.25 s is stored as 62 jiffies and
reads back as 0.24 s (``ensure`` treats one centisecond apart as equal).

``ensure`` returns the values it changed so ``restore`` can put them back when the
daemon stops. The querier is switched last (and back first), in a request of its
own: the kernel starts querying with the intervals it has at that moment.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NoReturn

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger(__name__)

USER_HZ = os.sysconf("SC_CLK_TCK")


class BridgeError(Exception):
    """Base class of the bridge adapters' configuration errors."""


class BridgeGone(BridgeError):
    """The bridge does not exist (or no longer: it was deleted under us)."""


class NotABridge(BridgeError):
    """The named link exists but is not a bridge."""


class NoSuchPort(BridgeError):
    """The named link does not exist or is not a port of this bridge."""


class MulticastRouter(IntEnum):
    """IFLA_BRPORT_MULTICAST_ROUTER / IFLA_BR_MCAST_ROUTER (MDB_RTR_TYPE_*)."""

    DISABLED = 0  # never a router port
    TEMP_QUERY = 1  # learnt from queries (the default)
    PERMANENT = 2  # always a router port
    TEMP = 3  # router port until the router timer runs out (ports only)


# option name -> (IFLA_BR_* attribute, True if an interval in clock_t), in the
# order they are set; mcast_querier comes last (see the module docstring).
BRIDGE_OPTIONS: dict[str, tuple[str, bool]] = {
    "mcast_hash_max": ("IFLA_BR_MCAST_HASH_MAX", False),
    "mcast_igmp_version": ("IFLA_BR_MCAST_IGMP_VERSION", False),
    "mcast_mld_version": ("IFLA_BR_MCAST_MLD_VERSION", False),
    "mcast_last_member_count": ("IFLA_BR_MCAST_LAST_MEMBER_CNT", False),
    "mcast_startup_query_count": ("IFLA_BR_MCAST_STARTUP_QUERY_CNT", False),
    "mcast_last_member_interval": ("IFLA_BR_MCAST_LAST_MEMBER_INTVL", True),
    "mcast_membership_interval": ("IFLA_BR_MCAST_MEMBERSHIP_INTVL", True),
    "mcast_querier_interval": ("IFLA_BR_MCAST_QUERIER_INTVL", True),
    "mcast_query_interval": ("IFLA_BR_MCAST_QUERY_INTVL", True),
    "mcast_query_response_interval": ("IFLA_BR_MCAST_QUERY_RESPONSE_INTVL", True),
    "mcast_startup_query_interval": ("IFLA_BR_MCAST_STARTUP_QUERY_INTVL", True),
    "mcast_query_use_ifaddr": ("IFLA_BR_MCAST_QUERY_USE_IFADDR", False),
    "mcast_router": ("IFLA_BR_MCAST_ROUTER", False),
    "mcast_snooping": ("IFLA_BR_MCAST_SNOOPING", False),
    "mcast_querier": ("IFLA_BR_MCAST_QUERIER", False),
}

PORT_OPTIONS = {
    "multicast_router": "IFLA_BRPORT_MULTICAST_ROUTER",
    "fast_leave": "IFLA_BRPORT_FAST_LEAVE",
}


@dataclass(frozen=True, slots=True)
class BridgePort:
    name: str
    ifindex: int
    oper_state: str  # "up", "down", "lowerlayerdown", ... (IFLA_OPERSTATE)
    multicast_router: MulticastRouter
    fast_leave: bool

    @property
    def is_up(self) -> bool:
        return self.oper_state == "up"


def _to_netlink(value: float, interval: bool) -> int:
    return round(value * USER_HZ) if interval else int(value)


def _from_netlink(value: int, interval: bool) -> float:
    return value / USER_HZ if interval else value


def _same(wanted: float, current: float, interval: bool) -> bool:
    """Equal as the kernel keeps it: intervals live in jiffies, so with HZ 250 (4 ms)
    0.25 s (25 cs -> 62 jiffies) reads back as 0.24 s; one clock_t apart is equal."""
    difference = abs(_to_netlink(wanted, interval) - _to_netlink(current, interval))
    return difference <= 1 if interval else difference == 0


class BridgeControl:
    """Bridge ``bridge_ifname`` (in network namespace ``netns``, if given)."""

    def __init__(self, bridge_ifname: str, *, netns: str | None = None) -> None:
        self.bridge_ifname = bridge_ifname
        self.ipr = IPRoute(netns=netns, flags=0) if netns else IPRoute()
        try:
            found = self.ipr.link_lookup(ifname=bridge_ifname)
            if not found:
                raise BridgeGone(f"{bridge_ifname}: no such device")
            self.ifindex: int = found[0]
            kind = self._linkinfo(self._get_link(self.ifindex)).get_attr("IFLA_INFO_KIND")
            if kind != "bridge":
                raise NotABridge(f"{bridge_ifname} is a {kind or 'plain'} device, not a bridge")
        except BaseException:
            self.ipr.close()
            raise

    def close(self) -> None:
        self.ipr.close()

    def __enter__(self) -> BridgeControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- links

    def _raise(self, e: NetlinkError) -> NoReturn:
        if e.code == errno.ENODEV:
            raise BridgeGone(f"{self.bridge_ifname} (ifindex {self.ifindex}) is gone") from e
        raise e

    def _get_link(self, ifindex: int) -> Any:
        try:
            (link,) = self.ipr.link("get", index=ifindex)
        except NetlinkError as e:
            self._raise(e)
        return link

    @staticmethod
    def _linkinfo(link: Any) -> Any:
        info = link.get_attr("IFLA_LINKINFO")
        if info is None:
            raise NotABridge(f"{link.get_attr('IFLA_IFNAME')} has no link info")
        return info

    def _bridge_data(self) -> Any:
        link = self._get_link(self.ifindex)
        if link.get_attr("IFLA_IFNAME") != self.bridge_ifname:
            raise BridgeGone(f"{self.bridge_ifname}: ifindex {self.ifindex} is now another link")
        return self._linkinfo(link).get_attr("IFLA_INFO_DATA")

    def _port(self, link: Any) -> BridgePort:
        data = self._linkinfo(link).get_attr("IFLA_INFO_SLAVE_DATA")
        return BridgePort(
            name=link.get_attr("IFLA_IFNAME"),
            ifindex=link["index"],
            oper_state=str(link.get_attr("IFLA_OPERSTATE", "UNKNOWN")).lower(),
            multicast_router=MulticastRouter(data.get_attr("IFLA_BRPORT_MULTICAST_ROUTER", 1)),
            fast_leave=bool(data.get_attr("IFLA_BRPORT_FAST_LEAVE", 0)),
        )

    def ports(self) -> list[BridgePort]:
        """The bridge's ports, by ifindex."""
        self._bridge_data()  # raises BridgeGone
        links = [link for link in self.ipr.get_links() if link.get_attr("IFLA_MASTER") == self.ifindex]
        return sorted((self._port(link) for link in links), key=lambda p: p.ifindex)

    def port(self, port: str | int) -> BridgePort:
        """One port by name or ifindex; NoSuchPort if it is not in this bridge."""
        if isinstance(port, str):
            found = self.ipr.link_lookup(ifname=port)
            if not found:
                raise NoSuchPort(f"{port}: no such device")
            port = int(found[0])
        try:
            (link,) = self.ipr.link("get", index=port)
        except NetlinkError as e:
            if e.code == errno.ENODEV:
                raise NoSuchPort(f"ifindex {port}: no such device") from e
            raise
        if link.get_attr("IFLA_MASTER") != self.ifindex:
            raise NoSuchPort(f"{link.get_attr('IFLA_IFNAME')} is not a port of {self.bridge_ifname}")
        return self._port(link)

    # ---------------------------------------------------------------- bridge options

    def settings(self) -> dict[str, float]:
        """Every option of BRIDGE_OPTIONS as the kernel has it (intervals in seconds)."""
        data = self._bridge_data()
        out: dict[str, float] = {}
        for name, (attr, interval) in BRIDGE_OPTIONS.items():
            value = data.get_attr(attr)
            if value is not None:
                out[name] = _from_netlink(value, interval)
        return out

    def _set(self, changes: Mapping[str, float]) -> None:
        kwargs = {}
        for name, value in changes.items():
            attr, interval = BRIDGE_OPTIONS[name]
            kwargs[attr[len("IFLA_") :].lower()] = _to_netlink(value, interval)
        try:
            self.ipr.link("set", index=self.ifindex, kind="bridge", **kwargs)
        except NetlinkError as e:
            self._raise(e)

    def ensure(self, settings: Mapping[str, float]) -> dict[str, float]:
        """Set the options that differ; return their previous values (for ``restore``)."""
        unknown = set(settings) - set(BRIDGE_OPTIONS)
        if unknown:
            raise ValueError(f"unknown bridge options: {sorted(unknown)}")
        current = self.settings()
        previous = {
            name: current[name]
            for name in BRIDGE_OPTIONS
            if name in settings and not _same(settings[name], current[name], BRIDGE_OPTIONS[name][1])
        }
        self._apply({name: settings[name] for name in previous})
        for name in previous:
            log.info("bridge.option bridge=%s %s=%s (was %s)", self.bridge_ifname, name,
                     settings[name], previous[name])  # fmt: skip
        return previous

    def _apply(self, changes: Mapping[str, float]) -> None:
        late = ("mcast_snooping", "mcast_querier")
        first = {k: v for k, v in changes.items() if k not in late}
        if first:
            self._set(first)
        for name in late:
            if name in changes:
                self._set({name: changes[name]})

    def restore(self, previous: Mapping[str, float]) -> None:
        """Put back what ``ensure`` changed (querier off first)."""
        if "mcast_querier" in previous:
            self._set({"mcast_querier": previous["mcast_querier"]})
        rest = {k: v for k, v in previous.items() if k != "mcast_querier"}
        if rest:
            self._set(rest)

    # ---------------------------------------------------------------- port options

    def set_port(
        self,
        port: str | int,
        *,
        multicast_router: MulticastRouter | None = None,
        fast_leave: bool | None = None,
    ) -> dict[str, int]:
        """Set port options that differ; return their previous values (for ``restore_port``)."""
        current = self.port(port)
        wanted: dict[str, int] = {}
        previous: dict[str, int] = {}
        if multicast_router is not None and multicast_router != current.multicast_router:
            wanted["multicast_router"] = int(multicast_router)
            previous["multicast_router"] = int(current.multicast_router)
        if fast_leave is not None and fast_leave != current.fast_leave:
            wanted["fast_leave"] = int(fast_leave)
            previous["fast_leave"] = int(current.fast_leave)
        if wanted:
            self._set_port(current.ifindex, wanted)
        return previous

    def restore_port(self, port: str | int, previous: Mapping[str, int]) -> None:
        """Put back what ``set_port`` changed; a port that has left is skipped."""
        if not previous:
            return
        try:
            ifindex = self.port(port).ifindex
        except NoSuchPort:
            return
        self._set_port(ifindex, previous)

    def _set_port(self, ifindex: int, values: Mapping[str, int]) -> None:
        unknown = set(values) - set(PORT_OPTIONS)
        if unknown:
            raise ValueError(f"unknown port options: {sorted(unknown)}")
        try:
            self.ipr.brport("set", index=ifindex, **values)
        except NetlinkError as e:
            if e.code == errno.ENODEV:
                raise NoSuchPort(f"ifindex {ifindex}: no such device") from e
            raise
