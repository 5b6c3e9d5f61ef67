"""count_tokens learns and routes like /v1/messages (issue 16, item 4, count_tokens half).

* A ``count_tokens`` refusal that names a parameter teaches the same fact a Messages
  refusal would: the count is retried without it, and the next send is right the
  first time (and the other way round).
* A count goes to the model the send would go to, with the same changes, so the count
  matches what is sent.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from lifetime_helpers import (
    HI,
    KEY,
    WORDINGS,
    Path_,
    Wording,
    messages_sent,
    paths,
    refusal,
    refuse_next,
)

from caproute.testing import FakeAnthropic, make_model

BIG, SMALL = "claude-ct-big-2", "claude-ct-small-1"
COUNT = "/v1/messages/count_tokens"


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    models = [
        make_model(BIG, line="ct", max_tokens=64_000),
        make_model(SMALL, line="ct", max_tokens=8192, unsupported=["pdf_input", "effort.max"]),
    ]
    return {"models": models, "api_key": KEY}


@pytest.fixture(params=["wrap", "transport", "proxy"])
def path(request: pytest.FixtureRequest, fake: FakeAnthropic) -> Iterator[Path_]:
    yield from paths(fake, request.param)


def with_effort(model: str, effort: str) -> dict[str, Any]:
    return {"model": model, "messages": HI, "extra_body": {"output_config": {"effort": effort}}}


@pytest.mark.parametrize("wording", WORDINGS)
def test_a_count_tokens_refusal_teaches_like_a_messages_one(
    fake: FakeAnthropic, path: Path_, wording: Wording
) -> None:
    # BIG claims `effort.xhigh` (the list), the API refuses it on count_tokens.
    body = {"model": BIG, "messages": HI, "output_config": {"effort": "xhigh"}}
    refused = refusal(
        body,
        make_model(BIG, unsupported=["effort.xhigh"]),
        wording=wording,
        endpoint="count_tokens",
    )
    refuse_next(fake, COUNT, refused)
    mark = len(fake.requests)
    assert path.count_tokens(**with_effort(BIG, "xhigh")) == 200
    counted = [b.get("output_config") for b in messages_sent(fake, mark, COUNT)]
    assert counted[0] == {"effort": "xhigh"} and len(counted) == 2
    assert counted[1] != {"effort": "xhigh"}

    # The send is right the first time: what the count learned, the send uses.
    mark = len(fake.requests)
    assert path.create(max_tokens=100, **with_effort(BIG, "xhigh")) == 200
    sent = messages_sent(fake, mark)
    assert len(sent) == 1 and sent[0].get("output_config") == counted[1]


def test_what_a_send_learns_the_count_uses(fake: FakeAnthropic, path: Path_) -> None:
    body = {"model": BIG, "max_tokens": 100, "messages": HI, "output_config": {"effort": "low"}}
    refused = refusal(body, make_model(BIG, unsupported=["effort.low"]), wording="api")
    refuse_next(fake, "/v1/messages", refused)
    assert path.create(max_tokens=100, **with_effort(BIG, "low")) == 200
    mark = len(fake.requests)
    assert path.count_tokens(**with_effort(BIG, "low")) == 200
    counted = messages_sent(fake, mark, COUNT)
    assert len(counted) == 1 and counted[0].get("output_config") != {"effort": "low"}


PDF = {
    "type": "document",
    "source": {
        "type": "base64",
        "media_type": "application/pdf",
        "data": base64.b64encode(b"%PDF-1.4 tiny").decode(),
    },
}
BODIES: list[dict[str, Any]] = [
    {"model": SMALL, "messages": HI},
    {
        "model": SMALL,
        "messages": [{"role": "user", "content": [PDF, {"type": "text", "text": "?"}]}],
    },
    {"model": SMALL, "messages": HI, "extra_body": {"output_config": {"effort": "max"}}},
    {"model": BIG, "messages": HI, "extra_body": {"output_config": {"effort": "max"}}},
    {"model": SMALL, "messages": HI, "thinking": {"type": "adaptive"}},
]


def test_a_count_goes_where_the_send_goes(fake: FakeAnthropic, path: Path_) -> None:
    for request in BODIES:
        mark = len(fake.requests)
        assert path.create(max_tokens=1000, **request) == 200
        assert path.count_tokens(**request) == 200
        (sent,) = messages_sent(fake, mark)
        (counted,) = messages_sent(fake, mark, COUNT)
        assert counted["model"] == sent["model"], request
        assert counted == {k: v for k, v in sent.items() if k != "max_tokens"}, request
