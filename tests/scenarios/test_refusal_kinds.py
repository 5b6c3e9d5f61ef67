"""Which refusals teach what, over time: organization, payload and parameter refusals.

Each scenario is a sequence of requests with API-side events between them, run through
`wrap` (SDK 2.x) and through the proxy (see ``conftest.py``); every step asserts what
reached the API. The rules the fake applies are the API's (its standing refusals and
payload limits, `caproute.testing`), worded in the ways users have quoted them, plus
wordings generated around those.

The promises: a refusal about the organization or the payload teaches nothing about
the model (the next request to it goes to it, content intact); an organization refusal
is remembered for that credential only; a model that starts refusing a parameter costs
at most one refusal per (model, key, credential), after which only that model's
requests lose the parameter.
"""

from __future__ import annotations

import base64
import random
from typing import Any

import anthropic
import pytest
from anthropic.types.image_dimensions_too_large_error import ImageDimensionsTooLargeError
from anthropic.types.shared.organization_url_fetch_disabled_error import (
    OrganizationURLFetchDisabledError,
)
from scenario_helpers import KEY_A, KEY_B, Clients, Upstream, credential_of

from caproute.testing import PARAMETER_REFUSALS, URL_FETCH_DISABLED, FakeAnthropic, make_model

OPUS, SONNET, HAIKU = "claude-opus-9", "claude-sonnet-9", "claude-haiku-9"
URL_IMAGE = {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.png"}}
SMALL_IMAGE = {
    "type": "image",
    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
}


@pytest.fixture(scope="module")
def lineup() -> list[dict[str, Any]]:
    return [
        make_model(OPUS, line="opus"),
        make_model(SONNET, line="sonnet"),
        make_model(HAIKU, line="haiku", max_tokens=64_000),
    ]


def ask(*blocks: dict[str, Any], text: str = "What is in the picture?") -> list[dict[str, Any]]:
    return [{"role": "user", "content": [*blocks, {"type": "text", "text": text}]}]


def send(clients: Clients, key: str, model: str, messages: list[Any], **fields: Any) -> Any:
    return clients(key).messages.create(model=model, max_tokens=1000, messages=messages, **fields)


def no_model_facts(clients: Clients) -> None:
    """Nothing was learned about any model (visible on the shared router of `wrap`)."""
    if clients.router is not None:
        assert clients.router.learned == ()


# -- an organization refusal: per credential, never a model fact --------------------------------

ORGANIZATION_WORDINGS = [
    URL_FETCH_DISABLED,
    "URL sources are disabled for your organization.",
    "messages.0.content.0.source: fetching URLs is turned off for this organization",
]


@pytest.mark.parametrize("wording", ORGANIZATION_WORDINGS)
def test_an_organization_refusal_is_remembered_for_that_key_only(
    fake: FakeAnthropic, clients: Clients, upstream: Upstream, wording: str
) -> None:
    fake.refusals.disable_url_fetch(KEY_A, message=wording)
    sent = ask(URL_IMAGE)

    # 1. Key A, URL image: the API refuses it, once; the caller gets the API's class.
    with pytest.raises(OrganizationURLFetchDisabledError) as first:
        send(clients, KEY_A, SONNET, sent)
    assert wording in first.value.message
    [refused] = upstream.since()
    assert refused.model == SONNET and refused.body["messages"] == sent

    # 2. Key A again, another model: refused locally with the API's reason and code
    #    (through the proxy the SDK raises the same class; `wrap` raises its base class).
    with pytest.raises(anthropic.BadRequestError) as local:
        send(clients, KEY_A, HAIKU, sent)
    assert wording in local.value.message
    assert local.value.error_code == "organization_url_fetch_disabled"
    assert upstream.since() == []

    # 3. Key A without URL sources: sent as it is, to the model asked for.
    send(clients, KEY_A, SONNET, ask(SMALL_IMAGE))
    [plain] = upstream.since()
    assert plain.model == SONNET and plain.body["messages"] == ask(SMALL_IMAGE)

    # 4. Key B, the same URL image: its organization has URL sources on.
    answer = send(clients, KEY_B, SONNET, sent)
    [other] = upstream.since()
    assert other.model == SONNET and other.body["messages"] == sent
    assert credential_of(other) == KEY_B and answer.model == SONNET
    no_model_facts(clients)


def test_mcp_servers_and_web_fetch_are_refused_locally_after_the_first_refusal(
    fake: FakeAnthropic, clients: Clients, upstream: Upstream
) -> None:
    fake.refusals.disable_url_fetch(KEY_A)
    web_fetch = [{"type": "web_fetch_20250910", "name": "web_fetch"}]
    with pytest.raises(OrganizationURLFetchDisabledError):
        send(clients, KEY_A, OPUS, ask(), tools=web_fetch)
    assert len(upstream.since()) == 1
    with pytest.raises(anthropic.BadRequestError) as local:
        send(clients, KEY_A, OPUS, ask(URL_IMAGE))
    assert local.value.error_code == "organization_url_fetch_disabled"
    assert upstream.since() == []
    send(clients, KEY_B, OPUS, ask(), tools=web_fetch)
    [other] = upstream.since()
    assert other.body["tools"] == web_fetch
    no_model_facts(clients)


# -- a payload refusal: nothing learned, the next request goes where it went -------------------


def too_big_image() -> list[dict[str, Any]]:
    data = base64.b64encode(b"\x89PNG" + b"\0" * (5 * 1024 * 1024 + 16)).decode()
    big = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    return ask(big)


def too_many_images() -> list[dict[str, Any]]:
    return ask(*[SMALL_IMAGE] * 101)


@pytest.mark.parametrize("payload", [too_big_image, too_many_images], ids=["5mb", "101-images"])
def test_a_payload_refusal_teaches_nothing_about_the_model(
    clients: Clients, upstream: Upstream, payload: Any
) -> None:
    # 1. The API's own payload limit: one request, the API's answer, no retry.
    with pytest.raises(anthropic.BadRequestError) as refused:
        send(clients, KEY_A, SONNET, payload())
    assert "5 MB maximum" in refused.value.message or "too many images" in refused.value.message
    [first] = upstream.since()
    assert first.model in (SONNET, None)  # None: too big for the fake to keep its JSON

    # 2. A normal image request to the same model goes to it, unchanged.
    answer = send(clients, KEY_A, SONNET, ask(SMALL_IMAGE))
    [second] = upstream.since()
    assert second.model == SONNET == answer.model
    assert second.body["messages"] == ask(SMALL_IMAGE)
    no_model_facts(clients)


def test_a_payload_refusal_with_its_error_code_teaches_nothing(
    fake: FakeAnthropic, clients: Clients, upstream: Upstream
) -> None:
    # The message alone names the image block (the words of a capability refusal); the
    # code says it is about the image's size.
    fake.faults.add(
        "/v1/messages",
        status=400,
        message="messages.0.content.0: image is not supported at this size on this model.",
        error_code="image_dimensions_too_large",
        details={"max_side_length_pixels": 8000, "paths": ["messages.0.content.0"]},
    )
    with pytest.raises(ImageDimensionsTooLargeError):
        send(clients, KEY_A, HAIKU, ask(SMALL_IMAGE))
    assert [r.model for r in upstream.since()] == [HAIKU]
    send(clients, KEY_A, HAIKU, ask(SMALL_IMAGE))
    [again] = upstream.since()
    assert again.model == HAIKU and again.body["messages"] == ask(SMALL_IMAGE)
    no_model_facts(clients)


# -- a model that starts refusing a parameter mid-run -------------------------------------------


OLD_VERSION = "2023-06-01"
"""Sampling parameters exist up to this API version (SDK 2.x sends 2026-10-21, which has
none): a caller on it sends them with ``extra_body``."""


def sample(clients: Clients, key: str, model: str, **sampling: Any) -> Any:
    client = clients(key, version=OLD_VERSION)
    return client.messages.create(model=model, max_tokens=1000, messages=HELLO, extra_body=sampling)


HELLO = ask(text="Write a haiku.")


def generated_wordings(seed: int, count: int) -> list[str]:
    """Variations of the real texts (`PARAMETER_REFUSALS`): quoting, case, the
    preposition, and a trailing hint, drawn with a fixed seed."""
    rng = random.Random(seed)
    made: list[str] = []
    while len(made) < count:
        quote = rng.choice(["`", "'", '"', ""])
        head = f"{quote}{{name}}{quote} is deprecated {rng.choice(['for', 'in', 'on'])} this model"
        tail = rng.choice(["", ".", ". Remove it.", "; use the model's default instead."])
        text = head + tail
        text = text.upper().replace("{NAME}", "{name}") if rng.random() < 0.3 else text
        if text not in made and text not in PARAMETER_REFUSALS:
            made.append(text)
    return made


@pytest.mark.parametrize("wording", [*PARAMETER_REFUSALS, *generated_wordings(16, 3)])
def test_a_model_that_starts_refusing_temperature_costs_one_refusal(
    fake: FakeAnthropic, clients: Clients, upstream: Upstream, wording: str
) -> None:
    # 1. Before: temperature reaches the model as sent.
    sample(clients, KEY_A, OPUS, temperature=0.2)
    [before] = upstream.since()
    assert before.body["temperature"] == 0.2

    # The API changes: the model now refuses temperature outright.
    fake.refusals.refuse_parameter(OPUS, "temperature", message=wording)

    # 2. One refusal, learned; the same request goes out again without temperature.
    answer = sample(clients, KEY_A, OPUS, temperature=0.2)
    refused, resent = upstream.since()
    assert refused.body["temperature"] == 0.2 and "temperature" not in resent.body
    assert refused.model == resent.model == answer.model == OPUS
    assert refused.body["messages"] == resent.body["messages"] == HELLO

    # 3. Afterwards: stripped on the first send, and the caller is told.
    raw = clients(KEY_A, version=OLD_VERSION).messages.with_raw_response.create(
        model=OPUS, max_tokens=1000, messages=HELLO, extra_body={"temperature": 0.7, "top_k": 40}
    )
    [stripped] = upstream.since()
    assert "temperature" not in stripped.body and stripped.body["top_k"] == 40
    assert raw.headers["caproute-outcome"] == "adjusted"
    assert "temperature" in raw.headers["caproute-changes"]

    # 4. Other models keep theirs.
    sample(clients, KEY_A, SONNET, temperature=0.2)
    [kept] = upstream.since()
    assert kept.model == SONNET and kept.body["temperature"] == 0.2

    # 5. Another key: at most one refusal for it too (a shared router already knows).
    sample(clients, KEY_B, OPUS, temperature=0.2)
    sent_b = upstream.since()
    assert len([r for r in sent_b if "temperature" in r.body]) <= 1
    assert "temperature" not in sent_b[-1].body
    if clients.router is not None:
        learned = {(f.model, f.key) for f in clients.router.learned}
        assert learned == {(OPUS, "parameters.temperature")}
