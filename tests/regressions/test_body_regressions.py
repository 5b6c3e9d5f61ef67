"""Issue 22, bug 12: ``-1e400`` (negative infinity) accepted in a body routing doesn't edit.

The existing test put the number in a body routing *edits*, so re-serialising the
edited body refused it anyway (``allow_nan=False``) and a parser that let ``-inf``
through went unnoticed. Here the body is one routing forwards unchanged, as its own
bytes: only the parser stands between the number and the upstream, which might read
it as ``-inf``, as an error, or as something else again.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from caproute import Decision, LiveRouter, RoutingTransport, embedded_registry
from caproute._core.body import (
    NOT_JSON,
    BodyRefused,
    decode,
    dumps,
    encode,
    internal_error_message,
    parse,
    parse_codings,
    refused_decision,
)
from caproute._core.wire import error_body
from caproute.testing import FakeAnthropic

KEY = "test-key-body-regressions"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
PLAIN = {
    "model": "claude-haiku-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"api_key": KEY}


@pytest.fixture
def http(fake: FakeAnthropic) -> Iterator[httpx2.Client]:
    fake.reset()
    transport = RoutingTransport(router=LiveRouter(embedded_registry()))
    with httpx2.Client(transport=transport, base_url=fake.url, headers=HEADERS) as client:
        yield client


def with_number(token: str) -> bytes:
    """`PLAIN` with ``"metadata": {"x": <token>}`` spliced in as raw JSON text."""
    return json.dumps(PLAIN, separators=(",", ":")).encode()[:-1] + (
        b',"metadata":{"x":' + token.encode() + b"}}"
    )


@pytest.mark.parametrize("token", ["-1e400", "1e400", "-1E999", "-123.5e308", "-Infinity", "NaN"])
def test_a_number_beyond_a_double_is_refused_in_an_unedited_body(
    http: httpx2.Client, fake: FakeAnthropic, token: str
) -> None:
    """Bug 12: ``-1e400`` accepted because only ``+inf`` was checked."""
    response = http.post("/v1/messages", content=with_number(token))

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "not a JSON number" in response.json()["error"]["message"]
    assert fake.count("/v1/messages") == 0


@pytest.mark.parametrize("token", ["-1.7976931348623157e308", "-0.0", "5e-324", "-1e-400"])
def test_extreme_but_finite_numbers_pass_unchanged(
    http: httpx2.Client, fake: FakeAnthropic, token: str
) -> None:
    """Bug 12, the control: the same body with a finite number goes out as sent
    (routing leaves it alone, so the test above is about the parser alone)."""
    content = with_number(token)
    response = http.post("/v1/messages", content=content)

    assert response.status_code == 200
    assert response.headers["caproute-outcome"] == "unchanged"
    assert fake.requests[-1].wire_body == content


# -- the body layer's own contract (mutants mutmut found surviving in _body.py) ------------
# `parse`, `dumps`, `decode`, `encode` and `internal_error_message` are what the
# transports, the middleware and the proxy share; each test below pins one promise of
# theirs that no end-to-end test checked precisely.


TEXT = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "héllo"}]}


def refusal(exc: pytest.ExceptionInfo[BodyRefused]) -> tuple[int, str, str]:
    return exc.value.status, exc.value.error_type, exc.value.message


def test_an_edited_body_is_sent_as_compact_json() -> None:
    assert dumps({"a": [1, 2], "b": "é"}) == b'{"a":[1,2],"b":"\\u00e9"}'


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_an_edited_body_never_carries_a_non_finite_number(value: float) -> None:
    with pytest.raises(BodyRefused) as caught:
        dumps({"x": value})
    assert refusal(caught) == (
        400,
        "invalid_request_error",
        "the request body holds a number JSON can't carry",
    )
    assert str(caught.value) == "the request body holds a number JSON can't carry"


def test_an_edited_body_too_deep_to_serialise_is_refused() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(BodyRefused) as caught:
        dumps({"x": deep})
    assert refusal(caught) == (
        400,
        "invalid_request_error",
        "the request body is nested too deeply to send",
    )


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (RecursionError(), "the request body is nested too deeply to route"),
        (
            KeyError("secret prompt"),
            "internal error while routing this request (KeyError); it was not sent",
        ),
    ],
)
def test_an_internal_error_is_described_by_its_type_only(exc: Exception, message: str) -> None:
    assert internal_error_message(exc) == message


@pytest.mark.parametrize(("length", "shown"), [(40, "k" * 40), (41, "k" * 40 + "…")])
def test_a_duplicated_key_is_named_and_cut_after_40_characters(length: int, shown: str) -> None:
    key = "k" * length
    value, duplicate = parse(f'{{"{key}":1,"{key}":2}}'.encode())
    assert value == {key: 2}
    assert duplicate == repr(shown)


def test_utf16_with_a_lone_surrogate_reads_as_json_loads_reads_it() -> None:
    """RFC 8259 parsers (Python's ``json.loads(bytes)``) decode UTF-16 with
    ``surrogatepass``: a lone surrogate is a string, not "not JSON"."""
    content = '{"a":"\ud800"}'.encode("utf-16-le", "surrogatepass")
    assert parse(content) == (json.loads(content), None)


def test_gzip_undone_and_redone() -> None:
    data = json.dumps(TEXT).encode()
    assert decode(encode(data, ("gzip",)), ("gzip",), len(data)) == data
    assert decode(encode(data, ("deflate",)), ("deflate",), len(data)) == data
    assert decode(encode(data, ("deflate", "gzip")), ("deflate", "gzip"), len(data)) == data


def test_a_body_decoding_to_exactly_the_limit_is_accepted_and_one_more_refused() -> None:
    data = b"x" * 1000
    packed = encode(data, ("gzip",))
    assert decode(packed, ("gzip",), 1000) == data
    with pytest.raises(BodyRefused) as caught:
        decode(packed, ("gzip",), 999)
    assert refusal(caught) == (
        413,
        "request_too_large",
        "the request body decodes to more than 999 bytes",
    )


def test_raw_deflate_is_read_too() -> None:
    """Some clients send ``deflate`` without its zlib wrapper (RFC 9110 says wrapped)."""
    data = json.dumps(TEXT).encode()
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    assert decode(raw.compress(data) + raw.flush(), ("deflate",), 10_000) == data


def test_a_deflate_bomb_is_413_not_retried_as_raw_deflate() -> None:
    with pytest.raises(BodyRefused) as caught:
        decode(zlib.compress(b"\0" * 100_000), ("deflate",), 1000)
    assert caught.value.status == 413


@pytest.mark.parametrize(
    ("coding", "content"),
    [
        ("gzip", zlib.compress(b'{"a":1}')),  # zlib data labelled gzip
        ("gzip", b"not gzip at all"),
        ("deflate", b"not deflate at all"),
        ("x-gzip", gzip.compress(b'{"a":1}')[:-6]),  # truncated
    ],
)
def test_data_not_in_the_named_coding_is_refused(coding: str, content: bytes) -> None:
    with pytest.raises(BodyRefused) as caught:
        decode(content, (coding,), 10_000)
    assert refusal(caught) == (
        400,
        "invalid_request_error",
        f"the request body is not valid {coding} data",
    )


@pytest.mark.parametrize(
    ("content", "value"),
    [(b"12", 12), (b'{"a":1}', {"a": 1}), (b' {"a":1} ', {"a": 1}), (b"[1,2]", [1, 2])],
)
def test_parse_reads_the_whole_body(content: bytes, value: Any) -> None:
    assert parse(content) == (value, None)


@pytest.mark.parametrize("content", [b'{"a":1} x', b'{"a":1}{"b":2}', b"{", b"\xff\xfe\xfd"])
def test_bytes_that_are_not_one_json_value_are_not_json(content: bytes) -> None:
    assert parse(content)[0] is NOT_JSON


def test_a_number_parsers_disagree_on_is_refused_with_the_reason() -> None:
    with pytest.raises(BodyRefused) as caught:
        parse(b'{"x":1e400}')
    assert refusal(caught) == (
        400,
        "invalid_request_error",
        "the request body is not valid JSON: '1e400' is not a JSON number "
        "(NaN, Infinity and numbers beyond a double are refused: parsers disagree on them)",
    )


@pytest.mark.parametrize(
    ("header", "codings"),
    [
        ("gzip", ("gzip",)),
        ("identity", ()),
        (" Deflate , GZIP ,identity", ("deflate", "gzip")),
        ("x-gzip,", ("x-gzip",)),
        ("", ()),
    ],
)
def test_content_codings_are_read_in_order_without_identity(
    header: str, codings: tuple[str, ...]
) -> None:
    assert parse_codings(header) == codings


def test_an_unknown_content_coding_is_415() -> None:
    with pytest.raises(BodyRefused) as caught:
        parse_codings("gzip, br")
    assert refusal(caught) == (
        415,
        "invalid_request_error",
        "request content-encoding 'br' is not supported by caproute "
        "(send gzip, deflate or identity)",
    )


def test_a_gzip_body_of_several_members_is_read_whole() -> None:
    assert decode(gzip.compress(b"ab") + gzip.compress(b"cd"), ("gzip",), 4) == b"abcd"
    with pytest.raises(BodyRefused):
        decode(gzip.compress(b"ab") + gzip.compress(b"cd"), ("gzip",), 3)


def test_local_answers_are_api_shaped() -> None:
    assert error_body("invalid_request_error", "no") == (
        b'{"type":"error","error":{"type":"invalid_request_error","message":"caproute: no"}}'
    )
    assert refused_decision("why") == Decision("rejected", None, None, reason="why")
    refused = BodyRefused(413, "request_too_large", "too big")
    assert (str(refused), refused.status, refused.error_type) == (
        "too big",
        413,
        "request_too_large",
    )


def test_the_duplicated_key_is_the_one_named() -> None:
    assert parse(b'{"a":1,"b":2,"b":3}') == ({"a": 1, "b": 3}, "'b'")


def test_a_number_too_long_to_read_is_refused_with_the_reason() -> None:
    with pytest.raises(BodyRefused) as caught:
        parse(b'{"x":' + b"1" * 5000 + b"}")
    status, error_type, message = refusal(caught)
    assert (status, error_type) == (400, "invalid_request_error")
    assert message.startswith("the request body has a number caproute can't read: ")


def test_bytes_after_raw_deflate_data_are_ignored() -> None:
    """Raw deflate has no framing for a second member: what follows the stream ends it."""
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = json.dumps(TEXT).encode()
    packed = raw.compress(data) + raw.flush() + b"trailing"
    assert decode(packed, ("deflate",), 10_000) == data
