"""The config schema as data: one row per option.

The table drives validation (types, ranges, choices), defaults, the generated example
config (``configs/snoopd.toml``) and the option reference. Names and defaults follow
``interface.md``; the IGMP variables are those of RFC 3376 §8.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from enum import Enum

from snoopd.core.settings import Timers

_DERIVED = Timers.derive()  # the RFC 3376 §8 defaults, for the example and the docs


class Kind(Enum):
    """What a value must be. The value is the TOML type named in messages and docs."""

    INT = "integer"
    SECONDS = "float"  # int or float, stored as float seconds
    BOOL = "boolean"
    CHOICE = "string"  # one of Option.choices
    IFNAME = "interface name"  # a Linux interface name
    IPV4_OR_AUTO = "address"  # "auto" or a unicast IPv4 address
    IPV4_UNICAST = "unicast address"
    IPV4_GROUP = "group address"  # IPv4 multicast, outside 224.0.0.0/24
    LISTEN = "HOST:PORT"
    PATH = "path"


@dataclass(frozen=True, slots=True)
class Option:
    """One config key. ``section`` is "" (top level), "igmp", "querier", "ports" (both
    ``[ports.default]`` and every ``[ports."NAME"]``) or "static" (each ``[[static]]``)."""

    section: str
    key: str
    kind: Kind
    default: object  # None: no fixed default (see ``derived``) or optional
    help: str
    unit: str = ""
    min: float | None = None  # inclusive
    above: float | None = None  # exclusive lower bound
    max: float | None = None  # inclusive
    choices: tuple[object, ...] = ()
    derived: str | None = None  # how the default follows from other keys, for the docs
    example: object = None  # value shown (commented out) in the example when default is None
    required: bool = False

    @property
    def shown(self) -> object:
        """The value the example config shows for this option."""
        return self.default if self.default is not None else self.example


_MAX_RESP = 3174.4  # RFC 3376 §4.1.1: largest Max Resp Code, in seconds
_MAX_QQI = 31744.0  # RFC 3376 §4.1.7: largest QQIC, in seconds
V2_MAX_RESPONSE = 25.5  # RFC 2236 §2.2: Max Resp Time is 8 bits of 1/10 s

SCHEMA: tuple[Option, ...] = (
    # -- top level
    Option("", "bridge", Kind.IFNAME, None, "the bridge to snoop on; required here or as --bridge",
           example="br0"),
    Option("", "mode", Kind.CHOICE, "kernel",
           '"kernel": program the bridge MDB; "software": replicate frames in snoopd',
           choices=("kernel", "software")),
    Option("", "max_groups", Kind.INT, 16384,
           "table limit of (group, source) entries; new groups beyond it are refused", unit="entries",
           min=1, max=1_000_000),
    Option("", "socket", Kind.PATH, None, "control socket (--socket overrides)",
           derived="/run/snoopd/<bridge>.sock", example="/run/snoopd/br0.sock"),
    Option("", "metrics_listen", Kind.LISTEN, None, "serve Prometheus metrics over HTTP here; default: off",
           example="127.0.0.1:9125"),
    # -- [igmp]: RFC 3376 §8
    Option("igmp", "version", Kind.INT, 3, "highest IGMP version snoopd uses as querier (2 or 3)",
           choices=(2, 3)),
    Option("igmp", "robustness", Kind.INT, _DERIVED.robustness,
           "RFC 3376 §8.1 Robustness Variable: survives robustness - 1 lost packets (1: warning)",
           min=1, max=7),
    Option("igmp", "query_interval", Kind.SECONDS, _DERIVED.query_interval,
           "RFC 3376 §8.2: time between General Queries", unit="seconds", min=1.0, max=_MAX_QQI),
    Option("igmp", "query_response_interval", Kind.SECONDS, _DERIVED.query_response_interval,
           "RFC 3376 §8.3: Max Resp Time of General Queries; < query_interval, <= 25.5 for version 2",
           unit="seconds", min=0.1, max=_MAX_RESP),
    Option("igmp", "last_member_query_interval", Kind.SECONDS, _DERIVED.last_member_query_interval,
           "RFC 3376 §8.8: Max Resp Time of the queries sent after a leave", unit="seconds",
           min=0.1, max=_MAX_RESP),
    Option("igmp", "last_member_query_count", Kind.INT, None,
           "RFC 3376 §8.9: queries sent after a leave", unit="queries", min=1, max=255,
           derived="robustness", example=_DERIVED.last_member_query_count),
    Option("igmp", "startup_query_interval", Kind.SECONDS, None,
           "RFC 3376 §8.6: time between startup General Queries", unit="seconds", above=0.0, max=_MAX_QQI,
           derived="query_interval / 4", example=_DERIVED.startup_query_interval),
    Option("igmp", "startup_query_count", Kind.INT, None,
           "RFC 3376 §8.7: General Queries sent at startup", unit="queries", min=1, max=255,
           derived="robustness", example=_DERIVED.startup_query_count),
    Option("igmp", "membership_interval", Kind.SECONDS, None,
           "RFC 3376 §8.4: membership timeout",
           unit="seconds", above=0.0, derived="robustness * query_interval + query_response_interval",
           example=_DERIVED.membership_interval),
    Option("igmp", "other_querier_present_interval", Kind.SECONDS, None,
           "RFC 3376 §8.5: querier timeout", unit="seconds", above=0.0,
           derived="robustness * query_interval + query_response_interval / 2",
           example=_DERIVED.other_querier_present_interval),
    Option("igmp", "require_router_alert", Kind.BOOL, False,
           "true: drop reports without the IP Router Alert option (RFC 3376 §9.2, §9.3)"),
    # -- [querier]
    Option("querier", "mode", Kind.CHOICE, "auto",
           '"auto": fallback querier; "off": never query; "always": query even with a router present',
           choices=("auto", "off", "always")),
    Option("querier", "address", Kind.IPV4_OR_AUTO, "auto",
           '"auto": the bridge\'s IPv4 address; or a unicast IPv4 address to query from'),
    Option("querier", "startup_wait", Kind.SECONDS, None,
           "auto mode: listen for another querier this long first", unit="seconds", min=0.0,
           derived="query_response_interval", example=_DERIVED.query_response_interval),
    Option("querier", "yield_to_routers", Kind.BOOL, True,
           "auto mode: stay silent while a PIM/DVMRP/MRD router is present"),
    # -- [ports.default] and [ports."NAME"]
    Option("ports", "fast_leave", Kind.BOOL, False,
           "prune at once, without queries, when the port's last known host leaves"),
    Option("ports", "router", Kind.CHOICE, "auto",
           '"auto": learned; "on": always a multicast-router port; "off": never',
           choices=("auto", "on", "off")),
    # -- [[static]]
    Option("static", "group", Kind.IPV4_GROUP, None, "IPv4 multicast group, not in 224.0.0.0/24",
           example="239.1.1.1", required=True),
    Option("static", "port", Kind.IFNAME, None, "bridge port that always receives the group",
           example="eth2", required=True),
    Option("static", "source", Kind.IPV4_UNICAST, None, "optional: source-specific (S,G) membership",
           example="192.0.2.5"),
)

SECTIONS: tuple[str, ...] = ("igmp", "querier", "ports", "static")  # tables besides the top level

SECTION_HELP: dict[str, str] = {
    "igmp": "IGMP variables, named as in RFC 3376 §8",
    "querier": "snoopd's own querier",
    "ports": "applies to every port unless a port section overrides it",
    "ports.NAME": "one section per port that differs; keys as in [ports.default]",
    "static": "static memberships, never aged out; one section each",
}


def options(section: str) -> dict[str, Option]:
    """The options of one section, by key, in table order."""
    return {o.key: o for o in SCHEMA if o.section == section}


def option(section: str, key: str) -> Option:
    return options(section)[key]


# ---------------------------------------------------------------- dotted keys

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dotted(*parts: str | int) -> str:
    """A TOML dotted key: ``ports."eth0.100".router``; list indexes as ``static[1]``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = part if _BARE_KEY.fullmatch(part) else '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out += f".{text}" if out else text
    return out


# ---------------------------------------------------------------- values

class Invalid(Exception):
    """A bad value; the message says what is wrong, without the key."""


def toml_type(value: object) -> str:
    """The TOML name of a parsed value's type, for messages."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    return "date/time"


def got(value: object) -> str:
    """The type and value of a bad value, for messages (tables and arrays by type only)."""
    if isinstance(value, bool | int | float | str):
        return f"{toml_type(value)} {show(value)}"
    return toml_type(value)


def show(value: object) -> str:
    """A value as it is written in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(number)


def check_value(opt: Option, raw: object) -> object:
    """The validated value of ``opt`` (floats for SECONDS), or :class:`Invalid`."""
    if opt.kind is Kind.BOOL:
        if not isinstance(raw, bool):
            raise Invalid(f"must be true or false, got {got(raw)}")
        return raw
    if opt.kind in (Kind.INT, Kind.SECONDS):
        return _check_number(opt, raw)
    if not isinstance(raw, str):
        raise Invalid(f"must be a string, got {got(raw)}")
    if opt.kind is Kind.CHOICE:
        if raw not in opt.choices:
            raise Invalid(f"must be one of {', '.join(show(c) for c in opt.choices)}, got {show(raw)}")
        return raw
    return _STRING_CHECKS[opt.kind](raw)


def _check_number(opt: Option, raw: object) -> float | int:
    if opt.kind is Kind.INT:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise Invalid(f"must be an integer, got {got(raw)}")
        value: float | int = raw
    else:
        # ints are fine where seconds are expected; bools and strings are not
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise Invalid(f"must be a number of seconds, got {got(raw)}")
        if not math.isfinite(raw):
            raise Invalid(f"must be a finite number of seconds, got {show(raw)}")
        value = float(raw)
    if opt.choices:
        if value not in opt.choices:
            *head, last = (str(c) for c in opt.choices)
            raise Invalid(f"must be {', '.join(head)} or {last}, got {_fmt(value)}")
        return value
    lo, hi = opt.min, opt.max
    if opt.above is not None and value <= opt.above:
        limit = f"greater than {_fmt(opt.above)}" + (f" and at most {_fmt(hi)}" if hi is not None else "")
        raise Invalid(f"must be {limit}, got {_fmt(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if lo is not None and hi is not None:
            raise Invalid(f"must be between {_fmt(lo)} and {_fmt(hi)}, got {_fmt(value)}")
        if lo is not None:
            raise Invalid(f"must be at least {_fmt(lo)}, got {_fmt(value)}")
        raise Invalid(f"must be at most {_fmt(hi or 0.0)}, got {_fmt(value)}")
    return value


def check_ifname(text: str) -> str:
    """A valid Linux interface name (the kernel's dev_valid_name)."""
    if not 1 <= len(text.encode()) <= 15:
        raise Invalid(f"must be an interface name of 1 to 15 characters, got {show(text)}")
    if text in (".", ".."):
        raise Invalid(f"must be an interface name, not {show(text)}")
    if any(c in "/:" or c.isspace() for c in text):
        raise Invalid(f"must be an interface name without '/', ':' or whitespace, got {show(text)}")
    return text


def _ipv4(text: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)  # strict dotted quad
    except ValueError:
        raise Invalid(f"must be an IPv4 address, got {show(text)}") from None


def check_unicast(text: str) -> str:
    address = _ipv4(text)
    if (address.is_multicast or address.is_unspecified or address.is_loopback or address.is_reserved
            or address == ipaddress.IPv4Address("255.255.255.255")):
        raise Invalid(f"must be a unicast IPv4 address, got {show(text)}")
    return str(address)


def check_group(text: str) -> str:
    address = _ipv4(text)
    if not address.is_multicast:
        raise Invalid(f"must be an IPv4 multicast address (224.0.0.0/4), got {show(text)}")
    if address in ipaddress.IPv4Network("224.0.0.0/24"):
        # RFC 4541 §2.1.2: 224.0.0.X is always flooded, never snooped
        raise Invalid(f"must not be in 224.0.0.0/24 (link-local groups are always flooded), got {show(text)}")
    return str(address)


def _check_address(text: str) -> str:
    return text if text == "auto" else check_unicast(text)


_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


def split_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv4, hostname, or ``[IPv6]``) → (host, port), or :class:`Invalid`."""
    host, sep, port = text.rpartition(":")
    bad = Invalid(f'must be "HOST:PORT" (e.g. "127.0.0.1:9125" or "[::1]:9125"), got {show(text)}')
    if not sep or not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise bad
    if host.startswith("[") and host.endswith("]"):
        try:
            host = str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise bad from None
    elif not _HOSTNAME.fullmatch(host):
        raise bad
    return host, int(port)


def _check_listen(text: str) -> str:
    split_listen(text)
    return text


def _check_path(text: str) -> str:
    # sun_path holds 108 bytes including the terminating NUL
    if not text or "\0" in text or len(text.encode()) > 107:
        raise Invalid(f"must be a socket path of 1 to 107 bytes, got {show(text)}")
    return text


_STRING_CHECKS = {
    Kind.IFNAME: check_ifname,
    Kind.IPV4_OR_AUTO: _check_address,
    Kind.IPV4_UNICAST: check_unicast,
    Kind.IPV4_GROUP: check_group,
    Kind.LISTEN: _check_listen,
    Kind.PATH: _check_path,
}
