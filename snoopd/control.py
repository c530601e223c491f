"""The control socket: a small versioned JSON-lines protocol on a Unix socket.

Request, one line:  {"v": 1, "cmd": "mdb", "args": {"group": "239.1.1.1"}}
Reply, one line:    {"v": 1, "ok": true, "result": {...}}
                or  {"v": 1, "ok": false, "error": "unknown command 'x'"}

One command table (COMMANDS) drives dispatch and ``help``. It works with socat:
    echo '{"cmd": "stats"}' | socat - UNIX-CONNECT:/run/snoopd/br0.sock
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from snoopd import __version__
from snoopd.core.settings import RouterMode
from snoopd.views import JSON_VERSION, mdb_json, port_json, ports_json, querier_json

if TYPE_CHECKING:
    from snoopd.daemon import Daemon

log = logging.getLogger(__name__)
PROTOCOL_VERSION = 1
MAX_LINE = 64 * 1024


class CommandError(Exception):
    """A bad request: becomes an error reply."""


@dataclass(frozen=True)
class Command:
    handler: Callable[[Daemon, dict[str, Any]], dict[str, Any]]
    help: str
    args: tuple[str, ...] = ()


def _mdb(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    assert d.snooper is not None
    return mdb_json(d.snooper.snapshot(d.now()), d.bridge, args.get("group"), args.get("port"))


def _ports(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    assert d.snooper is not None
    return ports_json(d.snooper.snapshot(d.now()), d.ifindexes())


def _on_off(value: Any, name: str) -> bool | None:
    if value is None:
        return None
    if value in (True, "on"):
        return True
    if value in (False, "off"):
        return False
    raise CommandError(f"{name} must be on or off, got {value!r}")


def _port(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    assert d.snooper is not None
    name = args.get("port")
    if not isinstance(name, str) or name not in d.ifindexes():
        raise CommandError(f"no port {name!r} on bridge {d.bridge}")
    fast_leave = _on_off(args.get("fast_leave"), "fast_leave")
    router = args.get("router")
    if router is not None and router not in {m.value for m in RouterMode}:
        raise CommandError(f"router must be auto, on or off, got {router!r}")
    d.snooper.set_port(name, d.now(), fast_leave=fast_leave, router=RouterMode(router) if router else None)
    d._after_core()
    log.info("port.changed port=%s fast_leave=%s router=%s", name, fast_leave, router)
    return port_json(d.snooper.snapshot(d.now()), d.ifindexes(), name)


def _querier(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    assert d.snooper is not None
    return querier_json(d.snooper.snapshot(d.now()), d.snooper.settings.timers)


def _stats(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    return {"version": JSON_VERSION, "bridge": d.bridge, **d.stats()}


def _version(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    return {"version": JSON_VERSION, "snoopd": __version__, "python": sys.version.split()[0],
            "bridge": d.bridge, "mode": d.config.mode.value, "protocol": PROTOCOL_VERSION}


def _help(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    return {"version": JSON_VERSION,
            "commands": {name: {"help": c.help, "args": list(c.args)} for name, c in COMMANDS.items()}}


COMMANDS: dict[str, Command] = {
    "mdb": Command(_mdb, "snoopd's group table", ("group", "port")),
    "ports": Command(_ports, "per port: router role, fast-leave, group count, link state"),
    "port": Command(_port, "change a port at run time", ("port", "fast_leave", "router")),
    "querier": Command(_querier, "who is querier, our role, our address, version, timers"),
    "stats": Command(_stats, "counters and gauges"),
    "version": Command(_version, "daemon version"),
    "help": Command(_help, "this list"),
}


def handle_line(daemon: Daemon, line: bytes) -> dict[str, Any]:
    """One request line -> one reply object. Never raises."""
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise CommandError("a request is a JSON object")
        version = request.get("v", PROTOCOL_VERSION)
        if version != PROTOCOL_VERSION:
            raise CommandError(f"protocol version {version!r} not supported (this is {PROTOCOL_VERSION})")
        name = request.get("cmd")
        command = COMMANDS.get(name) if isinstance(name, str) else None
        if command is None:
            raise CommandError(f"unknown command {name!r}; try {{\"cmd\": \"help\"}}")
        args = request.get("args") or {}
        if not isinstance(args, dict):
            raise CommandError("args must be a JSON object")
        return {"v": PROTOCOL_VERSION, "ok": True, "result": command.handler(daemon, args)}
    except (ValueError, UnicodeDecodeError) as exc:
        daemon.counters["control.bad_request"] += 1
        return {"v": PROTOCOL_VERSION, "ok": False, "error": f"not a JSON request: {exc}"}
    except CommandError as exc:
        daemon.counters["control.bad_request"] += 1
        return {"v": PROTOCOL_VERSION, "ok": False, "error": str(exc)}
    except Exception as exc:  # our bug: report it, keep serving
        daemon.counters["control.errors"] += 1
        log.exception("control.error")
        return {"v": PROTOCOL_VERSION, "ok": False, "error": f"internal error: {exc}"}


class ControlServer:
    def __init__(self, path: str, daemon: Daemon) -> None:
        self.path = path
        self.daemon = daemon
        self._server: asyncio.AbstractServer | None = None
        self._claimed = False

    def claim(self) -> None:
        """Make sure no other live daemon serves this path; remove a stale socket."""
        from snoopd.daemon import StartupError

        if os.path.exists(self.path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.path)
            except OSError:
                os.unlink(self.path)  # stale: its daemon is gone
                log.info("control.stale_socket_removed path=%s", self.path)
            else:
                raise StartupError(f"another snoopd is running on {self.path}")
            finally:
                probe.close()
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o755, exist_ok=True)
        self._claimed = True

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.path)
        os.chmod(self.path, 0o660)
        sock.listen(16)
        sock.setblocking(False)
        self._task = loop.create_task(self._serve(sock))

    async def _serve(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_unix_server(self._client, sock=sock, limit=MAX_LINE)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(b'{"v": 1, "ok": false, "error": "request line too long"}\n')
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                reply = handle_line(self.daemon, line)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._claimed:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def request(path: str, cmd: str, args: dict[str, Any] | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """Client side: one request, one reply. Raises OSError when nobody listens."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps({"v": PROTOCOL_VERSION, "cmd": cmd, "args": args or {}}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
    reply: dict[str, Any] = json.loads(buf)
    return reply
