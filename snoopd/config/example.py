"""Text generated from the schema table: the example config and the option reference."""

from __future__ import annotations

from snoopd.config.schema import SCHEMA, SECTION_HELP, Kind, Option, dotted, options, show

_COMMENT_COLUMN = 38

_HEADER = """\
# snoopd configuration, every option at its default.
#
# Generated from the schema table in snoopd/config/schema.py: python -m snoopd.config example
# Lines commented out show options without a fixed default: their default is derived from
# other options (and follows them when those change), or the feature is off. Uncomment a
# line to set it. Times are seconds; floats are allowed everywhere a time is.
"""


def _line(text: str, comment: str) -> str:
    return f"{text.ljust(max(_COMMENT_COLUMN, len(text) + 2))}# {comment}" if comment else text


def _comment(opt: Option) -> str:
    text = opt.help
    if opt.unit and opt.unit not in opt.help:
        text += f" ({opt.unit})"
    if opt.derived:
        text += f"; default: {opt.derived}"
    return text


def _option_line(opt: Option, commented: bool | None = None) -> str:
    if commented is None:
        commented = opt.default is None
    return _line(f"{'# ' if commented else ''}{opt.key} = {show(opt.shown)}", _comment(opt))


def render_example() -> str:
    """The example config (``configs/snoopd.toml``): every option at its default, one
    comment each."""
    out = [_HEADER]
    out += [_option_line(o) for o in options("").values()]
    for section in ("igmp", "querier"):
        out += ["", _line(f"[{section}]", SECTION_HELP[section])]
        out += [_option_line(o) for o in options(section).values()]
    out += ["", _line("[ports.default]", SECTION_HELP["ports"])]
    out += [_option_line(o) for o in options("ports").values()]
    out += ["", _line('# [ports."eth1"]', SECTION_HELP["ports.NAME"]), "# fast_leave = true"]
    out += ["", _line("# [[static]]", SECTION_HELP["static"])]
    out += [_option_line(o, commented=True) for o in options("static").values()]
    return "\n".join(out) + "\n"


def _allowed(opt: Option) -> str:
    if opt.choices:
        return " / ".join(show(c) for c in opt.choices)
    if opt.min is not None and opt.max is not None:
        return f"{show(opt.min)} .. {show(opt.max)}"
    if opt.above is not None:
        return f"> {show(opt.above)}" + (f", <= {show(opt.max)}" if opt.max is not None else "")
    if opt.min is not None:
        return f">= {show(opt.min)}"
    return {
        Kind.IFNAME: "interface name (1-15 chars, no '/', ':' or space)",
        Kind.IPV4_OR_AUTO: '"auto" or unicast IPv4',
        Kind.IPV4_UNICAST: "unicast IPv4",
        Kind.IPV4_GROUP: "IPv4 multicast outside 224.0.0.0/24",
        Kind.LISTEN: '"HOST:PORT"',
        Kind.PATH: "path of at most 107 bytes",
    }.get(opt.kind, "")


def _key(opt: Option) -> str:
    if opt.section == "ports":
        return f"ports.{{default,NAME}}.{opt.key}"
    if opt.section == "static":
        return f"static[].{opt.key}"
    return dotted(opt.section, opt.key) if opt.section else opt.key


def render_reference() -> str:
    """A Markdown table of every option, for the docs."""
    rows = ["| key | type | default | allowed | unit | meaning |", "| --- | --- | --- | --- | --- | --- |"]
    for opt in SCHEMA:
        kind = "float" if opt.kind is Kind.SECONDS else "integer" if opt.kind is Kind.INT else \
            "boolean" if opt.kind is Kind.BOOL else "string"
        default = (show(opt.default) if opt.default is not None else opt.derived or
                   ("required" if opt.required else "unset"))
        cells = [f"`{_key(opt)}`", kind, default, _allowed(opt), opt.unit, opt.help]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"
