"""Issue 22, bug 12: ``-1e400`` (negative infinity) accepted in a body routing doesn't edit.

The existing test put the number in a body routing *edits*, so re-serialising the
edited body refused it anyway (``allow_nan=False``) and a parser that let ``-inf``
through went unnoticed. Here the body is one routing forwards unchanged, as its own
bytes: only the parser stands between the number and the upstream, which might read
it as ``-inf``, as an error, or as something else again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx2
import pytest

from caproute import LiveRouter, RoutingTransport, embedded_registry
from caproute.testing import FakeAnthropic

KEY = "test-key-body-regressions"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
PLAIN = {
    "model": "claude-haiku-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=KEY) as server:
        yield server


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
