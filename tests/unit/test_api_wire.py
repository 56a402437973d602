"""The HTTP request parser alone (api/wire.py): no sockets, bytes in, events out."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgwarden.api import wire


def _events(*chunks: bytes, eof: bool = False) -> list[wire.Event]:
    """Feed the chunks, answering each Ready with keep-alive, until the parser needs more."""
    conn = wire.HttpConnection()
    events: list[wire.Event] = []
    for chunk in [*chunks, b""] if eof else chunks:
        conn.receive(chunk)
        while True:
            event = conn.next_event()
            events.append(event)
            if isinstance(event, wire.Ready):
                conn.answered(event.head.keep_alive)
                continue
            if isinstance(event, wire.Refuse) and event.keep_alive:
                conn.answered(True)
                continue
            if isinstance(event, wire.Interim):
                continue
            break
    return events


def _status(event: wire.Event) -> int:
    assert isinstance(event, wire.Refuse), event
    return int(event.data.split(b" ", 2)[1])


def _error(event: wire.Event) -> str:
    assert isinstance(event, wire.Refuse)
    document = json.loads(event.data.partition(b"\r\n\r\n")[2])
    message: str = document["error"]
    return message


def test_a_health_check_as_haproxy_sends_it() -> None:
    [ready, close] = _events(b"OPTIONS /primary HTTP/1.0\r\n\r\n")
    assert isinstance(ready, wire.Ready) and close is wire.Need.CLOSE  # HTTP/1.0: one request
    assert ready.head == wire.RequestHead("OPTIONS", "/primary", keep_alive=False)
    assert ready.body == b""


def test_a_write_with_its_headers_and_body_split_anywhere() -> None:
    raw = (
        b"POST /switchover HTTP/1.1\r\nHost: n1\r\nContent-Type: application/json\r\n"
        b'Authorization: Basic YTpi\r\nContent-Length: 21\r\n\r\n{"candidate": "n2"} \n'
    )
    for cut in range(1, len(raw)):
        events = _events(raw[:cut], raw[cut:])
        [ready] = [e for e in events if isinstance(e, wire.Ready)]
        assert ready.head == wire.RequestHead(
            "POST", "/switchover", True, 21, "application/json", "Basic YTpi"
        )
        assert ready.body == b'{"candidate": "n2"} \n'


def test_keep_alive_follows_the_version_and_the_connection_header() -> None:
    cases = {
        b"GET / HTTP/1.1\r\n\r\n": True,
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n": False,
        b"GET / HTTP/1.1\r\nConnection: Upgrade, Close\r\n\r\n": False,
        b"GET / HTTP/1.0\r\n\r\n": False,
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n": True,
    }
    for raw, keep in cases.items():
        ready = _events(raw)[0]
        assert isinstance(ready, wire.Ready) and ready.head.keep_alive is keep, raw


def test_pipelined_requests_come_out_one_at_a_time() -> None:
    raw = b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET /c HTTP/1.1\r\n\r\n"
    ready = [e for e in _events(raw) if isinstance(e, wire.Ready)]
    assert [(r.head.method, r.head.target, r.body) for r in ready] == [
        ("GET", "/a", b""),
        ("POST", "/b", b"{}"),
        ("GET", "/c", b""),
    ]


def test_bare_newlines_and_leading_blank_lines_are_tolerated() -> None:
    ready = _events(b"\r\n\nGET /health HTTP/1.1\nHost: x\n\n")[0]
    assert isinstance(ready, wire.Ready) and ready.head.target == "/health"


@pytest.mark.parametrize(
    ("length", "status", "says"),
    [
        ("²", 400, "not a number"),
        ("\u0663", 400, "not a number"),  # ARABIC-INDIC DIGIT THREE: str.isdigit() says yes
        ("-1", 400, "not a number"),
        ("+5", 400, "not a number"),
        ("1e3", 400, "not a number"),
        (" ", 400, "not a number"),
        ("5, 5", 400, "not a number"),
        ("0x10", 400, "not a number"),
        ("9" * 20, 400, "not a number"),
        ("9" * 19, 413, "limit"),
        (str(wire.DRAIN_LIMIT + 1), 413, "limit"),
    ],
)
def test_a_bad_content_length_is_refused_with_a_reason(length: str, status: int, says: str) -> None:
    raw = f"POST /reload HTTP/1.1\r\nContent-Length: {length}\r\n\r\n".encode()
    [refused] = _events(raw)
    assert _status(refused) == status and says in _error(refused)
    assert isinstance(refused, wire.Refuse) and not refused.keep_alive


def test_duplicate_content_lengths_must_agree() -> None:
    same = _events(b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}")[0]
    assert isinstance(same, wire.Ready) and same.body == b"{}"
    [differ] = _events(b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}")
    assert _status(differ) == 400 and "twice" in _error(differ)


def test_an_oversized_body_within_the_drain_limit_is_read_and_answered_413_keeping_the_connection() -> None:
    size = wire.MAX_BODY + 10
    head = f"PUT /config HTTP/1.1\r\nContent-Length: {size}\r\n\r\n".encode()
    events = _events(head, b" " * (size - 3), b"   GET /health HTTP/1.1\r\n\r\n")
    refused = next(e for e in events if isinstance(e, wire.Refuse))
    assert _status(refused) == 413 and refused.keep_alive
    assert any(isinstance(e, wire.Ready) and e.head.target == "/health" for e in events)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"this is not http\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),  # HTTP/0.9: not served
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/1.1 extra\r\n\r\n", 400),
        (b"GET  / HTTP/1.1\r\n\r\n", 400),
        (b"BREW /pot HTTP/1.1\r\n\r\n", 501),
        (b"G(T / HTTP/1.1\r\n\r\n", 400),
        (b"GET /\x01 HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nName : value\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nA: b\r\n  folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
        (b"POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
        (b"GET /" + b"a" * wire.MAX_REQUEST_LINE + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * (wire.MAX_HEADERS + 1) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nX-A: " + b"b" * wire.MAX_HEAD + b"\r\n\r\n", 431),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, bytes) else str(v),
)
def test_malformed_requests_are_refused_with_json(raw: bytes, status: int) -> None:
    refused = _events(raw)[0]
    assert _status(refused) == status
    assert _error(refused)
    assert b"Connection: close" in refused.data if isinstance(refused, wire.Refuse) else False


def test_endless_headers_are_refused_before_the_blank_line_arrives() -> None:
    conn = wire.HttpConnection()
    for _ in range(wire.MAX_HEAD // 16 + 1):
        conn.receive(b"X-Slow-Loris: 1\r\n")
    assert _status(conn.next_event()) == 431


def test_a_client_that_hangs_up_mid_request_is_closed_quietly() -> None:
    assert _events(b"POST /reload HTTP/1.1\r\nContent-Length: 100\r\n\r\n{", eof=True)[-1] is wire.Need.CLOSE
    assert _events(b"GET /prim", eof=True)[-1] is wire.Need.CLOSE
    assert _events(eof=True) == [wire.Need.CLOSE]


def test_a_request_complete_before_the_client_half_closes_is_still_answered() -> None:
    events = _events(b"GET /health HTTP/1.0\r\n\r\n", eof=True)
    assert isinstance(events[0], wire.Ready)


def test_expect_100_continue_gets_the_go_ahead_before_the_body() -> None:
    conn = wire.HttpConnection()
    conn.receive(b"POST /reload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert conn.next_event() == wire.Interim(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert conn.next_event() is wire.Need.DATA
    conn.receive(b"{}")
    ready = conn.next_event()
    assert isinstance(ready, wire.Ready) and ready.body == b"{}"
    # Too large: refused at once, the client never sends the body.
    big = wire.HttpConnection()
    head = f"PUT /config HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {wire.MAX_BODY + 1}\r\n\r\n"
    big.receive(head.encode())
    assert _status(big.next_event()) == 413


# --- any bytes at all --------------------------------------------------------------------------

_FRAGMENTS = [
    b"GET ", b"POST ", b"OPTIONS ", b"/primary", b"/switchover", b"?lag=1MB", b" HTTP/1.1", b" HTTP/1.0",
    b"\r\n", b"\n", b"\r\n\r\n", b"Content-Length: ", b"Content-Length: 5", b"Content-Length: \xc2\xb2",
    b"Content-Length: -1", b"Transfer-Encoding: chunked", b"Connection: close", b"Expect: 100-continue",
    b"Content-Type: application/json", b": ", b" ", b"\t", b"\x00", b"{}", b"\xff",
]  # fmt: skip
requests = st.lists(st.sampled_from(_FRAGMENTS) | st.binary(max_size=40), max_size=40).map(b"".join)


@settings(max_examples=600, deadline=None)
@given(stream=requests, cuts=st.lists(st.integers(0, 2000), max_size=6), eof=st.booleans())
def test_any_bytes_end_in_requests_refusals_or_a_close_and_never_raise(
    stream: bytes, cuts: list[int], eof: bool
) -> None:
    points = sorted({c for c in cuts if c < len(stream)})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True) if stream[a:b]]
    events = _events(*chunks, eof=eof)
    for event in events:
        if isinstance(event, wire.Refuse):
            status = _status(event)
            assert 400 <= status < 600 and _error(event)
        elif isinstance(event, wire.Ready):
            assert event.head.method in wire.METHODS
            assert len(event.body) == event.head.content_length <= wire.MAX_BODY
    last = events[-1] if events else wire.Need.DATA
    if eof:  # the client is gone: every path ends in a close or a final answer
        assert last is wire.Need.CLOSE or isinstance(last, wire.Refuse)
    else:
        assert last in (wire.Need.DATA, wire.Need.CLOSE) or isinstance(last, wire.Refuse)
