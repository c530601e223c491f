"""The command line: one typer app. ``run`` is the daemon; the other commands are
clients of its control socket, except ``mdb --kernel``, ``check-config`` and
``decode``, which work without one."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

import typer

from snoopd import __version__
from snoopd.lab import lab_app

app = typer.Typer(add_completion=True, no_args_is_help=True, help="snoopd: IGMP snooping for Linux bridges.")
app.add_typer(lab_app, name="lab")

SocketOpt = typer.Option(None, "--socket", help="control socket (default /run/snoopd/<bridge>.sock)")
BridgeOpt = typer.Option(None, "--bridge", "-b", help="bridge name (default: the only daemon's socket)")
JsonOpt = typer.Option(False, "--json", help="print one JSON object")
MDB_PAGE = 200  # above this many entries, mdb prints a summary unless --all


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                               "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pyroute2 logs every netlink message at DEBUG: far too much even for snoopd's debug.
    logging.getLogger("pyroute2").setLevel(max(logging.WARNING, root.level))


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"snoopd: {message}", err=True)
    return typer.Exit(code)


# ----------------------------------------------------------------------- run

@app.command()
def run(
    config: str = typer.Option(None, "--config", "-c", help="TOML config file"),
    bridge: str = typer.Option(None, "--bridge", "-b", help="bridge to snoop"),
    mode: str = typer.Option(None, "--mode", help="kernel | software"),
    querier: str = typer.Option(None, "--querier", help="auto | off | always"),
    socket_path: str = SocketOpt,
    log_level: str = typer.Option("info", "--log-level", help="debug | info | warning | error"),
    log_format: str = typer.Option("text", "--log-format", help="text | json"),
) -> None:
    """Run the daemon in the foreground for one bridge."""
    from snoopd.config import ConfigError, load_config
    from snoopd.daemon import Daemon

    if log_format not in ("text", "json"):
        raise fail(f"--log-format must be text or json, not {log_format!r}", 2)
    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise fail(f"--log-level must be debug, info, warning or error, not {log_level!r}", 2)
    setup_logging(log_level, log_format)
    overrides = {k: v for k, v in {"bridge": bridge, "mode": mode, "querier": querier,
                                    "socket": socket_path}.items() if v is not None}
    try:
        cfg = load_config(config, overrides)
    except ConfigError as exc:
        raise fail(str(exc), 2) from exc
    for warning in cfg.warnings:
        logging.getLogger("snoopd.config").warning("config.warning %s", warning)
    daemon = Daemon(cfg, config, overrides)
    raise typer.Exit(asyncio.run(daemon.run()))


# ------------------------------------------------------------------- clients

def _socket_for(socket_path: str | None, bridge: str | None) -> str:
    import glob

    from snoopd.config import default_socket_path

    if socket_path:
        return socket_path
    if bridge:
        return default_socket_path(bridge)
    found = sorted(glob.glob("/run/snoopd/*.sock"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise fail("snoopd is not running (no socket in /run/snoopd); start it with: snoopd run --bridge BR")
    raise fail(f"several daemons are running ({', '.join(found)}); say which with --bridge or --socket")


def _call(socket_path: str | None, bridge: str | None, cmd: str, args: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    from snoopd.control import request

    path = _socket_for(socket_path, bridge)
    try:
        reply = request(path, cmd, args)
    except FileNotFoundError as exc:
        raise fail(f"snoopd is not running ({path} does not exist)") from exc
    except PermissionError as exc:
        raise fail(f"cannot open {path}: permission denied (root or the socket's group needed)") from exc
    except (ConnectionRefusedError, OSError) as exc:
        raise fail(f"snoopd is not running ({path}: {exc.strerror or exc})") from exc
    if not reply.get("ok"):
        raise fail(str(reply.get("error")))
    result: dict[str, Any] = reply["result"]
    return result


def _print_json(obj: dict[str, Any]) -> None:
    typer.echo(json.dumps(obj, indent=2))


def _table(columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    if title:
        typer.echo(title)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*("-" if v is None else str(v) for v in r))
    console = Console(width=200)
    with console.capture() as captured:
        console.print(table)
    typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


@app.command()
def mdb(
    group: str = typer.Option(None, "--group", "-g", help="only this group"),
    port: str = typer.Option(None, "--port", "-p", help="only this port"),
    kernel: bool = typer.Option(False, "--kernel", help="the kernel bridge MDB, over netlink (no daemon needed)"),
    bridge: str = BridgeOpt,
    show_all: bool = typer.Option(False, "--all", help="print every entry, however many"),
    as_json: bool = JsonOpt,
    socket_path: str = SocketOpt,
) -> None:
    """snoopd's group table (or with --kernel, the kernel's MDB)."""
    if kernel:
        _kernel_mdb(bridge, as_json)
        return
    args = {k: v for k, v in {"group": group, "port": port}.items() if v}
    result = _call(socket_path, bridge, "mdb", args)
    if as_json:
        _print_json(result)
        return
    entries = result["entries"]
    if len(entries) > MDB_PAGE and not show_all:
        _mdb_summary(entries)
        return
    rows = []
    for e in entries:
        fwd = [s["address"] for s in e["sources"] if s["forwarding"]]
        blocked = [s["address"] for s in e["sources"] if not s["forwarding"]]
        srcs = ",".join(fwd) + ("" if not blocked else f" !{','.join(blocked)}")
        rows.append([e["group"], e["port"], e["mode"], srcs or "*", ",".join(e["hosts"]) or "-",
                     e["expires_in"], f"v{e['compat']}", e["origin"]])
    _table(["group", "port", "mode", "sources", "hosts", "expires", "compat", "origin"], rows,
           f"{result['bridge']}: {_entries(len(entries))}")


def _mdb_summary(entries: list[dict[str, Any]]) -> None:
    from collections import Counter

    per_port = Counter(e["port"] for e in entries)
    groups = {e["group"] for e in entries}
    typer.echo(f"{len(entries)} entries, {len(groups)} groups (showing a summary: use --group, --port, --all "
               "or --json for entries)")
    _table(["port", "groups"], [[p, n] for p, n in sorted(per_port.items())])


def _kernel_mdb(bridge: str | None, as_json: bool) -> None:
    from snoopd.adapters.mdb import NetlinkMdb, mdb_entries_to_json

    if not bridge:
        raise fail("mdb --kernel needs --bridge")
    try:
        with NetlinkMdb(bridge) as table:
            entries = mdb_entries_to_json(table.dump())
    except (LookupError, OSError) as exc:
        raise fail(f"bridge {bridge}: {exc}") from exc
    if as_json:
        _print_json({"version": 1, "bridge": bridge, "entries": entries})
        return
    rows = [[e.get("grp"), e.get("port"), e.get("src", "*"), e.get("filter_mode", "-"),
             ",".join(s["address"] for s in e.get("source_list", [])) or "-", e.get("state"),
             e.get("protocol"), ",".join(e.get("flags", [])) or "-",
             e.get("timer") if e.get("state") != "permanent" else None] for e in entries]
    _table(["group", "port", "source", "mode", "source list", "state", "proto", "flags", "timer"], rows,
           f"{bridge}: kernel MDB, {_entries(len(entries))}")


@app.command()
def ports(bridge: str = BridgeOpt, as_json: bool = JsonOpt, socket_path: str = SocketOpt) -> None:
    """Per port: router role, fast-leave, group count, link state."""
    result = _call(socket_path, bridge, "ports")
    if as_json:
        _print_json(result)
        return
    _table(["port", "ifindex", "up", "router", "is router", "fast leave", "groups"],
           [[p["port"], p["ifindex"], p["up"], p["router"], p["is_router"], p["fast_leave"], p["groups"]]
            for p in result["ports"]])


@app.command()
def port(
    name: str = typer.Argument(..., help="port name"),
    fast_leave: str = typer.Option(None, "--fast-leave", help="on | off"),
    router: str = typer.Option(None, "--router", help="auto | on | off"),
    bridge: str = BridgeOpt,
    as_json: bool = JsonOpt,
    socket_path: str = SocketOpt,
) -> None:
    """Change a port at run time; prints the port's new state."""
    if fast_leave is not None and fast_leave not in ("on", "off"):
        raise fail(f"--fast-leave must be on or off, not {fast_leave!r}", 2)
    if router is not None and router not in ("auto", "on", "off"):
        raise fail(f"--router must be auto, on or off, not {router!r}", 2)
    result = _call(socket_path, bridge, "port", {"port": name, "fast_leave": fast_leave, "router": router})
    if as_json:
        _print_json(result)
        return
    _table(["port", "ifindex", "up", "router", "is router", "fast leave", "groups"],
           [[result["port"], result["ifindex"], result["up"], result["router"], result["is_router"],
             result["fast_leave"], result["groups"]]])


@app.command()
def querier(bridge: str = BridgeOpt, as_json: bool = JsonOpt, socket_path: str = SocketOpt) -> None:
    """Who is querier, our role, our address, version, timers."""
    r = _call(socket_path, bridge, "querier")
    if as_json:
        _print_json(r)
        return
    rows = [["role", r["role"]], ["querier", r["querier"]], ["our address", r["our_address"]],
            ["version", r["querier_version"]], ["other querier expires in", r["other_querier_expires_in"]],
            ["routers heard", ",".join(r.get("routers", [])) or "-"]]
    rows += [[k.replace("_", " "), v] for k, v in r["timers"].items()]
    _table(["", ""], rows)


@app.command()
def stats(bridge: str = BridgeOpt, as_json: bool = JsonOpt, socket_path: str = SocketOpt) -> None:
    """Counters: messages by type and version, queries sent, malformed frames, capture drops."""
    r = _call(socket_path, bridge, "stats")
    if as_json:
        _print_json(r)
        return
    rows = [[k, v] for k, v in r["gauges"].items()] + [[k, v] for k, v in r["counters"].items()]
    _table(["counter", "value"], rows, f"{r['bridge']}")


@app.command("check-config")
def check_config(path: str = typer.Argument(..., help="config file")) -> None:
    """Validate a config file offline (exit 0 / 2)."""
    from snoopd.config import ConfigError, load_config

    try:
        cfg = load_config(path, require_bridge=False)
    except ConfigError as exc:
        raise fail(str(exc), 2) from exc
    for warning in cfg.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"{path}: OK")


@app.command()
def decode(
    frame_hex: str = typer.Argument(..., metavar="HEX", help="a captured Ethernet frame in hex"),
    as_json: bool = JsonOpt,
) -> None:
    """Decode one captured frame and print what snoopd understands of it."""
    from snoopd.wire import describe, describe_text, frame_from_hex

    try:
        frame = frame_from_hex(frame_hex)
    except ValueError as exc:
        raise fail(f"not a hex frame: {exc}", 2) from exc
    if as_json:
        info = describe(frame)
        if "version" in info:  # the IGMP version; "version" is the JSON format's own
            info["igmp_version"] = info.pop("version")
        _print_json({"version": 1, **info})
    else:
        typer.echo(describe_text(frame))


@app.command()
def version(as_json: bool = JsonOpt) -> None:
    """snoopd's version, and the Python, scapy and pyroute2 versions it runs with."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as pkg_version

    def v(name: str) -> str:
        try:
            return pkg_version(name)
        except PackageNotFoundError:
            return "not installed"

    info = {"version": 1, "snoopd": __version__, "python": sys.version.split()[0],
            "scapy": v("scapy"), "pyroute2": v("pyroute2"), "typer": v("typer")}
    if as_json:
        _print_json(info)
    else:
        typer.echo(" ".join(f"{k} {val}" for k, val in info.items() if k != "version"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
