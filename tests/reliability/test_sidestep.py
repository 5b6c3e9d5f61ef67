"""Item 5: routing can't be sidestepped: caproute and the upstream always read one request.

Before the fix each of these reached the upstream unrouted, or read differently:

* a trailing slash (``/v1/messages/``), which the API serves like ``/v1/messages``;
* a gzip or deflate request body (caproute saw bytes that were not JSON);
* a body with a byte-order mark (the same);
* duplicate JSON keys: caproute read the last value, an upstream may read the first,
  and an unchanged body went out with both.

And an edited body never carries ``NaN`` / ``Infinity`` (bodies that hold them, or numbers
beyond a double, are refused: parsers disagree about them).
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
from reliability_helpers import (
    API_KEY,
    HI,
    LIBRARY_PATHS,
    RunningProxy,
    compact,
    deflated,
    gzipped,
    proxy_for,
    raw_post,
    sdk_client,
)

from caproute import LiveRouter, RoutingTransport, embedded_registry
from caproute._http.transports import httpx_transport
from caproute.testing import FakeAnthropic

HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
# claude-haiku-4-5 has no effort levels: the fake answers 400 unless caproute strips it.
NEEDS_FIX = {
    "model": "claude-haiku-4-5",
    "max_tokens": 16,
    "output_config": {"effort": "max"},
    "messages": HI,
}
PLAIN = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": HI}


@pytest.fixture(scope="module")
def proxy(fake_anthropic_server: FakeAnthropic) -> Iterator[RunningProxy]:
    with proxy_for(fake_anthropic_server) as running:
        yield running


def transport_client(module: Any, fake: FakeAnthropic) -> Any:
    router = LiveRouter(embedded_registry())
    transport = (
        RoutingTransport(router=router) if module is httpx2 else httpx_transport(router=router)
    )
    return module.Client(transport=transport, base_url=fake.url, headers=HEADERS)


TRANSPORTS = pytest.mark.parametrize("module", [httpx2, httpx], ids=["httpx2", "httpx"])


def received(fake: FakeAnthropic) -> dict[str, Any]:
    """The JSON body the fake got last, read strictly (a duplicate key is an error)."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"duplicate keys on the wire: {keys}"
        return dict(pairs)

    wire = fake.requests[-1].wire_body
    if wire[:2] == b"\x1f\x8b":
        wire = gzip.decompress(wire)
    elif wire[:1] == b"\x78":
        wire = zlib.decompress(wire)

    def no_constant(token: str) -> Any:
        raise AssertionError(f"{token} on the wire")

    return json.loads(wire, object_pairs_hook=unique, parse_constant=no_constant)  # type: ignore[no-any-return]


# -- trailing slashes ---------------------------------------------------------------------

SLASHED = ["/v1/messages/", "/v1/messages//"]


@TRANSPORTS
@pytest.mark.parametrize("path", SLASHED)
def test_a_trailing_slash_is_routed_by_the_transports(
    module: Any, path: str, fake: FakeAnthropic
) -> None:
    with transport_client(module, fake) as http:
        response = http.post(path, json=NEEDS_FIX)
    assert response.status_code == 200, response.text
    assert response.headers["caproute-outcome"] == "adjusted"
    assert "output_config" not in received(fake)


@pytest.mark.parametrize("path", SLASHED)
def test_a_trailing_slash_is_routed_by_the_proxy(
    path: str, fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    answer = raw_post(proxy, path, compact(NEEDS_FIX))
    assert answer.status == 200, answer.body
    assert answer.headers["caproute-outcome"] == "adjusted"


@pytest.mark.parametrize("path", LIBRARY_PATHS)
def test_a_trailing_slash_is_routed_on_every_sdk_path(path: str, fake: FakeAnthropic) -> None:
    with sdk_client(path, fake, LiveRouter(embedded_registry())) as client:
        response = client.post("/v1/messages/", body=NEEDS_FIX, cast_to=object)
    assert response["model"].startswith("claude-haiku-4-5")
    assert "output_config" not in received(fake)


@TRANSPORTS
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/messages/count_tokens/", {k: v for k, v in NEEDS_FIX.items() if k != "max_tokens"}),
        ("/v1/messages/batches/", {"requests": [{"custom_id": "a", "params": NEEDS_FIX}]}),
    ],
)
def test_trailing_slashes_on_the_other_routed_endpoints(
    module: Any, path: str, body: dict[str, Any], fake: FakeAnthropic
) -> None:
    with transport_client(module, fake) as http:
        response = http.post(path, json=body)
    assert response.headers["caproute-outcome"] == "adjusted"


# -- compressed request bodies ------------------------------------------------------------

CODINGS = {
    "gzip": gzipped,
    "deflate": deflated,
    "deflate, gzip": lambda data: gzipped(deflated(data)),
    "x-gzip": gzipped,
    "identity, gzip": gzipped,
}


@TRANSPORTS
@pytest.mark.parametrize("coding", list(CODINGS))
def test_a_compressed_body_is_decoded_routed_and_reencoded(
    module: Any, coding: str, fake: FakeAnthropic
) -> None:
    with transport_client(module, fake) as http:
        response = http.post(
            "/v1/messages",
            content=CODINGS[coding](compact(NEEDS_FIX)),
            headers={"content-encoding": coding, "content-type": "application/json"},
        )
    assert response.status_code == 200, response.text
    assert response.headers["caproute-outcome"] == "adjusted"
    sent = fake.requests[-1]
    assert sent.headers["content-encoding"] == coding
    assert sent.body is not None and "output_config" not in sent.body  # the fake decoded it


@TRANSPORTS
def test_an_unchanged_compressed_body_goes_out_byte_for_byte(
    module: Any, fake: FakeAnthropic
) -> None:
    original = gzipped(compact(PLAIN))
    with transport_client(module, fake) as http:
        response = http.post("/v1/messages", content=original, headers={"content-encoding": "gzip"})
    assert response.headers["caproute-outcome"] == "unchanged"
    assert fake.requests[-1].wire_body == original


def test_a_compressed_body_is_routed_by_the_proxy(fake: FakeAnthropic, proxy: RunningProxy) -> None:
    answer = raw_post(
        proxy, "/v1/messages", gzipped(compact(NEEDS_FIX)), headers={"content-encoding": "gzip"}
    )
    assert answer.status == 200, answer.body
    assert answer.headers["caproute-outcome"] == "adjusted"
    assert fake.requests[-1].wire_body[:2] == b"\x1f\x8b"
    assert "output_config" not in received(fake)


@pytest.mark.parametrize(
    ("coding", "body", "status", "message"),
    [
        ("br", b"\x0b\x02\x80{}\x03", 415, "request content-encoding 'br' is not supported"),
        ("zstd, gzip", gzipped(b"{}"), 415, "request content-encoding 'zstd' is not supported"),
        ("gzip", b"\x1f\x8bnot really gzip", 400, "not valid gzip data"),
        ("gzip", gzipped(compact(PLAIN))[:-9], 400, "not valid gzip data"),
        ("deflate", b"plain text", 400, "not valid deflate data"),
    ],
)
def test_a_body_caproute_cannot_decode_is_refused_not_forwarded(
    coding: str, body: bytes, status: int, message: str, fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    answer = raw_post(proxy, "/v1/messages", body, headers={"content-encoding": coding})
    assert answer.status == status
    assert answer.headers["x-should-retry"] == "false"
    assert message in answer.json()["error"]["message"]
    assert fake.count("/v1/messages") == 0


def test_a_decompression_bomb_is_refused_with_413(fake: FakeAnthropic, proxy: RunningProxy) -> None:
    # 64 MiB of spaces after a valid body: 64 kB on the wire, twice the API's cap decoded.
    bomb = gzip.compress(compact(PLAIN) + b" " * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 200_000
    answer = raw_post(proxy, "/v1/messages", bomb, headers={"content-encoding": "gzip"})
    assert answer.status == 413
    assert answer.json()["error"]["type"] == "request_too_large"
    assert fake.count("/v1/messages") == 0


# -- other encodings of the same JSON -----------------------------------------------------


@TRANSPORTS
@pytest.mark.parametrize(
    "encode",
    [
        lambda text: b"\xef\xbb\xbf" + text.encode(),  # a UTF-8 byte-order mark
        lambda text: text.encode("utf-16"),
        lambda text: text.encode("utf-32-le"),
    ],
    ids=["utf-8-bom", "utf-16", "utf-32-le"],
)
def test_json_in_another_unicode_encoding_is_routed(
    module: Any, encode: Any, fake: FakeAnthropic
) -> None:
    with transport_client(module, fake) as http:
        response = http.post("/v1/messages", content=encode(json.dumps(NEEDS_FIX)))
    assert response.headers["caproute-outcome"] == "adjusted"
    assert response.status_code == 200


# -- duplicate keys -----------------------------------------------------------------------

# caproute (like Python, JavaScript and Go) reads the last "model"; a first-wins upstream
# would read claude-haiku-4-5, which has no effort "max".
DUPLICATED = (
    b'{"model":"claude-haiku-4-5","max_tokens":16,"output_config":{"effort":"max"},'
    b'"messages":[{"role":"user","content":"hi"}],"model":"claude-opus-5"}'
)


@TRANSPORTS
def test_a_duplicate_key_is_normalised_to_what_caproute_read(
    module: Any, fake: FakeAnthropic
) -> None:
    with transport_client(module, fake) as http:
        response = http.post("/v1/messages", content=DUPLICATED)
    assert response.status_code == 200
    assert response.headers["caproute-outcome"] == "unchanged"
    assert response.headers["caproute-model"] == "claude-opus-5"
    assert received(fake)["model"] == "claude-opus-5"  # one "model" on the wire


def test_a_duplicate_key_is_normalised_by_the_proxy(
    fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    answer = raw_post(proxy, "/v1/messages", DUPLICATED)
    assert answer.status == 200
    assert received(fake) == {
        "model": "claude-opus-5",
        "max_tokens": 16,
        "output_config": {"effort": "max"},
        "messages": HI,
    }


def test_a_nested_duplicate_key_in_a_compressed_body_is_normalised(
    fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    body = compact(PLAIN).replace(
        b'"content":"hi"', b'"content":"hi","role":"assistant","role":"user"'
    )
    answer = raw_post(proxy, "/v1/messages", gzipped(body), headers={"content-encoding": "gzip"})
    assert answer.status == 200, answer.body
    assert received(fake)["messages"] == [{"role": "user", "content": "hi"}]


def test_a_duplicate_key_is_logged_without_its_values(
    fake: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    with transport_client(httpx2, fake) as http:
        http.post("/v1/messages", content=DUPLICATED)
    [record] = [r for r in caplog.records if "repeats the key" in r.getMessage()]
    assert "'model'" in record.getMessage()
    assert "claude-haiku-4-5" not in record.getMessage()


# -- numbers JSON doesn't have ------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999", b"1" * 5000],
    ids=["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "5000-digit-int"],
)
def test_bodies_with_numbers_parsers_disagree_on_are_refused(
    value: bytes, fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    body = compact(NEEDS_FIX)[:-1] + b',"metadata":{"x":' + value + b"}}"
    answer = raw_post(proxy, "/v1/messages", body)
    assert answer.status == 400
    assert answer.headers["x-should-retry"] == "false"
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert fake.count("/v1/messages") == 0


@TRANSPORTS
def test_an_edited_body_never_carries_a_non_finite_number(module: Any, fake: FakeAnthropic) -> None:
    # Large but finite floats survive an edit as finite numbers.
    body = {**NEEDS_FIX, "metadata": {"x": 1.7976931348623157e308, "y": -0.0, "z": 5e-324}}
    with transport_client(module, fake) as http:
        response = http.post("/v1/messages", json=body)
    assert response.headers["caproute-outcome"] == "adjusted"
    assert received(fake)["metadata"] == body["metadata"]


# -- the SDK sees local refusals as the API's own errors ----------------------------------


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (compact(PLAIN)[:-1] + b',"temperature":NaN}', "not a JSON number"),
        (b'{"model":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    ],
    ids=["NaN", "deep"],
)
def test_the_sdk_gets_its_own_error_class_and_does_not_retry(
    content: bytes, error: str, fake: FakeAnthropic
) -> None:
    with proxy_for(fake) as proxy:
        client = anthropic.Anthropic(base_url=proxy.url, api_key=API_KEY, max_retries=3)
        with pytest.raises(anthropic.BadRequestError, match=error):
            client.post(
                "/v1/messages",
                cast_to=object,
                content=content,
                options={"headers": {"content-type": "application/json"}},
            )
        client.close()
        assert proxy.metric("caproute_proxy_refusals_total") == 1  # one attempt, no retries
    assert fake.count("/v1/messages") == 0


# -- the proxy's JSON parse budget holds for compressed bodies too -----------------------


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_a_compressed_body_cannot_sidestep_the_proxys_parse_budget(
    coding: str, fake: FakeAnthropic
) -> None:
    # 5,000 tiny values, a few kB once compressed: over a budget of 1,000 values.
    body = compact({**PLAIN, "metadata": {"x": list(range(5_000))}})
    encode = gzipped if coding == "gzip" else deflated
    with proxy_for(fake, max_json_values=1_000) as proxy:
        answer = raw_post(proxy, "/v1/messages", encode(body), headers={"content-encoding": coding})
    assert answer.status == 413
    assert "JSON values" in answer.json()["error"]["message"]
    assert fake.count("/v1/messages") == 0
