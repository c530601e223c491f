"""Loading: TOML file + command-line overrides → a validated :class:`Config`.

Every problem is collected and reported at once, one line each, naming the file and the
full dotted key: ``snoopd.toml: igmp.robustness: must be between 1 and 7, got 9``.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from enum import Enum

from snoopd.config.model import Config, ConfigError, Mode
from snoopd.config.schema import (
    SCHEMA,
    SECTIONS,
    V2_MAX_RESPONSE,
    Invalid,
    Option,
    check_ifname,
    check_value,
    dotted,
    got,
    options,
)
from snoopd.core.settings import (
    CoreSettings,
    PortSettings,
    QuerierMode,
    RouterMode,
    StaticMembership,
    Timers,
)

NO_BRIDGE = "no bridge: give --bridge or set bridge in the config"

# command-line flag → (section, key) it overrides
OVERRIDES: dict[str, tuple[str, str]] = {
    "bridge": ("", "bridge"),
    "mode": ("", "mode"),
    "querier": ("querier", "mode"),
    "socket": ("", "socket"),
}

Values = dict[str, object]  # validated values of one section, by key (only keys given)


def load_config(path: str | None, overrides: Mapping[str, object] | None = None, *,
                require_bridge: bool = True) -> Config:
    """Load the TOML file at ``path`` (None: no file, all defaults) and apply
    ``overrides`` (keys of :data:`OVERRIDES`; None values are ignored), which win over
    the file. Raises :class:`ConfigError` listing every problem. With
    ``require_bridge=False`` (``check-config``) a config without a bridge is accepted."""
    if path is None:
        return parse_config({}, None, overrides, require_bridge=require_bridge)
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None  # the message has the line
    return parse_config(data, path, overrides, require_bridge=require_bridge)


def loads_config(text: str, origin: str = "<string>", overrides: Mapping[str, object] | None = None, *,
                 require_bridge: bool = True) -> Config:
    """:func:`load_config` for TOML text; ``origin`` names it in messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: TOML syntax error: {exc}") from None
    return parse_config(data, origin, overrides, require_bridge=require_bridge)


def parse_config(data: Mapping[str, object], origin: str | None, overrides: Mapping[str, object] | None = None,
                 *, require_bridge: bool = True) -> Config:
    """Validate parsed TOML (plus overrides) into a :class:`Config`; ``origin`` names the
    file in messages (None: no file, the defaults)."""
    return _Loader(origin).run(data, overrides or {}, require_bridge)


class _Loader:
    def __init__(self, origin: str | None) -> None:
        self.source = origin
        self.origin = origin or "defaults"
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.bad: set[str] = set()  # dotted keys with an error, left out of cross-field checks

    def error(self, key: str, message: str, origin: str | None = None) -> None:
        self.bad.add(key)
        self.errors.append(f"{origin or self.origin}: {key}: {message}")

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(f"{self.origin}: {key}: {message}")

    # ------------------------------------------------------------ the whole file

    def run(self, data: Mapping[str, object], overrides: Mapping[str, object], require_bridge: bool) -> Config:
        top = self.section(data, "", (), skip=SECTIONS)
        igmp = self.section(self.table(data, "igmp"), "igmp", ("igmp",))
        querier = self.section(self.table(data, "querier"), "querier", ("querier",))
        default_port, ports = self.ports(data)
        static = self.static(data.get("static"))
        self.override(overrides, {"": top, "querier": querier})
        timers = self.timers(igmp)
        if require_bridge and top.get("bridge") is None and not {"bridge", "--bridge"} & self.bad:
            self.errors.append(NO_BRIDGE)
        if self.errors:
            raise ConfigError(self.errors)
        core = CoreSettings(
            timers=timers,
            igmp_version=_int(_get(igmp, "igmp", "version")),
            querier_mode=QuerierMode(_get(querier, "querier", "mode")),
            querier_address=None if _get(querier, "querier", "address") == "auto" else _str(querier["address"]),
            startup_wait=_opt_float(querier.get("startup_wait")),
            yield_to_routers=bool(_get(querier, "querier", "yield_to_routers")),
            max_groups=_int(_get(top, "", "max_groups")),
            default_port=default_port,
            ports=ports,
            static=static,
        )
        return Config(
            bridge=_opt_str(top.get("bridge")),
            mode=Mode(_get(top, "", "mode")),
            max_groups=core.max_groups,
            socket=_opt_str(top.get("socket")),
            metrics_listen=_opt_str(top.get("metrics_listen")),
            require_router_alert=bool(_get(igmp, "igmp", "require_router_alert")),
            core=core,
            source=self.source,
            warnings=tuple(self.warnings),
        )

    # ------------------------------------------------------------ tables

    def table(self, data: Mapping[str, object], name: str) -> Mapping[str, object]:
        value = data.get(name, {})
        if isinstance(value, dict):
            return value
        self.error(name, f"must be a table ([{name}]), got {got(value)}")
        return {}

    def section(self, table: Mapping[str, object], section: str, path: tuple[str | int, ...],
                skip: tuple[str, ...] = ()) -> Values:
        """Check every key of one table against the schema section."""
        known = options(section)
        values: Values = {}
        for key, raw in table.items():
            if key in skip:
                continue
            opt = known.get(key)
            if opt is None:
                self.error(dotted(*path, key), "unknown key" + _suggest(key, section, path, skip))
                continue
            try:
                values[key] = check_value(opt, raw)
            except Invalid as exc:
                self.error(dotted(*path, key), str(exc))
        return values

    def ports(self, data: Mapping[str, object]) -> tuple[PortSettings, dict[str, PortSettings]]:
        """``[ports.default]`` and ``[ports."NAME"]``; a port section inherits the keys it
        does not set from ``[ports.default]``."""
        sections: dict[str, Values] = {}
        for name, sub in self.table(data, "ports").items():
            key = dotted("ports", name)
            if name != "default":
                try:
                    check_ifname(name)
                except Invalid as exc:
                    self.error(key, f"port name {exc}")
                    continue
            if not isinstance(sub, dict):
                hint = ' (port settings go in [ports.default] or [ports."NAME"])' if name in options("ports") else ""
                self.error(key, f"must be a table ([{key}]), got {got(sub)}{hint}")
                continue
            sections[name] = self.section(sub, "ports", ("ports", name))
        base = sections.pop("default", {})
        default = _port_settings(base, {})
        return default, {name: _port_settings(values, base) for name, values in sections.items()}

    def static(self, raw: object) -> tuple[StaticMembership, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.error("static", f"must be an array of tables ([[static]]), got {got(raw)}")
            return ()
        seen: dict[tuple[object, ...], int] = {}
        out: list[StaticMembership] = []
        for index, entry in enumerate(raw):
            if not isinstance(entry, dict):
                self.error(dotted("static", index), f"must be a table ([[static]]), got {got(entry)}")
                continue
            values = self.section(entry, "static", ("static", index))
            missing = [o.key for o in options("static").values() if o.required and o.key not in entry]
            for key in missing:
                self.error(dotted("static", index, key), "missing: every [[static]] needs group and port")
            if missing or len(values) < len(entry):
                continue
            member = StaticMembership(_str(values["group"]), _str(values["port"]), _opt_str(values.get("source")))
            ident = (member.group, member.port, member.source)
            if ident in seen:
                self.error(dotted("static", index), f"duplicate of static[{seen[ident]}] "
                           f"(group {member.group}, port {member.port}, source {member.source or 'any'})")
                continue
            seen[ident] = index
            out.append(member)
        return tuple(out)

    def override(self, overrides: Mapping[str, object], sections: Mapping[str, Values]) -> None:
        """Command-line flags win over the file."""
        for flag, raw in overrides.items():
            if flag not in OVERRIDES:
                raise ValueError(f"unknown config override {flag!r}")  # our bug, not the user's
            if raw is None:
                continue
            section, key = OVERRIDES[flag]
            value = raw.value if isinstance(raw, Enum) else raw
            try:
                sections[section][key] = check_value(options(section)[key], value)
            except Invalid as exc:
                self.error(f"--{flag}", str(exc), origin="command line")

    # ------------------------------------------------------------ cross-field

    def timers(self, igmp: Values) -> Timers:
        """RFC 3376 §8 timers, derived defaults filled in, and the checks across keys."""
        timers = Timers.derive(**{k: v for k, v in igmp.items()  # type: ignore[arg-type]
                                  if k not in ("version", "require_router_alert")})
        qi, qri = "igmp.query_interval", "igmp.query_response_interval"
        if not {qi, qri} & self.bad and timers.query_response_interval >= timers.query_interval:
            # RFC 3376 §8.3: the Query Response Interval must be less than the Query Interval
            if "query_response_interval" in igmp:
                self.error(qri, f"must be less than igmp.query_interval ({timers.query_interval}), "
                           f"got {timers.query_response_interval} (RFC 3376 §8.3)")
            else:
                self.error(qi, f"must be greater than igmp.query_response_interval "
                           f"({timers.query_response_interval}), got {timers.query_interval} (RFC 3376 §8.3)")
        if igmp.get("version") == 2:
            for name in ("query_response_interval", "last_member_query_interval"):
                value = getattr(timers, name)
                if value > V2_MAX_RESPONSE and f"igmp.{name}" not in self.bad:
                    # RFC 2236 §2.2: an IGMPv2 Max Resp Time is 8 bits of 1/10 s
                    self.error(f"igmp.{name}", f"must be at most {V2_MAX_RESPONSE} with igmp.version 2, got {value}")
        if timers.robustness == 1:
            self.warn("igmp.robustness", "1 tolerates no lost packet (RFC 3376 §8.1: SHOULD NOT be one)")
        for name in ("membership_interval", "other_querier_present_interval"):
            if name in igmp and getattr(timers, name) <= timers.query_interval:
                self.warn(f"igmp.{name}", f"{getattr(timers, name)} is not longer than igmp.query_interval "
                          f"({timers.query_interval}): it runs out between General Queries")
        return timers


# ---------------------------------------------------------------- helpers

def _suggest(key: str, section: str, path: tuple[str | int, ...], siblings: tuple[str, ...]) -> str:
    """A hint for an unknown key: a close spelling here, or the section it belongs in."""
    close = difflib.get_close_matches(key, [*options(section), *siblings], n=1)
    if close:
        return f" (did you mean {dotted(*path, close[0])}?)"
    elsewhere = [o for o in SCHEMA if o.key == key]
    if elsewhere:
        return f" (it belongs in {_section_name(elsewhere[0])})"
    return ""


def _section_name(opt: Option) -> str:
    return {"": "the top level", "ports": "[ports.default] or [ports.\"NAME\"]",
            "static": "[[static]]"}.get(opt.section, f"[{opt.section}]")


def _get(values: Values, section: str, key: str) -> object:
    return values[key] if key in values else options(section)[key].default


def _port_settings(values: Values, base: Values) -> PortSettings:
    merged = {**base, **values}
    return PortSettings(fast_leave=bool(_get(merged, "ports", "fast_leave")),
                        router=RouterMode(_get(merged, "ports", "router")))


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _str(value: object) -> str:
    assert isinstance(value, str)
    return value


def _opt_str(value: object) -> str | None:
    return None if value is None else _str(value)


def _opt_float(value: object) -> float | None:
    assert value is None or isinstance(value, float)
    return value
