"""What the emulator reads off a WSGI request before any service sees it: the raw path and the body."""
from __future__ import annotations

from .errors import ValidationException, cannot_parse


def raw_path(environ: dict) -> str:
    """The path as the client sent it, still percent-encoded (AgentCore's ARNs carry %2F), without the query."""
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
    path = raw_uri.split("?", 1)[0]
    if path.startswith(("http://", "https://")):  # an absolute URI (proxy form): keep the path only
        path = "/" + path.split("/", 3)[-1]
    return path


def read_body(environ: dict) -> bytes:
    """The whole request body, by Content-Length or to the end of a chunked stream."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        if not length.strip().isdigit():
            raise ValidationException(f"The Content-Length header {length!r} is not a non-negative integer.")
        return _read(stream, int(length))
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked" or environ.get("wsgi.input_terminated"):
        return _read(stream, -1)
    return b""


def _read(stream, size: int) -> bytes:
    # werkzeug's chunked reader raises IOError("Invalid chunk header") (and a ClientDisconnected, a
    # BadRequest) mid-read: the client's framing is at fault, so it is a 400, never the 500 it was.
    from werkzeug.exceptions import HTTPException

    try:
        return stream.read(size) if size >= 0 else stream.read()
    except (OSError, ValueError, HTTPException) as exc:
        raise cannot_parse(f"The request body could not be read: {exc} (check its Content-Length or its "
                           "Transfer-Encoding: chunked framing).") from None
