"""The demo lab: ``snoopd lab demo|up|down|status|join|watch`` (see snoopd/lab/commands.py).

Hooked into the main CLI with ``app.add_typer(lab_app, name="lab")``; also runs on its own
as ``python -m snoopd.lab`` (scripts/demo uses that).
"""

from snoopd.lab.commands import lab_app

__all__ = ["lab_app"]
