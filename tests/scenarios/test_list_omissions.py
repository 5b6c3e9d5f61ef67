"""A list never takes models away by omission alone (issue 18, item 6).

A gateway or a mock may list a few models, or none, and still serve the others. The
fake here serves the full lineup (caproute's embedded one, the default) while its
``GET /v1/models`` answers what such a server lists: only haiku, or nothing. Through
the default `caproute.wrap(client)` (a live registry read from the client's own
endpoint) and through the proxy, a request for a model the list leaves out goes out
as sent, and only the API's own 404 makes it retired (then rerouted by its line).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from lifetime_helpers import HI, KEY, Proxied, messages_sent

import caproute
from caproute.testing import FakeAnthropic

HAIKU, OPUS, OLDER_OPUS = "claude-haiku-4-5-20251001", "claude-opus-5-5", "claude-opus-5"


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"api_key": KEY}


def list_only(fake: FakeAnthropic, *ids: str) -> None:
    """``GET /v1/models`` answers with just these models (a gateway's list), always."""
    data = [m for m in fake.models() if m["id"] in ids]
    page = {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
    fake.faults.add("/v1/models", status=200, body=page, times=None)


class WrappedByDefault:
    """`caproute.wrap(client)` as a user calls it: the registry is the client's own."""

    name = "wrap"

    def __init__(self, fake: FakeAnthropic) -> None:
        self.bare = anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0)
        self.client = caproute.wrap(self.bare)

    def close(self) -> None:
        self.client.close()
        self.bare.close()


@pytest.fixture(params=["wrap", "proxy"])
def client(request: pytest.FixtureRequest, fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    yield from _client(request.param, fake)


def _client(which: str, fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    path: Any = WrappedByDefault(fake) if which == "wrap" else Proxied(fake)
    try:
        yield path.client
    finally:
        path.close()


def create(client: anthropic.Anthropic, model: str) -> Any:
    return client.messages.with_raw_response.create(model=model, max_tokens=50, messages=HI)


@pytest.mark.parametrize("listed", [(HAIKU,), ()], ids=["only-haiku", "empty"])
@pytest.mark.parametrize("which", ["wrap", "proxy"])
def test_a_model_the_list_leaves_out_is_sent_as_asked(
    fake: FakeAnthropic, which: str, listed: tuple[str, ...]
) -> None:
    list_only(fake, *listed)
    for client in _client(which, fake):
        for model in (OPUS, HAIKU, OPUS):
            mark = len(fake.requests)
            raw = create(client, model)
            assert raw.status_code == 200
            assert raw.headers["caproute-model"] == model
            assert [b["model"] for b in messages_sent(fake, mark)] == [model]
        assert fake.count("/v1/models") >= 1  # the list was read


def test_a_failing_list_takes_nothing_away(fake: FakeAnthropic) -> None:
    fake.faults.add("/v1/models", status=503, times=None)
    for client in _client("wrap", fake):
        mark = len(fake.requests)
        assert create(client, OPUS).status_code == 200
        assert [b["model"] for b in messages_sent(fake, mark)] == [OPUS]


def test_only_the_apis_404_retires_a_model_the_list_left_out(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    list_only(fake, HAIKU, OLDER_OPUS)
    mark = len(fake.requests)
    assert create(client, OPUS).status_code == 200
    assert [b["model"] for b in messages_sent(fake, mark)] == [OPUS]

    fake.retire(OPUS)  # now the API answers 404 for it
    mark = len(fake.requests)
    raw = create(client, OPUS)
    assert raw.status_code == 200 and raw.headers["caproute-outcome"] == "rerouted"
    # Its 404 confirmed it; the same call went on to its line's listed model.
    assert [b["model"] for b in messages_sent(fake, mark)] == [OPUS, OLDER_OPUS]

    mark = len(fake.requests)
    assert create(client, OPUS).status_code == 200
    assert [b["model"] for b in messages_sent(fake, mark)] == [OLDER_OPUS]
