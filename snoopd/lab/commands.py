"""``snoopd lab``: the demo lab of network namespaces (demo, up, down, status, join, watch)."""

from __future__ import annotations

import signal
import subprocess
import sys

import typer

from snoopd.lab.net import (
    AGENT,
    HOSTS,
    ROUTER,
    LabError,
    cmdline,
    down,
    lab_dirs,
    lab_namespaces,
    live_processes,
    ns_name,
    owner_alive,
    read_state,
)

lab_app = typer.Typer(no_args_is_help=True, help="A throwaway lab of network namespaces to try snoopd on "
                      "(root; namespaces snoopd-demo-*, addresses 192.0.2.0/24).")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"snoopd lab: {message}", err=True)
    return typer.Exit(code)


@lab_app.command()
def demo(
    quick: bool = typer.Option(False, "--quick", help="a ~20 s tour instead of ~1 min"),
    keep: bool = typer.Option(False, "--keep", help="keep the lab up at the end for exploring, until Enter"),
    router: bool = typer.Option(False, "--router", help="add a router (the kernel bridge querier) on port pq"),
) -> None:
    """The scripted tour: build a lab, run snoopd, join and leave, show what each host receives."""
    from snoopd.lab.tour import run_demo

    raise typer.Exit(run_demo(quick=quick, keep=keep, router=router))


@lab_app.command()
def up(router: bool = typer.Option(False, "--router", help="add a router (the kernel bridge querier)")) -> None:
    """Build the lab, start snoopd and a sender, and leave them running (until `snoopd lab down`)."""
    from snoopd.lab.tour import run_up

    try:
        raise typer.Exit(run_up(router=router))
    except LabError as exc:
        raise _fail(str(exc)) from exc


@lab_app.command("down")
def down_cmd(
    run_token: str = typer.Option(None, "--run", hidden=True, help="only the lab of this run of scripts/demo"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print nothing when there is nothing to do"),
) -> None:
    """Tear down whatever demo labs left: their processes (by PID), namespaces, temp files."""
    try:
        done = down(run_token)
    except LabError as exc:
        raise _fail(str(exc)) from exc
    for line in done:
        typer.echo(line)
    if not done and not quiet:
        typer.echo("no demo lab is up")


@lab_app.command()
def status() -> None:
    """What demo labs exist: namespaces, processes, snoopd's socket."""
    from snoopd.control import request

    namespaces = lab_namespaces()
    dirs = lab_dirs()
    if not namespaces and not dirs:
        typer.echo("no demo lab is up")
        return
    typer.echo(f"namespaces: {' '.join(namespaces) or '-'}")
    for directory in dirs:
        state = read_state(directory)
        kind = f"demo tour (pid {state.get('owner')})" if state.get("owner") else "snoopd lab up"
        if state.get("owner") and not owner_alive(state):
            kind += ", owner gone: `snoopd lab down` cleans up"
        typer.echo(f"lab {directory} ({kind})")
        for p in live_processes(state):
            typer.echo(f"   {p['name']:<10} pid {p['pid']:<8} {' '.join(cmdline(int(p['pid'])))}")
        sock = state.get("socket")
        if sock:
            try:
                reply = request(sock, "querier", timeout=2.0)
                mdb = request(sock, "mdb", timeout=2.0)
                typer.echo(f"   snoopd answers on {sock}: {reply['result']['role']}, "
                           f"{len(mdb['result']['entries'])} table entries")
            except OSError:
                typer.echo(f"   snoopd does not answer on {sock}")


def _host_ns(host: str) -> str:
    known = [h.name for h in (*HOSTS, ROUTER)]
    if host not in known:
        raise _fail(f"no host {host!r} in the lab (hosts: {', '.join(known)})", 2)
    name = ns_name(host)
    if name not in lab_namespaces():
        raise _fail(f"namespace {name} does not exist: start the lab with `snoopd lab up`")
    return name


def _agent_watch(host: str, joins: list[str]) -> None:
    name = _host_ns(host)
    argv = ["ip", "netns", "exec", name, sys.executable, "-u", str(AGENT), "--tag", host, "watch"]
    for spec in joins:
        argv += ["--join", spec]
    # Ctrl-C reaches the agent from the terminal (it leaves, then exits); SIGTERM and SIGHUP
    # sent to us are passed on, so that it never outlives this command.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proc = subprocess.Popen(argv, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: proc.send_signal(signum))
    status = proc.wait()
    raise typer.Exit(0 if status in (0, -signal.SIGINT, -signal.SIGTERM, 130) else status)


@lab_app.command()
def join(
    host: str = typer.Argument(..., help="h1, h2 or h3 (or rq with --router)"),
    group: str = typer.Argument(..., help="multicast group, e.g. 239.1.1.1"),
    source: str = typer.Option(None, "--source", "-s", help="source-specific join (IGMPv3 INCLUDE)"),
) -> None:
    """HOST joins GROUP through its kernel and prints what arrives each second; Ctrl-C leaves."""
    _agent_watch(host, [f"{group}@{source}" if source else group])


@lab_app.command()
def watch(host: str = typer.Argument(..., help="h1, h2 or h3 (or rq with --router)")) -> None:
    """Print once a second what arrives at HOST's port, joined or not (Ctrl-C stops)."""
    _agent_watch(host, [])


__all__ = ["lab_app"]
