"""AWS event-stream framing (application/vnd.amazon.eventstream), as botocore's decoder reads it.

Each message: prelude (total length, headers length, CRC32 of those 8 bytes), headers, payload,
CRC32 of everything before it. Headers here are all strings (type 7), which is all a `chunk` needs.
"""
from __future__ import annotations

import base64
import json
import struct
import zlib

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7


def _header(name: str, value: str) -> bytes:
    raw_name = name.encode("utf-8")
    raw_value = value.encode("utf-8")
    return struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", _STRING, len(raw_value)) + raw_value


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message."""
    raw_headers = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(raw_headers))
    prelude += struct.pack("!I", zlib.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + raw_headers + payload
    return message + struct.pack("!I", zlib.crc32(message) & 0xFFFFFFFF)


def chunk_event(anthropic_event: dict) -> bytes:
    """A bedrock-runtime `chunk` event carrying one Anthropic stream event, base64 in `bytes`."""
    inner = base64.b64encode(json.dumps(anthropic_event).encode("utf-8")).decode("ascii")
    return frame(
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"},
        json.dumps({"bytes": inner}).encode("utf-8"),
    )


def exception_event(code: str, message: str, **fields) -> bytes:
    """A modelled exception inside the stream (e.g. `modelStreamErrorException`); `fields` are its other members."""
    return frame(
        {":exception-type": code, ":content-type": "application/json", ":message-type": "exception"},
        json.dumps({"message": message, **fields}).encode("utf-8"),
    )
