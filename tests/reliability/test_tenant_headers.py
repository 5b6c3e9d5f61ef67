"""Issue 17, item 7: no ``caproute-*`` request header reaches the upstream.

Every header named ``caproute-`` is caproute's own. The two controls (``caproute-route``,
``caproute-bypass``) are consumed by the proxy whether enabled or not; any other (a
response header a client echoes back, a misspelt control, a caller's guess) used to be
forwarded as it came. The requests are written on raw sockets, in every case the
proxy distinguishes: routed, passed through (the Models API), bypassed, routed by a
forced route, in pass-through and in own-key mode.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reliability_helpers import (
    API_KEY,
    HI,
    RawAnswer,
    compact,
    http_request,
    proxy_for,
    raw_post,
    raw_request,
)

from caproute.testing import FakeAnthropic

OWN = {
    "caproute-outcome": "adjusted",  # a response header echoed back by a client
    "caproute-model": "claude-opus-5-5",
    "caproute-registry": "caller",
    "caproute-routes": "fast",  # a misspelt control
    "Caproute-Tenant": "acme",  # any case
    "CAPROUTE-DEBUG": "1",
    "caproute-": "empty suffix",
}
CONTROLS = {"caproute-route": "nope", "caproute-bypass": "0"}
BODY = compact({"model": "claude-haiku-4-5", "max_tokens": 16, "messages": HI})


def caproute_headers_seen(fake: FakeAnthropic) -> list[tuple[str, str, str]]:
    return [
        (r.path, name, value)
        for r in fake.requests
        for name, value in r.headers.items()
        if name.startswith("caproute")
    ]


def test_a_routed_request_arrives_without_any_caproute_header(fake: FakeAnthropic) -> None:
    with proxy_for(fake) as proxy:
        answer = raw_post(proxy, "/v1/messages", BODY, headers={**OWN, **CONTROLS})
    assert answer.status == 200, answer.body
    assert fake.count("/v1/messages") == 1
    assert caproute_headers_seen(fake) == []
    # The other end-to-end headers still travel.
    assert fake.requests[-1].headers["anthropic-version"] == "2023-06-01"


def test_a_passed_through_request_arrives_without_any_caproute_header(
    fake: FakeAnthropic,
) -> None:
    headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01", **OWN, **CONTROLS}
    with proxy_for(fake) as proxy:
        answer = RawAnswer(raw_request(proxy.port, http_request("GET", "/v1/models", headers)))
    assert answer.status == 200, answer.body
    assert fake.count("/v1/models") >= 1
    assert caproute_headers_seen(fake) == []


@pytest.mark.parametrize(
    "control", [{"caproute-bypass": "1"}, {"caproute-route": "cheap"}], ids=["bypass", "route"]
)
def test_honoured_controls_are_consumed_and_the_rest_stripped(
    fake: FakeAnthropic, tmp_path: Path, control: dict[str, str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nroutes:\n  - name: cheap\n    match: {}\n    candidates: [claude-haiku-4-5]\n",
        encoding="utf-8",
    )
    with proxy_for(fake, policy=policy, allow_bypass=True, allow_route_header=True) as proxy:
        answer = raw_post(proxy, "/v1/messages", BODY, headers={**OWN, **control})
    assert answer.status == 200, answer.body
    assert caproute_headers_seen(fake) == []


def test_own_key_mode_strips_them_too(fake: FakeAnthropic) -> None:
    token = "local-token-for-the-header-test"
    with proxy_for(fake, api_key=API_KEY, require_token=token) as proxy:
        answer = raw_post(proxy, "/v1/messages", BODY, api_key=token, headers=OWN)
    assert answer.status == 200, answer.body
    assert caproute_headers_seen(fake) == []
    # The caller still gets the decision's headers: only requests lose them.
    assert answer.headers["caproute-outcome"] == "unchanged"
    assert json.loads(answer.body)["model"].startswith("claude-haiku-4-5")
