"""The config layer: defaults, derived defaults, validation messages, overrides, diff,
and the committed example config generated from the schema table."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from snoopd.config import (
    NO_BRIDGE,
    SCHEMA,
    Config,
    ConfigError,
    Mode,
    default_socket_path,
    load_config,
    loads_config,
    render_example,
    render_reference,
)
from snoopd.config.__main__ import main as config_main
from snoopd.config.schema import SECTION_HELP
from snoopd.core.settings import PortSettings, QuerierMode, RouterMode, StaticMembership, Timers

EXAMPLE = Path(__file__).resolve().parent.parent / "configs" / "snoopd.toml"

# The config example of interface.md ("Config file (TOML)"), verbatim.
INTERFACE_EXAMPLE = """\
bridge = "br0"
mode = "kernel"                       # "kernel": program the bridge MDB; "software": replicate frames in snoopd
max_groups = 16384                    # table limit: (group, source) entries on this bridge; at the limit new
                                      # groups are refused (counted, logged), members already there are untouched

[igmp]
version = 3                           # highest IGMP version snoopd uses as querier (2 or 3)
robustness = 2
query_interval = 125.0                # seconds, floats allowed everywhere a time is
query_response_interval = 10.0
last_member_query_interval = 1.0
last_member_query_count = 2           # default: robustness
startup_query_interval = 31.25        # default: query_interval / 4
startup_query_count = 2               # default: robustness
membership_interval = 260.0           # default: robustness * query_interval + query_response_interval
other_querier_present_interval = 255.0  # default: robustness * query_interval + query_response_interval / 2
require_router_alert = false          # reports without the IP Router Alert option are accepted unless true

[querier]
mode = "auto"                         # "auto": fallback querier; "off": never query; "always": query even with a router present
address = "auto"                      # "auto": the bridge's IPv4 address; or an explicit IPv4 address
startup_wait = 10.0                   # auto mode: listen this long for another querier first; default: query_response_interval
yield_to_routers = true               # auto mode: stay silent while a PIM/DVMRP/MRD router is present

[ports.default]                       # applies to every port unless a port section overrides it
fast_leave = false
router = "auto"                       # "auto": learned; "on": always a multicast-router port; "off": never

[ports."eth1"]                        # one section per port that differs
fast_leave = true

[[static]]                            # static memberships, never aged out
group = "239.1.1.1"
port = "eth2"
# source = "192.0.2.5"                # optional: source-specific
"""  # noqa: E501

BR0 = {"bridge": "br0"}


def load(text: str, overrides: dict[str, object] | None = None, **kw: bool) -> Config:
    return loads_config(text, "snoopd.toml", BR0 if overrides is None else overrides, **kw)


def errors(text: str, overrides: dict[str, object] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text, overrides)
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


def one_error(text: str, overrides: dict[str, object] | None = None) -> str:
    found = errors(text, overrides)
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------- defaults


def test_defaults_are_interface_md_values() -> None:
    config = load_config(None, BR0)
    core, timers = config.core, config.core.timers
    assert config.bridge == "br0"
    assert config.mode is Mode.KERNEL
    assert config.max_groups == 16384 and core.max_groups == 16384
    assert config.socket is None and config.socket_path == "/run/snoopd/br0.sock"
    assert config.metrics_listen is None and config.metrics_address is None
    assert config.require_router_alert is False
    assert core.igmp_version == 3
    assert timers.robustness == 2
    assert timers.query_interval == 125.0
    assert timers.query_response_interval == 10.0
    assert timers.last_member_query_interval == 1.0
    assert timers.last_member_query_count == 2
    assert timers.startup_query_interval == 31.25
    assert timers.startup_query_count == 2
    assert timers.membership_interval == 260.0
    assert timers.other_querier_present_interval == 255.0
    assert core.querier_mode is QuerierMode.AUTO
    assert core.querier_address is None  # "auto"
    assert core.querier_startup_wait == 10.0
    assert core.yield_to_routers is True
    assert core.default_port == PortSettings(fast_leave=False, router=RouterMode.AUTO)
    assert core.ports == {} and core.static == ()
    assert config.warnings == ()


def test_seconds_are_floats_even_when_written_as_integers() -> None:
    config = load("[igmp]\nquery_interval = 60\nquery_response_interval = 5\n[querier]\nstartup_wait = 0\n")
    timers = config.core.timers
    assert type(timers.query_interval) is float and timers.query_interval == 60.0
    assert type(timers.query_response_interval) is float
    assert config.core.startup_wait == 0.0 and type(config.core.startup_wait) is float


def test_derived_defaults_follow_robustness_and_query_interval() -> None:
    timers = load("[igmp]\nrobustness = 3\nquery_interval = 60.0\nquery_response_interval = 4.0\n").core.timers
    assert timers.last_member_query_count == 3  # RFC 3376 §8.9
    assert timers.startup_query_count == 3  # §8.7
    assert timers.startup_query_interval == 15.0  # §8.6
    assert timers.membership_interval == 3 * 60.0 + 4.0  # §8.4
    assert timers.other_querier_present_interval == 3 * 60.0 + 2.0  # §8.5
    assert timers == Timers.derive(robustness=3, query_interval=60.0, query_response_interval=4.0)


def test_startup_wait_follows_query_response_interval() -> None:
    config = load("[igmp]\nquery_response_interval = 4.5\n")
    assert config.core.startup_wait is None and config.core.querier_startup_wait == 4.5


def test_explicit_derived_values_win() -> None:
    timers = load("[igmp]\nrobustness = 3\nlast_member_query_count = 1\nmembership_interval = 400\n").core.timers
    assert timers.last_member_query_count == 1 and timers.membership_interval == 400.0
    assert timers.startup_query_count == 3


def test_interface_md_example_parses() -> None:
    config = loads_config(INTERFACE_EXAMPLE, "interface.md", {})
    assert config.bridge == "br0"
    assert config.core.timers == Timers.derive()
    assert config.core.querier_startup_wait == 10.0
    assert config.core.port("eth1") == PortSettings(fast_leave=True, router=RouterMode.AUTO)
    assert config.core.port("eth9") == PortSettings()
    assert config.core.static == (StaticMembership("239.1.1.1", "eth2"),)


def test_full_config() -> None:
    config = load(
        'bridge = "br7"\nmode = "software"\nmax_groups = 1\nsocket = "/tmp/s.sock"\n'
        'metrics_listen = "[::1]:9125"\n'
        "[igmp]\nversion = 2\nrequire_router_alert = true\n"
        '[querier]\nmode = "always"\naddress = "192.0.2.254"\nyield_to_routers = false\n'
        '[ports.default]\nrouter = "off"\nfast_leave = true\n'
        '[ports."eth0.100"]\nrouter = "on"\n'
        '[[static]]\ngroup = "232.1.1.1"\nport = "eth0.100"\nsource = "192.0.2.5"\n',
        {},
    )
    assert (config.bridge, config.mode, config.max_groups) == ("br7", Mode.SOFTWARE, 1)
    assert config.socket_path == "/tmp/s.sock"
    assert config.metrics_address == ("::1", 9125)
    assert config.require_router_alert is True and config.core.igmp_version == 2
    assert config.core.querier_mode is QuerierMode.ALWAYS
    assert config.core.querier_address == "192.0.2.254"
    assert config.core.yield_to_routers is False
    assert config.core.default_port == PortSettings(fast_leave=True, router=RouterMode.OFF)
    # a port section inherits what it does not set from [ports.default]
    assert config.core.port("eth0.100") == PortSettings(fast_leave=True, router=RouterMode.ON)
    assert config.core.static == (StaticMembership("232.1.1.1", "eth0.100", "192.0.2.5"),)
    assert config.source == "snoopd.toml"


def test_default_socket_path() -> None:
    assert default_socket_path("br-lan") == "/run/snoopd/br-lan.sock"


# ---------------------------------------------------------------- the example file


def test_committed_example_is_generated_from_the_schema() -> None:
    assert EXAMPLE.read_text() == render_example(), "regenerate: python -m snoopd.config example"


def test_example_loads_to_the_defaults() -> None:
    assert load_config(str(EXAMPLE), BR0) == load_config(None, BR0)


def test_example_lists_every_option_with_a_comment() -> None:
    text = render_example()
    lines = text.splitlines()
    for opt in SCHEMA:
        mine = [line for line in lines if line.lstrip("# ").startswith(f"{opt.key} = ")]
        assert mine, opt.key
        assert " # " in mine[0], mine  # the option's own line; later ones are examples
    # uncommenting every option line gives a valid config equal to the defaults
    options_part = lines[:lines.index('# [ports."eth1"]'.ljust(38) + "# " + SECTION_HELP["ports.NAME"])]
    uncommented = "\n".join(line[2:] if line.startswith("# ") and " = " in line.split("#")[1] else line
                            for line in options_part) + "\n"
    data = tomllib.loads(uncommented)
    assert data["igmp"]["membership_interval"] == 260.0
    assert data["socket"] == "/run/snoopd/br0.sock"
    assert loads_config(uncommented, "x", {}).core.timers == Timers.derive()


def test_units_and_rfc_sections_in_the_help() -> None:
    for opt in SCHEMA:
        if opt.kind.name == "SECONDS":
            assert opt.unit == "seconds", opt.key
    cited = {o.key: o.help for o in SCHEMA if o.section == "igmp"}
    for key, section in [("robustness", "8.1"), ("query_interval", "8.2"), ("query_response_interval", "8.3"),
                         ("membership_interval", "8.4"), ("other_querier_present_interval", "8.5"),
                         ("startup_query_interval", "8.6"), ("startup_query_count", "8.7"),
                         ("last_member_query_interval", "8.8"), ("last_member_query_count", "8.9")]:
        assert f"RFC 3376 §{section}" in cited[key], key


def test_reference_and_main(capsys: pytest.CaptureFixture[str]) -> None:
    reference = render_reference()
    assert all(opt.key in reference for opt in SCHEMA)
    assert config_main(["example"]) == 0 and capsys.readouterr().out == render_example()
    assert config_main(["reference"]) == 0 and capsys.readouterr().out == reference
    assert config_main(["nonsense"]) == 2


# ---------------------------------------------------------------- errors


def test_unknown_top_level_key() -> None:
    assert one_error("colour = 1\n") == "snoopd.toml: colour: unknown key"


def test_unknown_key_suggests_spelling_and_section() -> None:
    assert one_error("[igmp]\nrobustnes = 2\n") == (
        "snoopd.toml: igmp.robustnes: unknown key (did you mean igmp.robustness?)")
    assert one_error("robustness = 2\n") == "snoopd.toml: robustness: unknown key (it belongs in [igmp])"


def test_unknown_key_in_a_section() -> None:
    assert one_error("[querier]\ninterval = 3\n") == "snoopd.toml: querier.interval: unknown key"
    assert one_error("[ports.default]\nspeed = 3\n") == "snoopd.toml: ports.default.speed: unknown key"


def test_unknown_key_in_a_port_section() -> None:
    assert one_error('[ports."eth0.5"]\nfast_leave = true\nvlan = 5\n') == (
        'snoopd.toml: ports."eth0.5".vlan: unknown key')


def test_unknown_key_in_static() -> None:
    assert one_error('[[static]]\ngroup = "239.1.1.1"\nport = "eth1"\nvlan = 3\n') == (
        "snoopd.toml: static[0].vlan: unknown key")


def test_unknown_section() -> None:
    assert one_error("[mld]\nversion = 2\n") == "snoopd.toml: mld: unknown key"


@pytest.mark.parametrize(("text", "message"), [
    ('[igmp]\nrobustness = "2"\n', 'igmp.robustness: must be an integer, got string "2"'),
    ("[igmp]\nrobustness = 2.0\n", "igmp.robustness: must be an integer, got float 2.0"),
    ("[igmp]\nrobustness = true\n", "igmp.robustness: must be an integer, got boolean true"),
    ('[igmp]\nquery_interval = "125"\n', 'igmp.query_interval: must be a number of seconds, got string "125"'),
    ("[igmp]\nquery_interval = true\n", "igmp.query_interval: must be a number of seconds, got boolean true"),
    ("[igmp]\nquery_interval = inf\n", "igmp.query_interval: must be a finite number of seconds, got inf"),
    ("[igmp]\nrequire_router_alert = 1\n", "igmp.require_router_alert: must be true or false, got integer 1"),
    ('[igmp]\nrequire_router_alert = "yes"\n',
     'igmp.require_router_alert: must be true or false, got string "yes"'),
    ("mode = 1\n", "mode: must be a string, got integer 1"),
    ('mode = "turbo"\n', 'mode: must be one of "kernel", "software", got "turbo"'),
    ('[querier]\nmode = "on"\n', 'querier.mode: must be one of "auto", "off", "always", got "on"'),
    ('[ports.default]\nrouter = "yes"\n', 'ports.default.router: must be one of "auto", "on", "off", got "yes"'),
    ("igmp = 3\n", "igmp: must be a table ([igmp]), got integer 3"),
    ('[static]\ngroup = "239.1.1.1"\n', "static: must be an array of tables ([[static]]), got table"),
])
def test_wrong_type(text: str, message: str) -> None:
    assert one_error(text).startswith(f"snoopd.toml: {message}")


@pytest.mark.parametrize(("text", "message"), [
    ("[igmp]\nrobustness = 9\n", "igmp.robustness: must be between 1 and 7, got 9"),
    ("[igmp]\nrobustness = 0\n", "igmp.robustness: must be between 1 and 7, got 0"),
    ("[igmp]\nversion = 1\n", "igmp.version: must be 2 or 3, got 1"),
    ("[igmp]\nquery_interval = 0\n", "igmp.query_interval: must be between 1 and 31744, got 0"),
    ("[igmp]\nquery_response_interval = -1\n", "igmp.query_response_interval: must be between 0.1 and 3174.4, got -1"),
    ("[igmp]\nlast_member_query_interval = 0.0\n",
     "igmp.last_member_query_interval: must be between 0.1 and 3174.4, got 0"),
    ("[igmp]\nlast_member_query_count = 0\n", "igmp.last_member_query_count: must be between 1 and 255, got 0"),
    ("[igmp]\nstartup_query_count = 0\n", "igmp.startup_query_count: must be between 1 and 255, got 0"),
    ("[igmp]\nstartup_query_interval = 0\n",
     "igmp.startup_query_interval: must be greater than 0 and at most 31744, got 0"),
    ("[igmp]\nmembership_interval = -5\n", "igmp.membership_interval: must be greater than 0, got -5"),
    ("[igmp]\nother_querier_present_interval = 0\n",
     "igmp.other_querier_present_interval: must be greater than 0, got 0"),
    ("[querier]\nstartup_wait = -1\n", "querier.startup_wait: must be at least 0, got -1"),
    ("max_groups = 0\n", "max_groups: must be between 1 and 1000000, got 0"),
    ("max_groups = 1000001\n", "max_groups: must be between 1 and 1000000, got 1000001"),
])
def test_out_of_range(text: str, message: str) -> None:
    assert one_error(text) == f"snoopd.toml: {message}"


def test_robustness_one_is_allowed_with_a_warning() -> None:
    config = load("[igmp]\nrobustness = 1\n")
    assert config.core.timers.robustness == 1
    assert len(config.warnings) == 1 and config.warnings[0].startswith("snoopd.toml: igmp.robustness: ")
    assert "RFC 3376 §8.1" in config.warnings[0]


def test_short_membership_interval_is_warned_about() -> None:
    config = load("[igmp]\nmembership_interval = 100.0\n")
    assert [w.split(": ")[1] for w in config.warnings] == ["igmp.membership_interval"]


@pytest.mark.parametrize("address", ["239.1.1.1", "0.0.0.0", "255.255.255.255", "127.0.0.1", "240.0.0.1",
                                     "10.0.0", "10.0.0.256", "010.0.0.1", "fe80::1", "bridge"])
def test_bad_querier_address(address: str) -> None:
    message = one_error(f'[querier]\naddress = "{address}"\n')
    assert message.startswith("snoopd.toml: querier.address: must be ")
    assert f'got "{address}"' in message


def test_querier_address_is_normalised() -> None:
    assert load('[querier]\naddress = "192.0.2.1"\n').core.querier_address == "192.0.2.1"


@pytest.mark.parametrize(("group", "why"), [
    ("224.0.0.5", "must not be in 224.0.0.0/24"),
    ("224.0.0.251", "must not be in 224.0.0.0/24"),
    ("192.0.2.1", "must be an IPv4 multicast address"),
    ("239.1.1", "must be an IPv4 address"),
    ("ff02::1", "must be an IPv4 address"),
])
def test_bad_static_group(group: str, why: str) -> None:
    message = one_error(f'[[static]]\ngroup = "{group}"\nport = "eth1"\n')
    assert message.startswith(f"snoopd.toml: static[0].group: {why}")


def test_bad_static_source_and_missing_keys() -> None:
    found = errors('[[static]]\ngroup = "239.1.1.1"\nport = "eth1"\nsource = "232.1.1.1"\n'
                   '[[static]]\ngroup = "239.1.1.2"\n')
    assert found == [
        'snoopd.toml: static[0].source: must be a unicast IPv4 address, got "232.1.1.1"',
        "snoopd.toml: static[1].port: missing: every [[static]] needs group and port",
    ]


def test_duplicate_static_entries_are_rejected() -> None:
    entry = '[[static]]\ngroup = "239.1.1.1"\nport = "eth1"\n'
    message = one_error(entry + entry)
    assert message.startswith("snoopd.toml: static[1]: duplicate of static[0]")
    # the same group on another port, or with a source, is a different membership
    assert len(load(entry + '[[static]]\ngroup = "239.1.1.1"\nport = "eth2"\n'
                    + entry + 'source = "192.0.2.1"\n').core.static) == 3


@pytest.mark.parametrize("name", ["", "a" * 16, "eth 1", "a/b", "eth0:1", ".", ".."])
def test_bad_port_names(name: str) -> None:
    assert ": port name must be" in one_error(f'[ports."{name}"]\nfast_leave = true\n')
    assert one_error(f'[[static]]\ngroup = "239.1.1.1"\nport = "{name}"\n').startswith(
        "snoopd.toml: static[0].port: must be an interface name")
    assert one_error(f'bridge = "{name}"\n', {}).startswith("snoopd.toml: bridge: must be an interface name")


def test_port_keys_directly_under_ports_get_a_hint() -> None:
    assert one_error("[ports]\nfast_leave = true\n").endswith('(port settings go in [ports.default] or [ports."NAME"])')


def test_fifteen_character_port_name_is_fine() -> None:
    assert load(f'[ports."{"a" * 15}"]\nrouter = "on"\n').core.port("a" * 15).router is RouterMode.ON


def test_query_response_interval_must_be_below_query_interval() -> None:
    # RFC 3376 §8.3
    assert one_error("[igmp]\nquery_interval = 20\nquery_response_interval = 20\n") == (
        "snoopd.toml: igmp.query_response_interval: must be less than igmp.query_interval (20.0), "
        "got 20.0 (RFC 3376 §8.3)")
    assert one_error("[igmp]\nquery_interval = 5\n") == (
        "snoopd.toml: igmp.query_interval: must be greater than igmp.query_response_interval (10.0), "
        "got 5.0 (RFC 3376 §8.3)")
    assert load("[igmp]\nquery_interval = 5\nquery_response_interval = 4.9\n").core.timers.query_interval == 5.0


def test_version_2_limits_max_response_time() -> None:
    assert one_error("[igmp]\nversion = 2\nquery_response_interval = 30.0\n") == (
        "snoopd.toml: igmp.query_response_interval: must be at most 25.5 with igmp.version 2, got 30.0")
    assert load("[igmp]\nversion = 3\nquery_response_interval = 30.0\n").core.timers.query_response_interval == 30
    assert load("[igmp]\nversion = 2\nquery_response_interval = 25.5\n").core.igmp_version == 2


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "snoopd.toml"
    path.write_text('bridge = "br0"\n[igmp]\nrobustness = = 3\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path), {})
    assert str(info.value).startswith(f"{path}: TOML syntax error: ")
    assert "line 3" in str(info.value)


def test_duplicate_toml_key_is_a_syntax_error() -> None:
    message = one_error("[igmp]\nrobustness = 2\nrobustness = 3\n")
    assert message.startswith("snoopd.toml: TOML syntax error: ") and "line 3" in message


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read: No such file"):
        load_config(str(tmp_path / "missing.toml"), BR0)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'bridge = "\xff"\n')
    with pytest.raises(ConfigError, match=r"binary\.toml: not UTF-8"):
        load_config(str(binary), {})


def test_all_errors_are_reported_together() -> None:
    found = errors('[igmp]\nrobustness = 9\nquery_interval = "x"\nbogus = 1\n[querier]\naddress = "1.2.3"\n')
    assert [line.split(": ")[1] for line in found] == [
        "igmp.robustness", "igmp.query_interval", "igmp.bogus", "querier.address"]


def test_cross_field_check_skips_keys_already_in_error() -> None:
    found = errors('[igmp]\nquery_interval = "x"\nquery_response_interval = 200\n')
    assert [line.split(": ")[1] for line in found] == ["igmp.query_interval"]


@pytest.mark.parametrize("value", ["9125", "host:", ":9125", "1.2.3.4:0", "1.2.3.4:65536", "[zz]:1",
                                   "a b:1", "1.2.3.4:9x"])
def test_bad_metrics_listen(value: str) -> None:
    assert one_error(f'metrics_listen = "{value}"\n').startswith('snoopd.toml: metrics_listen: must be "HOST:PORT"')


@pytest.mark.parametrize(("value", "address"), [("127.0.0.1:9125", ("127.0.0.1", 9125)),
                                                ("localhost:80", ("localhost", 80)),
                                                ("0.0.0.0:65535", ("0.0.0.0", 65535))])
def test_metrics_listen(value: str, address: tuple[str, int]) -> None:
    assert load(f'metrics_listen = "{value}"\n').metrics_address == address


def test_bad_socket_path() -> None:
    assert one_error('socket = ""\n').startswith("snoopd.toml: socket: must be a socket path")
    assert one_error(f'socket = "/{"x" * 107}"\n').startswith("snoopd.toml: socket: must be a socket path")


# ---------------------------------------------------------------- bridge and overrides


def test_no_file_needs_a_bridge() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {})
    assert str(info.value) == NO_BRIDGE == "no bridge: give --bridge or set bridge in the config"
    with pytest.raises(ConfigError, match="no bridge"):
        load_config(None, {"bridge": None})


def test_file_without_bridge() -> None:
    with pytest.raises(ConfigError, match="no bridge"):
        load("[igmp]\nrobustness = 3\n", {})
    config = load("[igmp]\nrobustness = 3\n", {}, require_bridge=False)  # check-config
    assert config.bridge is None
    with pytest.raises(ConfigError, match="no bridge"):
        _ = config.socket_path
    assert config.effective()["socket"] is None


def test_overrides_win_over_the_file() -> None:
    text = 'bridge = "br0"\nmode = "kernel"\nsocket = "/tmp/a.sock"\n[querier]\nmode = "always"\n'
    config = load(text, {"bridge": "br1", "mode": "software", "querier": "off", "socket": "/tmp/b.sock"})
    assert config.bridge == "br1" and config.mode is Mode.SOFTWARE
    assert config.core.querier_mode is QuerierMode.OFF and config.socket_path == "/tmp/b.sock"
    # None means "flag not given"; enums are accepted as well as strings
    config = load(text, {"bridge": None, "mode": Mode.SOFTWARE, "querier": QuerierMode.AUTO, "socket": None})
    assert config.bridge == "br0" and config.mode is Mode.SOFTWARE
    assert config.core.querier_mode is QuerierMode.AUTO and config.socket == "/tmp/a.sock"


def test_bad_overrides_name_the_flag() -> None:
    found = errors("", {"bridge": "a/b", "mode": "fast", "querier": "sometimes"})
    assert found[:3] == [
        'command line: --bridge: must be an interface name without \'/\', \':\' or whitespace, got "a/b"',
        'command line: --mode: must be one of "kernel", "software", got "fast"',
        'command line: --querier: must be one of "auto", "off", "always", got "sometimes"',
    ]


def test_unknown_override_is_our_bug() -> None:
    with pytest.raises(ValueError, match="unknown config override"):
        load_config(None, {"bridge": "br0", "robustness": 3})


# ---------------------------------------------------------------- diff


def test_diff_lists_changed_keys() -> None:
    old = load('[ports."eth1"]\nfast_leave = true\n')
    new = load('max_groups = 10\n[igmp]\nlast_member_query_interval = 2\n[querier]\nmode = "off"\n'
               '[ports."eth1"]\nfast_leave = false\n[ports."eth2"]\nrouter = "on"\n'
               '[[static]]\ngroup = "239.1.1.1"\nport = "eth1"\n')
    assert old.diff(new) == ["max_groups", "igmp.last_member_query_interval", "querier.mode",
                             "ports.eth1.fast_leave", "static", "ports.eth2.fast_leave", "ports.eth2.router"]
    assert old.diff(old) == [] and old.diff(load("")) != []


def test_diff_includes_derived_values_that_followed() -> None:
    old, new = load(""), load("[igmp]\nrobustness = 3\n")
    assert old.diff(new) == ["igmp.robustness", "igmp.last_member_query_count", "igmp.startup_query_count",
                             "igmp.membership_interval", "igmp.other_querier_present_interval"]


def test_diff_of_equivalent_spellings_is_empty() -> None:
    # the same effective settings, written differently
    old = load("")
    new = load("[igmp]\nrobustness = 2\nmembership_interval = 260\n[querier]\nstartup_wait = 10\n"
               '[ports."eth1"]\n')
    assert old.diff(new) == ["ports.eth1.fast_leave", "ports.eth1.router"]  # eth1 now configured explicitly
    assert load("").diff(load("[igmp]\nrobustness = 2\nmembership_interval = 260\n")) == []


def test_bridge_change_shows_in_diff() -> None:
    assert load("").diff(load("", {"bridge": "br1"})) == ["bridge", "socket"]
