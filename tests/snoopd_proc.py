"""Run the real snoopd daemon inside a lab switch namespace, and its CLI from outside."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .lab import Lab, Netns, Process, Switch, wait_until

# Short timers so that tests take seconds (GMI = 2 * 2 + 1 = 5 s, LMQT = 2 * 0.5 = 1 s).
FAST_IGMP = {
    "query_interval": 2.0,
    "query_response_interval": 1.0,
    "last_member_query_interval": 0.5,
}


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def render_config(bridge: str, mode: str, igmp: dict[str, object] | None = None,
                  querier: dict[str, object] | None = None, ports: dict[str, dict[str, object]] | None = None,
                  top: dict[str, object] | None = None, static: list[dict[str, str]] | None = None) -> str:
    head = {"bridge": bridge, "mode": mode, **(top or {})}
    lines = [f"{k} = {toml_value(v)}" for k, v in head.items()]
    lines += ["", "[igmp]"] + [f"{k} = {toml_value(v)}" for k, v in {**FAST_IGMP, **(igmp or {})}.items()]
    lines += ["", "[querier]"] + [f"{k} = {toml_value(v)}" for k, v in (querier or {}).items()]
    for name, settings in (ports or {}).items():
        lines += ["", f'[ports."{name}"]'] + [f"{k} = {toml_value(v)}" for k, v in settings.items()]
    for entry in static or []:
        lines += ["", "[[static]]"] + [f"{k} = {toml_value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


class Snoopd:
    """snoopd running on ``switch``'s br0; ``cli()`` talks to it through its socket."""

    def __init__(self, lab: Lab, switch: Switch, mode: str = "kernel", *, name: str = "snoopd",
                 log_level: str = "debug", wait_ready: bool = True, **config: Any) -> None:
        self.lab, self.switch, self.mode, self.name = lab, switch, mode, name
        self.socket = str(lab.dir / f"{switch.short}-{name}.sock")
        self.config_path = lab.dir / f"{switch.short}-{name}.toml"
        self.write_config(**config)
        self.log_level = log_level
        self.process = self._spawn()
        if wait_ready:
            self.wait_ready()

    def write_config(self, **config: Any) -> None:
        self.config_path.write_text(render_config(self.switch.bridge, self.mode, **config))

    def _spawn(self) -> Process:
        return self.switch.spawn(self.name, [sys.executable, "-m", "snoopd", "run", "--config", str(self.config_path),
                                             "--socket", self.socket, "--log-level", self.log_level])

    @property
    def log(self) -> str:
        return self.process.log_text()

    def wait_ready(self, timeout: float = 15.0, since: int = 0) -> None:
        def ready() -> bool:
            if not self.process.alive():
                raise AssertionError(f"snoopd exited {self.process.returncode}:\n{self.log[-3000:]}")
            return " ready bridge=" in self.log[since:]
        wait_until(ready, timeout, "snoopd to be ready")

    def restart(self) -> None:
        """Start again (same config, same log file, appended)."""
        since = len(self.log)
        self.process = self._spawn()
        self.wait_ready(since=since)

    def cli(self, *args: str, check: bool = True) -> Any:
        """``snoopd ARGS --socket S --json`` from the root namespace; parsed JSON."""
        out = self.cli_raw(*args, "--json", check=check)
        return json.loads(out.stdout) if out.returncode == 0 else out

    def cli_raw(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "snoopd", *args]
        if args and args[0] not in ("check-config", "decode", "version"):
            argv += ["--socket", self.socket]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} -> {proc.returncode}: {proc.stderr}")
        return proc

    def members(self, group: str) -> set[str]:
        """Ports snoopd's table forwards ``group`` to (any source)."""
        return {e["port"] for e in self.cli("mdb", "--group", group)["entries"]}

    def stats(self) -> dict[str, int]:
        counters: dict[str, int] = self.cli("stats")["counters"]
        return counters

    def signal(self, sig: int) -> None:
        os.kill(self.process.pid, sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait; returns the exit status."""
        if self.process.alive():
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            return self.process.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.process.stop()

    def kill9(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.popen.wait(5)


def seen(ns: Netns, iface: str, group: str) -> int:
    """UDP frames to ``group`` that arrived at ``ns``'s ``iface`` (the agent's sniffer)."""
    by_source: dict[str, int] = ns.agent.call("counts")["seen"].get(iface, {}).get(group, {})
    return sum(by_source.values())


def settle(seconds: float) -> None:
    """Let a stream run for a while when counting what does NOT arrive (an absence can
    only be measured over time)."""
    time.sleep(seconds)


__all__ = ["FAST_IGMP", "Path", "Snoopd", "render_config", "seen", "settle"]
