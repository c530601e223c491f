"""Small wire-level helpers shared by the decoder and the encoder.

* ``inet_checksum`` — the Internet checksum (RFC 1071) used by IPv4 headers, IGMP
  (RFC 2236 §2.3, RFC 3376 §4.1.2 / §4.2.2) and PIM (RFC 7761 §4.9).
* ``decode_float_code`` / ``encode_float_code`` — the 8-bit floating-point format
  of the IGMPv3 Max Resp Code and QQIC fields (RFC 3376 §4.1.1, §4.1.7).
* ``ipv4_multicast_mac`` — RFC 1112 §6.4 mapping of a group to its Ethernet address.
"""

from __future__ import annotations

from bisect import bisect_right

__all__ = [
    "FLOAT_CODE_MAX",
    "checksum_ok",
    "decode_float_code",
    "encode_float_code",
    "inet_checksum",
    "ipv4_multicast_mac",
]


def inet_checksum(data: bytes | bytearray | memoryview) -> int:
    """Return the 16-bit one's complement of the one's complement sum of ``data``.

    An odd trailing byte is padded with a zero byte (RFC 1071 §4.1). To verify a
    message that carries its checksum, check ``inet_checksum(message) == 0``
    (or use ``checksum_ok``).

    Implementation: reading the data as one big-endian integer ``n``, each 16-bit
    word is a digit in base 2**16, and 2**16 ≡ 1 (mod 0xFFFF); so the end-around
    carry sum of the words is ``n % 0xFFFF``, except that a non-zero multiple of
    0xFFFF folds to 0xFFFF (not 0), and only all-zero data sums to 0. This runs in C
    and is ~20 times faster than a word loop in Python.
    """
    raw = bytes(data)
    if len(raw) & 1:
        raw += b"\x00"
    n = int.from_bytes(raw, "big")
    folded = n % 0xFFFF
    if folded == 0 and n != 0:
        folded = 0xFFFF
    return ~folded & 0xFFFF


def checksum_ok(data: bytes) -> bool:
    """True if ``data`` (checksum field included) sums to 0xFFFF, i.e. verifies."""
    if len(data) & 1:
        data += b"\x00"
    n = int.from_bytes(data, "big")
    return n != 0 and n % 0xFFFF == 0


def decode_float_code(code: int) -> int:
    """Value of an IGMPv3 Max Resp Code or QQIC byte (RFC 3376 §4.1.1, §4.1.7).

    ``code < 128``: the value itself. Otherwise ``1 | exp(3) | mant(4)`` stands for
    ``(mant | 0x10) << (exp + 3)``. The unit is the field's: 1/10 s for Max Resp
    Code, seconds for QQIC.
    """
    if code < 0x80:
        return code
    return ((code & 0x0F) | 0x10) << (((code >> 4) & 0x07) + 3)


# Values of codes 0..255. They increase strictly with the code (each exponent
# step doubles the range of the one before), so encoding is a binary search.
_FLOAT_CODE_VALUES: tuple[int, ...] = tuple(decode_float_code(c) for c in range(256))
FLOAT_CODE_MAX = _FLOAT_CODE_VALUES[-1]  # 31744


def encode_float_code(value: int) -> int:
    """The code for ``value`` (in the field's unit): the exact value if it can be
    represented, else the next lower representable value, capped at 31744 (0xFF).

    Rounding down (never up) means a querier never announces a longer response
    time or query interval than it uses; the same rule the snoopd reference
    (§3.5) gives for RFC 3376 §4.1.1 / §4.1.7 encoders.
    """
    if value <= 0:
        return 0
    return bisect_right(_FLOAT_CODE_VALUES, value) - 1


def ipv4_multicast_mac(address: bytes) -> bytes:
    """01:00:5e + low 23 bits of the 4-byte group ``address`` (RFC 1112 §6.4)."""
    return b"\x01\x00\x5e" + bytes((address[1] & 0x7F, address[2], address[3]))
