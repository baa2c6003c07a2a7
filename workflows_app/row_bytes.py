"""The bytes of a checkpoint row: compact JSON, compressed.

``pack`` writes Zstandard frames (level 1). ``unpack`` also reads the zlib streams that rows
written before Zstandard hold; each format is recognised by its first bytes, so old rows
need no migration. Zstandard because a restore decompresses whole states, and it
decompresses much faster than zlib for rows a little larger (the README's performance
section has the figures).

``unpack`` parses with msgspec, faster than ``json.loads`` on large states and exact as it
is: integers of any size stay ints, floats round-trip. What msgspec refuses
(a lone surrogate escape, which ``json.dumps`` writes for such strings) falls back to
``json.loads``, so the result is always what ``json.loads`` would give. Either way parsing
builds JSON natives only; nothing is imported or called.
"""

from __future__ import annotations

import json
import threading
import zlib
from typing import Any

import msgspec
import zstandard

ZSTD_LEVEL = 1
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZLIB_FIRST_BYTE = 0x78


class CorruptBytes(ValueError):
    """The bytes do not decompress, or do not hold JSON."""


# Zstandard contexts may be shared by threads but not used by two at once; daphne's
# threads read checkpoints too, so each thread keeps its own.
_contexts = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    try:
        return _contexts.compressor
    except AttributeError:
        _contexts.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        return _contexts.compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    try:
        return _contexts.decompressor
    except AttributeError:
        _contexts.decompressor = zstandard.ZstdDecompressor()
        return _contexts.decompressor


_decoder = msgspec.json.Decoder()  # untyped: JSON natives only


def encode(value: Any) -> bytes:
    """Compact JSON with ASCII escapes, so every str is storable, lone surrogates included."""
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def pack(encoded: bytes) -> bytes:
    """Compress ``encoded`` (from ``encode``) for storage."""
    return _compressor().compress(encoded)


def unpack(data: bytes) -> Any:
    """The JSON value stored in ``data`` (from ``pack``, or zlib from older rows). Raises
    ``CorruptBytes`` saying what is wrong."""
    raw = _decompress(data)
    try:
        return _decoder.decode(raw)
    except msgspec.DecodeError:
        pass  # not necessarily corrupt: json.loads has the last word
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise CorruptBytes(f"not JSON: {error}") from None


def _decompress(data: bytes) -> bytes:
    if data[:4] == _ZSTD_MAGIC:
        try:
            return _decompressor().decompress(data)
        except zstandard.ZstdError as error:
            raise CorruptBytes(f"does not decompress: {error}") from None
    if data[:1] and data[0] == _ZLIB_FIRST_BYTE:
        try:
            return zlib.decompress(data)
        except zlib.error as error:
            raise CorruptBytes(f"does not decompress: {error}") from None
    raise CorruptBytes("neither a Zstandard frame nor a zlib stream")
