"""Human- and JSON-friendly views of what ``decode`` makes of a frame.

Backs ``snoopd decode HEX``: ``describe`` returns a JSON-serialisable dict,
``describe_text`` a short multi-line rendering of the same, and
``frame_from_hex`` reads the hex dumps people paste (spaces, colons, ``0x``).
"""

from __future__ import annotations

import math
import string

from snoopd.core.messages import Leave, Malformed, Message, Query, Report, RouterHello
from snoopd.wire.decode import decode

__all__ = ["describe", "describe_text", "frame_from_hex"]

_HEX_DIGITS = frozenset(string.hexdigits)


def frame_from_hex(text: str) -> bytes:
    """Bytes from a hex dump; ignores whitespace, ``:``, ``-``, ``.`` and ``0x`` prefixes.

    Raises ``ValueError`` on anything else or an odd number of digits.
    """
    cleaned = text.replace("0x", " ").replace("0X", " ")
    for separator in ":-.,":
        cleaned = cleaned.replace(separator, " ")
    digits = "".join(cleaned.split())
    if not set(digits) <= _HEX_DIGITS or len(digits) % 2:
        raise ValueError("expected an even number of hexadecimal digits")
    return bytes.fromhex(digits)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _ethernet(buf: bytes) -> tuple[dict[str, object] | None, int]:
    """Ethernet header fields and the offset of the network header."""
    if len(buf) < 14:
        return None, 0
    fields: dict[str, object] = {"destination": _mac(buf[0:6]), "source": _mac(buf[6:12])}
    ethertype = int.from_bytes(buf[12:14], "big")
    offset = 14
    if ethertype == 0x8100 and len(buf) >= 18:
        fields["vlan"] = int.from_bytes(buf[14:16], "big") & 0x0FFF
        ethertype = int.from_bytes(buf[16:18], "big")
        offset = 18
    fields["ethertype"] = f"0x{ethertype:04x}"
    return fields, offset


def _query_variant(query: Query) -> str:
    # RFC 3376 §4.1.9: the three kinds of query.
    if query.is_general:
        return "general"
    return "group-and-source-specific" if query.sources else "group-specific"


def _message_fields(message: Message | Malformed) -> dict[str, object]:
    if isinstance(message, Malformed):
        return {"kind": "malformed", "reason": message.reason.value, "detail": message.detail}
    if isinstance(message, RouterHello):
        holdtime: object = message.holdtime
        if message.holdtime is not None and math.isinf(message.holdtime):
            holdtime = "infinite"  # PIM holdtime 0xFFFF; JSON has no infinity
        return {
            "kind": "router_hello",
            "protocol": message.protocol.value,
            "source": message.source,
            "destination": message.destination,
            "holdtime": holdtime,
        }
    common = {
        "source": message.source,
        "destination": message.destination,
        "ttl": message.ttl,
        "router_alert": message.router_alert,
    }
    if isinstance(message, Leave):
        return {"kind": "leave", "version": 2, "group": message.group, **common}
    if isinstance(message, Report):
        records = [
            {
                "type": record.record_type.name,
                "type_code": int(record.record_type),
                "group": record.group,
                "sources": list(record.sources),
                "aux_data": record.aux_data.hex(),
            }
            for record in message.records
        ]
        return {"kind": "report", "version": message.version, **common, "records": records}
    return {
        "kind": "query",
        "version": message.version,
        "variant": _query_variant(message),
        "group": message.group,
        **common,
        "max_response_time": message.max_response_time,
        "sources": list(message.sources),
        "suppress_router_processing": message.suppress_router_processing,
        "qrv": message.qrv,
        "query_interval": message.query_interval,
    }


def describe(
    frame: bytes | bytearray | memoryview, *, require_router_alert: bool = False
) -> dict[str, object]:
    """What snoopd understands of ``frame``, as a JSON-serialisable dict.

    Always has ``kind`` (report, leave, query, router_hello or malformed) and
    ``length``; ``ethernet`` when the frame has an Ethernet header. IGMPv3
    queries also show their raw ``max_response_code`` and ``qqic`` bytes (useful
    with senders that write them linearly, like the Linux bridge).
    """
    buf = bytes(frame)
    message = decode(buf, require_router_alert=require_router_alert)
    result: dict[str, object] = {"length": len(buf)}
    ethernet, offset = _ethernet(buf)
    if ethernet is not None:
        result["ethernet"] = ethernet
    result.update(_message_fields(message))
    if isinstance(message, Query) and message.version == 3:
        igmp_at = offset + (buf[offset] & 0x0F) * 4  # decode() validated the header
        result["max_response_code"] = buf[igmp_at + 1]
        result["qqic"] = buf[igmp_at + 9]
    return result


def _header_line(info: dict[str, object]) -> str:
    line = (
        f"IGMPv{info['version']} {info['kind']} {info['source']} > {info['destination']}, TTL {info['ttl']}"
    )
    return line + (", router alert" if info["router_alert"] else ", no router alert")


def _body_lines(info: dict[str, object]) -> list[str]:
    kind = info["kind"]
    if kind == "malformed":
        return [f"malformed: {info['reason']}" + (f" ({info['detail']})" if info["detail"] else "")]
    if kind == "router_hello":
        holdtime = info["holdtime"]
        shown = "not given" if holdtime is None else holdtime if holdtime == "infinite" else f"{holdtime} s"
        protocol = str(info["protocol"]).upper()
        return [f"{protocol} router hello {info['source']} > {info['destination']}, holdtime {shown}"]
    lines = [_header_line(info)]
    if kind == "leave":
        lines.append(f"  leave group {info['group']}")
    elif kind == "report":
        records = info["records"]
        assert isinstance(records, list)
        for record in records:
            sources = ", ".join(record["sources"]) or "no sources"
            lines.append(f"  {record['type']} ({record['type_code']}) {record['group']}: {sources}")
            if record["aux_data"]:
                lines.append(f"    aux data {record['aux_data']}")
    else:
        lines.append(f"  {info['variant']} query, group {info['group']}")
        timing = f"  max response time {info['max_response_time']} s"
        if info["version"] == 3:
            timing += f" (code 0x{info['max_response_code']:02x}), query interval {info['query_interval']} s"
            timing += f" (QQIC 0x{info['qqic']:02x}), QRV {info['qrv']}"
            timing += ", S flag" if info["suppress_router_processing"] else ""
        lines.append(timing)
        if info["sources"]:
            query_sources = info["sources"]
            assert isinstance(query_sources, list)
            lines.append("  sources " + ", ".join(query_sources))
    return lines


def describe_text(frame: bytes | bytearray | memoryview, *, require_router_alert: bool = False) -> str:
    """A readable multi-line rendering of ``describe(frame)``."""
    info = describe(frame, require_router_alert=require_router_alert)
    lines = []
    ethernet = info.get("ethernet")
    if isinstance(ethernet, dict):
        vlan = f", VLAN {ethernet['vlan']}" if "vlan" in ethernet else ""
        lines.append(
            f"Ethernet {ethernet['source']} > {ethernet['destination']}{vlan}, "
            f"type {ethernet['ethertype']}, {info['length']} bytes"
        )
    else:
        lines.append(f"{info['length']} bytes")
    return "\n".join(lines + _body_lines(info))
