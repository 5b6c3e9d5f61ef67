"""Issue 17, item 3: ``/caproute/metrics`` shows no tenant's lineup to another.

Two keys see different lineups (as organizations and workspaces do): caller A's key
also sees ``claude-private-9``, which neither the embedded lineup nor caller B's key
has. Before the fix every model name a request carried became a label value, so
caller B (or anyone without a key) read A's private model off the metrics page, and
200 junk names filled the label budget, pushing every real model into ``other``.
Now only names of the shared lineup are label values; everything else is ``other``.

The proxy is the real uvicorn server in pass-through mode; requests are raw sockets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from reliability_helpers import (
    HI,
    RawAnswer,
    compact,
    http_request,
    proxy_for,
    raw_post,
    raw_request,
)

from caproute import embedded_registry
from caproute.testing import FakeAnthropic, make_model
from running_proxy import RunningProxy, metric_value

KEY_A = "tenant-a-key-0f6b2c9d8e7a"
KEY_B = "tenant-b-key-5a1e3d7c9b2f"
PRIVATE = "claude-private-9"
SHARED = [info.to_api_dict() for info in embedded_registry().models]


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    models = [make_model(PRIVATE, max_tokens=8192, max_input_tokens=200_000), *SHARED]
    return {"models": models, "api_key": KEY_A, "keys": {KEY_B: [m["id"] for m in SHARED]}}


@pytest.fixture
def proxy(fake: FakeAnthropic) -> Iterator[RunningProxy]:
    with proxy_for(fake) as running:
        yield running


def ask(proxy: RunningProxy, key: str, model: str) -> RawAnswer:
    body = compact({"model": model, "max_tokens": 16, "messages": HI})
    return raw_post(proxy, "/v1/messages", body, api_key=key)


def metrics_page(proxy: RunningProxy, headers: dict[str, str]) -> str:
    proxy.metric("caproute_proxy_in_flight")  # waits for requests still being counted
    answer = RawAnswer(raw_request(proxy.port, http_request("GET", "/caproute/metrics", headers)))
    assert answer.status == 200
    return answer.body.decode()


def test_a_model_only_one_key_sees_is_not_shown_to_others(proxy: RunningProxy) -> None:
    private = ask(proxy, KEY_A, PRIVATE)
    assert private.status == 200, private.body  # A's key may use it
    assert ask(proxy, KEY_A, "claude-haiku-4-5").status == 200
    for reader in ({"x-api-key": KEY_B}, {}):  # another tenant, a caller with no key
        page = metrics_page(proxy, reader)
        assert PRIVATE not in page
        # Counted all the same, under `other`, with its tokens.
        assert metric_value(page, 'caproute_proxy_requests_total{model="other"}') >= 1
        assert metric_value(page, 'caproute_proxy_tokens_total{model="other"}') > 0
        # A model of the shared lineup keeps its name.
        assert metric_value(page, 'caproute_proxy_requests_total{model="claude-haiku-4-5"}') == 1


def test_caller_chosen_names_never_become_labels(proxy: RunningProxy) -> None:
    for n in range(205):
        answer = ask(proxy, KEY_B, f"junk-model-{n:03d}")
        assert answer.status == 404, answer.body  # the API's answer to an unknown model
    assert ask(proxy, KEY_B, "claude-sonnet-5-5").status == 200
    page = metrics_page(proxy, {})
    assert "junk-model" not in page
    assert metric_value(page, 'caproute_proxy_requests_total{requested_model="other"}') == 205
    # The junk did not use up the label budget: the real model has its own series.
    assert metric_value(page, 'caproute_proxy_requests_total{model="claude-sonnet-5-5"}') == 1
