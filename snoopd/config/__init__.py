"""snoopd's configuration: a typed schema with defaults, units and ranges.

``load_config(path, overrides)`` reads the TOML file, applies command-line overrides and
returns a frozen :class:`Config` (its ``core`` is the core's :class:`CoreSettings`), or
raises :class:`ConfigError` listing every problem, each naming the file and the key.
``Config.diff`` gives the keys a reload changed. ``render_example`` generates
``configs/snoopd.toml`` from the schema table.
"""

from snoopd.config.example import render_example, render_reference
from snoopd.config.load import NO_BRIDGE, OVERRIDES, load_config, loads_config, parse_config
from snoopd.config.model import Config, ConfigError, Mode, default_socket_path
from snoopd.config.schema import SCHEMA, Kind, Option

__all__ = [
    "NO_BRIDGE",
    "OVERRIDES",
    "SCHEMA",
    "Config",
    "ConfigError",
    "Kind",
    "Mode",
    "Option",
    "default_socket_path",
    "load_config",
    "loads_config",
    "parse_config",
    "render_example",
    "render_reference",
]
