"""The one nextToken scheme of every service the emulator implements itself.

As moto's `moto/utilities/paginator.py` does, a token is botocore's own encoding (TokenEncoder: JSON,
base64) of the position it stands for and a checksum of the request it was issued for. A token that is
not one of ours, that belongs to another operation or to the same operation with other parameters, or
whose position is malformed is a ValidationException naming nextToken: never a KeyError answered as a 500.
The caller's page size (maxResults) is not part of the checksum, so it may change from page to page.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from botocore.paginate import TokenDecoder, TokenEncoder

from .errors import ValidationException

# The largest position a token may carry: SQLite's INTEGER is a signed 64-bit number.
_MAX_POSITION = 2 ** 63 - 1

# Request members that move through the pages rather than define the listing.
_PAGING_MEMBERS = frozenset({"nextToken", "maxResults"})

_NOT_OURS = ("nextToken is not a token this operation issued; pass the nextToken of the previous page "
             "unchanged.")
_OTHER_REQUEST = ("nextToken belongs to a different request; repeat the request with the same parameters as "
                  "the one that returned it.")
_MALFORMED = ("nextToken is not a token this operation issued (its position is malformed); pass the nextToken "
              "of the previous page unchanged.")


def fingerprint(doc: Any) -> str:
    """A stable digest of any JSON-like value (datetimes and bytes by their text)."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def scope(operation: str, params: dict) -> str:
    """What a token is issued for: the operation and every parameter that defines the listing."""
    listing = {k: v for k, v in params.items() if k not in _PAGING_MEMBERS}
    return f"{operation}:{fingerprint(listing)[:16]}"


def encode(scope_: str, position: dict) -> str:
    return TokenEncoder().encode({"s": scope_, **position})


def decode(token: str | None, scope_: str, fields: dict[str, type]) -> dict | None:
    """The position `token` carries (None for the first page), checked against the request it was issued for.

    `fields` names the keys the position must hold and their types (ints must be non-negative).
    """
    if not token:
        return None
    try:
        doc = TokenDecoder().decode(token)
    except Exception:  # base64, UTF-8, JSON or botocore's own key decoding: any of them means "not ours"
        raise ValidationException(_NOT_OURS) from None
    if not isinstance(doc, dict) or "s" not in doc:
        raise ValidationException(_NOT_OURS)
    if doc["s"] != scope_:
        raise ValidationException(_OTHER_REQUEST)
    for key, kind in fields.items():
        value = doc.get(key)
        if isinstance(value, bool):
            ok = False
        elif kind is int:
            # At most SQLite's largest integer: a bigger offset reached SQLite's OFFSET and failed there (500).
            ok = isinstance(value, int) and 0 <= value <= _MAX_POSITION
        elif kind is float:
            ok = isinstance(value, (int, float)) and math.isfinite(value) and abs(value) <= _MAX_POSITION
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise ValidationException(_MALFORMED)
    return doc


def decode_offset(token: str | None, scope_: str) -> int:
    """The offset an offset-paged token carries (0 for the first page)."""
    doc = decode(token, scope_, {"o": int})
    return doc["o"] if doc else 0


def page(items: list, params: dict, key: str, scope_: str, default_size: int) -> dict:
    """One page of `items` under `key`, with a nextToken when more follow."""
    size = params.get("maxResults") or default_size
    start = decode_offset(params.get("nextToken"), scope_)
    out: dict[str, Any] = {key: items[start:start + size]}
    if start + size < len(items):
        out["nextToken"] = encode(scope_, {"o": start + size})
    return out
