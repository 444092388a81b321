"""TWS API framing: length-prefixed messages of NUL-terminated fields."""

from __future__ import annotations

import asyncio
import struct

API_PREFIX = b"API\0"
# Larger frames are a broken or hostile client, not a TWS API request.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class ProtocolError(Exception):
    pass


def encode_field(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def encode_message(*fields: object) -> bytes:
    """One framed message; each field is written as text followed by NUL."""
    return frame("".join(encode_field(f) + "\0" for f in fields).encode())


def encode_raw(text_fields: str) -> bytes:
    """Frame already NUL-terminated field text (for large messages built in bulk)."""
    return frame(text_fields.encode())


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    size = struct.unpack(">I", await reader.readexactly(4))[0]
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {size} bytes")
    return await reader.readexactly(size)


async def read_message(reader: asyncio.StreamReader) -> list[str]:
    """The fields of the next message (raises IncompleteReadError at end of stream)."""
    fields = (await read_frame(reader)).decode(errors="backslashreplace").split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    return fields


async def read_handshake(reader: asyncio.StreamReader) -> tuple[int, int]:
    """`API\\0` then `v<min>..<max>[ options]`: the client's supported version range."""
    if await reader.readexactly(len(API_PREFIX)) != API_PREFIX:
        raise ProtocolError("missing API prefix")
    text = (await read_frame(reader)).decode(errors="replace").strip("\0")
    versions = text.split(" ", 1)[0]
    if not versions.startswith("v"):
        raise ProtocolError(f"bad version string {text!r}")
    low, _, high = versions[1:].partition("..")
    try:
        return int(low), int(high or low)
    except ValueError as exc:
        raise ProtocolError(f"bad version string {text!r}") from exc
