"""HTTP/1.1 on the wire, without I/O: one connection's bytes in, complete bounded requests or refusals out.

``HttpConnection`` is fed whatever the socket delivered and hands back, one at a time, the events
the server acts on: a complete request (line, headers and body, every size capped), an interim
``100 Continue``, a refusal to write before closing, or the end of the connection. Nothing here
raises on input: any byte sequence ends in a request, a JSON refusal or a close (a property test
feeds it arbitrary bytes). The state machine is small on purpose: one request at a time, bodies
only with ``Content-Length`` (chunked uploads get 411), no upgrades.

Written by hand rather than with h11: h11 costs 65-90 µs per request on this machine, a third of
the whole budget of a health check (issue 16: p50 ≤ 0.2 ms); this parser costs 1-2 µs.
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass
from http import HTTPStatus

MAX_BODY = 1024 * 1024  # bytes; a dynamic config is a few kB
# A body over MAX_BODY but under this is read and dropped before the 413, so the client, still
# sending, sees the answer instead of a reset connection; a bigger one gets the answer and a close.
DRAIN_LIMIT = 16 * MAX_BODY
MAX_HEAD = 32 * 1024  # request line and headers together
MAX_REQUEST_LINE = 8 * 1024
MAX_HEADERS = 64
# Methods the API knows how to refuse properly (405 with Allow); anything else is 501.
METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE", "CONNECT"})
_VERSIONS = {b"HTTP/1.1": True, b"HTTP/1.0": False}  # version -> keep-alive by default
# Character classes as deletion tables: ``raw.translate(None, table)`` is empty when every byte of
# ``raw`` is in the class, a check done in C rather than byte by byte in Python.
_TOKEN = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VISIBLE = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))  # a request target's bytes
_FIELD_VALUE = b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))  # no CTL but tab


def _only(raw: bytes, allowed: bytes) -> bool:
    return not raw.translate(None, allowed)


_SINGLE = ("content-length", "content-type", "authorization", "transfer-encoding", "expect")
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str  # as sent: path and query, e.g. "/replica?lag=16MB"
    keep_alive: bool  # whether the connection may carry another request after this one
    content_length: int = 0
    content_type: str | None = None
    authorization: str | None = None
    if_match: str | None = None  # config writes' compare-and-set on GET /config's ETag
    expect_continue: bool = False


@dataclass(frozen=True, slots=True)
class Ready:
    """A complete request: answer it, then call ``HttpConnection.answered``."""

    head: RequestHead
    body: bytes


@dataclass(frozen=True, slots=True)
class Interim:
    """Bytes to write now, before the request is complete (``100 Continue``)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Refuse:
    """Write ``data``; then close unless ``keep_alive`` (a drained 413 keeps the connection)."""

    data: bytes
    keep_alive: bool = False


class Need(enum.Enum):
    DATA = "more bytes are needed"
    CLOSE = "the client is gone or done: close quietly"


Event = Ready | Interim | Refuse | Need


class _Phase(enum.Enum):
    HEAD = "reading the request line and headers"
    BODY = "reading the body"
    DRAIN = "dropping an oversized body before answering 413"
    ANSWERING = "a request is being answered"
    DONE = "closing"


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class HttpConnection:
    """One connection's request stream. Feed ``receive``; take events from ``next_event``."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._phase = _Phase.HEAD
        self._head: RequestHead | None = None
        self._remaining = 0  # body (or drained) bytes still to come
        self._refusal = b""  # the 413 to write once an oversized body is drained
        self._eof = False

    @property
    def idle(self) -> bool:
        """Between requests with nothing buffered: a keep-alive connection that may be closed."""
        return self._phase is _Phase.HEAD and not self._buffer

    def receive(self, data: bytes) -> None:
        """Bytes from the socket; ``b""`` means the client closed its side."""
        if not data:
            self._eof = True
        elif self._phase is _Phase.DRAIN:
            taken = min(len(data), self._remaining)
            self._remaining -= taken
            self._buffer += data[taken:]  # a pipelined next request
        elif self._phase is not _Phase.DONE:
            self._buffer += data

    def next_event(self) -> Event:
        try:
            return self._next()
        except _Refused as refused:
            self._phase = _Phase.DONE
            return Refuse(error_bytes(refused.status, refused.message))

    def answered(self, keep_alive: bool) -> None:
        """The answer to the last ``Ready`` is written; the next request may be read."""
        self._head = None
        self._phase = _Phase.HEAD if keep_alive else _Phase.DONE

    def _next(self) -> Event:
        phase = self._phase
        if phase is _Phase.HEAD:
            return self._read_head()
        if phase is _Phase.BODY:
            return self._read_body()
        if phase is _Phase.DRAIN:
            if self._remaining == 0:
                self._phase = _Phase.DONE if self._eof else _Phase.ANSWERING
                return Refuse(self._refusal, keep_alive=not self._eof)
            return Need.CLOSE if self._eof else Need.DATA
        return Need.CLOSE if phase is _Phase.DONE or self._eof else Need.DATA

    def _read_head(self) -> Event:
        buffer = self._buffer
        while buffer[:2] == b"\r\n" or buffer[:1] == b"\n":  # RFC 9112 2.2: ignore blank lines first
            del buffer[: 2 if buffer[:1] == b"\r" else 1]
        end, skip = _head_end(buffer)
        line_end = buffer.find(b"\n")
        if (line_end < 0 and len(buffer) > MAX_REQUEST_LINE) or line_end > MAX_REQUEST_LINE:
            raise _Refused(414, f"the request line exceeds {MAX_REQUEST_LINE} bytes")
        if (end < 0 and len(buffer) > MAX_HEAD) or end > MAX_HEAD:
            raise _Refused(431, f"the request line and headers exceed {MAX_HEAD} bytes")
        if end < 0:
            return Need.CLOSE if self._eof else Need.DATA
        head = parse_head(bytes(buffer[:end]))
        del buffer[: end + skip]
        self._head = head
        if head.content_length > MAX_BODY:
            return self._oversized(head)
        self._remaining = head.content_length
        self._phase = _Phase.BODY
        if head.expect_continue and head.content_length > len(buffer):
            return Interim(b"HTTP/1.1 100 Continue\r\n\r\n")
        return self._read_body()

    def _oversized(self, head: RequestHead) -> Event:
        message = f"the body is {head.content_length} bytes; the limit is {MAX_BODY}"
        too_large = error_bytes(413, message, keep_alive=True)
        if head.content_length > DRAIN_LIMIT or head.expect_continue:
            # Too much to read for politeness, or the client waits for our go-ahead: answer now.
            raise _Refused(413, message)
        self._refusal = too_large
        buffered = min(len(self._buffer), head.content_length)
        self._remaining = head.content_length - buffered
        del self._buffer[:buffered]
        self._phase = _Phase.DRAIN
        return self._next()

    def _read_body(self) -> Event:
        head = self._head
        assert head is not None
        if len(self._buffer) < self._remaining:
            return Need.CLOSE if self._eof else Need.DATA  # a client gone mid-body gets nothing
        body = bytes(self._buffer[: self._remaining])
        del self._buffer[: self._remaining]
        self._phase = _Phase.ANSWERING
        return Ready(head, body)


def _head_end(buffer: bytearray) -> tuple[int, int]:
    """Where the head ends and how long its terminator is; (-1, 0) while incomplete."""
    crlf, lf = buffer.find(b"\r\n\r\n"), buffer.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 4
    return (lf, 2) if lf >= 0 else (-1, 0)


def parse_head(raw: bytes) -> RequestHead:
    """The request line and headers (without the blank line); raises _Refused with a reason."""
    lines = raw.split(b"\n")
    parts = lines[0].rstrip(b"\r").split(b" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise _Refused(400, "the request line is not 'METHOD /path HTTP/1.1'")
    method_raw, target_raw, version = parts
    if not _only(method_raw, _TOKEN):
        raise _Refused(400, "the request method is not a token")
    keep_alive = _VERSIONS.get(version)
    if keep_alive is None:
        if version[:5] == b"HTTP/" and version[5:].replace(b".", b"", 1).isdigit():
            raise _Refused(505, "only HTTP/1.1 and HTTP/1.0 are served")
        raise _Refused(400, "the request line is not 'METHOD /path HTTP/1.1'")
    if not _only(target_raw, _VISIBLE):
        raise _Refused(400, "the request target holds control characters")
    method = method_raw.decode("ascii")
    if method not in METHODS:
        raise _Refused(501, f"method {method} is not served")
    headers = _headers(lines[1:])
    connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if "close" in connection:
        keep_alive = False
    elif "keep-alive" in connection:
        keep_alive = True
    if "transfer-encoding" in headers:
        raise _Refused(411, "send the body with a Content-Length header, not chunked")
    return RequestHead(
        method=method,
        target=target_raw.decode("latin-1"),
        keep_alive=keep_alive,
        content_length=_content_length(headers.get("content-length")),
        content_type=headers.get("content-type"),
        authorization=headers.get("authorization"),
        if_match=headers.get("if-match"),
        expect_continue=headers.get("expect", "").lower() == "100-continue" and version == b"HTTP/1.1",
    )


def _headers(lines: list[bytes]) -> dict[str, str]:
    if len(lines) > MAX_HEADERS:
        raise _Refused(431, f"more than {MAX_HEADERS} header fields")
    found: dict[str, str] = {}
    for raw in lines:
        line = raw[:-1] if raw[-1:] == b"\r" else raw
        if line[:1] in (b" ", b"\t"):
            raise _Refused(400, "a header field is folded over lines (obsolete line folding)")
        name_raw, colon, value_raw = line.partition(b":")
        if not colon or not name_raw or not _only(name_raw, _TOKEN):
            raise _Refused(400, "a header field is not 'Name: value'")
        value_raw = value_raw.strip(b" \t")
        if not _only(value_raw, _FIELD_VALUE):
            raise _Refused(400, "a header field value holds control characters")
        name, value = name_raw.decode("ascii").lower(), value_raw.decode("latin-1")
        if name in found:
            if name not in _SINGLE:  # a list-valued field: the values join with commas
                found[name] = f"{found[name]}, {value}"
                continue
            if found[name] != value:
                shown = name_raw.decode("ascii")
                raise _Refused(400, f"the {shown} header is sent twice with different values")
        found[name] = value
    return found


def _content_length(text: str | None) -> int:
    if text is None:
        return 0
    # str.isdigit() would take "²" or Arabic-Indic digits; only ASCII digits are a length.
    if not (0 < len(text) <= 19 and text.isascii() and text.isdigit()):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise _Refused(400, f"the Content-Length header is not a number of bytes: {shown!r}")
    return int(text)


# --- answers ---------------------------------------------------------------------------------------

_date_second = -1
_date_line = b""


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def date_line() -> bytes:
    """``Date: Thu, 03 Dec 2026 03:09:43 GMT\\r\\n``, formatted once per second (RFC 9110 asks
    origin servers to send it; by hand, since strftime's names follow the locale)."""
    global _date_second, _date_line
    now = int(time.time())
    if now != _date_second:
        t = time.gmtime(now)
        clock = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        stamp = f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} {clock} GMT"
        _date_line = f"Date: {stamp}\r\n".encode("ascii")
        _date_second = now
    return _date_line


def status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Status"
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("ascii")


def response_tail(
    content_type: str,
    body: bytes,
    keep_alive: bool,
    headers: tuple[tuple[str, str], ...] = (),
    bare: bool = False,
) -> bytes:
    """Everything after the status and Date lines. ``bare``: HEAD/OPTIONS, the status line alone
    (Content-Length 0, no body), as the API has always answered HAProxy's checks."""
    sent = b"" if bare else body
    lines = [f"Content-Type: {content_type}", f"Content-Length: {len(sent)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + sent


def error_bytes(status: int, message: str, keep_alive: bool = False) -> bytes:
    """A complete JSON error answer ``{"error": message}`` for a request the API never saw."""
    body = json.dumps({"error": message}).encode()
    return status_line(status) + date_line() + response_tail(JSON, body, keep_alive)
