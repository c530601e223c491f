"""Wire codec: Ethernet/IPv4/IGMP bytes to ``snoopd.core.messages`` and back.

``decode`` is the hot path (hand-written, never raises); ``encode_query`` builds
the queries snoopd sends; ``describe`` explains a frame for ``snoopd decode``.
"""

from snoopd.wire.decode import decode, decode_ip
from snoopd.wire.describe import describe, describe_text, frame_from_hex
from snoopd.wire.encode import encode_ip_query, encode_query

__all__ = [
    "decode",
    "decode_ip",
    "describe",
    "describe_text",
    "encode_ip_query",
    "encode_query",
    "frame_from_hex",
]
