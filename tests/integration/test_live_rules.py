"""Routing that holds against the live API: retired models, known-beats-unknown, learning,
the thinking/sampling rules, max_tokens never raised, the cold start, bounded fallback.

Runs in both SDK generations (2.x here, 0.x with ``make test-sdk0``), sync and async,
through `wrap()` (the SDK middleware) and a routed HTTP client (the transport). Each test
first shows the request failing without caproute, then accepted through it on the first
attempt — except learning, which succeeds on the second attempt the first time and on
the first attempt afterwards.

The fake's lineup (the truth) is not the registry caproute starts from: caproute reads
it live (`RegistryFetcher`) over an older snapshot that still lists a model the API has
since retired and left out of its list.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import pytest
from sdk_helpers import API_KEY, HI, HTTP_FLAVOUR, opened, resolve

import caproute
from caproute import Decision, LiveRouter, Registry
from caproute._registry.fetch import RegistryFetcher
from caproute.testing import FakeAnthropic, make_model

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"]),
]

HAIKU, OLD_HAIKU, RETIRED_HAIKU = "claude-haiku-9", "claude-haiku-8", "claude-haiku-7-20250101"
SONNET, OPUS = "claude-sonnet-9", "claude-opus-9"
# `claude-sonnet-latest` is an alias only `GET /v1/models/{alias}` resolves: no list
# shows it, and it is not a dated id's undated form.
ALIASES = {"claude-haiku-7": RETIRED_HAIKU, "claude-sonnet-latest": SONNET}


def truth() -> list[dict[str, Any]]:
    """What the API says (newest first). Optional leaves are left out where a model
    predates them, as the API writes it."""
    return [
        make_model(
            OPUS,
            line="opus",
            # Adaptive, always on: thinking can't be turned off.
            unsupported=["thinking.types.enabled", "thinking.types.disabled"],
        ),
        make_model(
            SONNET, line="sonnet", omit=["effort.xhigh", "context_management.compact_20260112"]
        ),
        make_model(
            HAIKU,
            line="haiku",
            max_tokens=64_000,
            unsupported=["effort", "thinking.types.adaptive", "thinking.types.between_tools"],
        ),
        make_model(OLD_HAIKU, line="haiku", lifecycle="deprecated"),
        make_model(RETIRED_HAIKU, line="haiku", lifecycle="retired"),
    ]


def older_snapshot() -> Registry:
    """What caproute shipped with: the retired haiku was still active then."""
    return Registry.from_models(
        [make_model(RETIRED_HAIKU, line="haiku"), make_model(OLD_HAIKU, line="haiku")],
        aliases={"claude-haiku-7": RETIRED_HAIKU},
    )


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"models": truth(), "aliases": ALIASES, "api_key": API_KEY}


@pytest.fixture
def decisions() -> list[Decision]:
    return []


@pytest.fixture(params=["wrap", "transport"])
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def fetcher(fake: FakeAnthropic, **options: Any) -> RegistryFetcher:
    options.setdefault("initial", older_snapshot())
    options.setdefault("cache_file", False)
    return RegistryFetcher(api_key=API_KEY, base_url=fake.url, **options)


def sdk(fake: FakeAnthropic, *, is_async: bool, **options: Any) -> Any:
    cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    return cls(**{"base_url": fake.url, "api_key": API_KEY, "max_retries": 0, **options})


def routed(
    fake: FakeAnthropic, router: LiveRouter, path: str, *, is_async: bool, **options: Any
) -> Any:
    if path == "wrap":
        return caproute.wrap(sdk(fake, is_async=is_async, **options), router=router)
    factory = caproute.routed_async_http_client if is_async else caproute.routed_http_client
    http = factory(router=router, flavour=HTTP_FLAVOUR)
    return sdk(fake, is_async=is_async, http_client=http, **options)


def live_router(fake: FakeAnthropic, decisions: list[Decision], **options: Any) -> LiveRouter:
    source = fetcher(fake)
    source.refresh()  # the live list has landed (cold start is tested on its own)
    return LiveRouter(source, on_decision=decisions.append, **options)


async def refused_bare(fake: FakeAnthropic, is_async: bool, status: int, **request: Any) -> str:
    """The request as sent fails upstream without caproute; the error message."""
    async with opened(sdk(fake, is_async=is_async)) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await resolve(client.messages.create(**request))
    assert caught.value.status_code == status
    return str(caught.value.message)


async def send(client: Any, **request: Any) -> Any:
    async with opened(client):
        return await resolve(client.messages.with_raw_response.create(**request))


def sent(fake: FakeAnthropic, mark: int = 0) -> list[dict[str, Any]]:
    return [r.body for r in fake.requests[mark:] if r.path == "/v1/messages"]


# -- 1. retired models, listed or not --------------------------------------------------------


async def test_a_retired_model_the_list_leaves_out_is_rerouted_by_its_line(
    fake: FakeAnthropic, decisions: list[Decision], is_async: bool, path: str
) -> None:
    request = {"model": "claude-haiku-7", "max_tokens": 100, "messages": HI}
    await refused_bare(fake, is_async, 404, **request)
    mark = len(fake.requests)
    router = live_router(fake, decisions)
    # The live list left it out: kept and routed, not retired on the list's word alone.
    assert router.registry.unlisted.get(RETIRED_HAIKU)
    assert not router.registry.is_retired(RETIRED_HAIKU)

    raw = await send(routed(fake, router, path, is_async=is_async), **request)
    assert raw.status_code == 200
    # The API's 404 confirms it; the same call goes on to the line's newest active model.
    assert [b["model"] for b in sent(fake, mark)] == ["claude-haiku-7", HAIKU]
    assert raw.headers["caproute-outcome"] == "rerouted"
    assert router.registry.is_retired(RETIRED_HAIKU)

    mark = len(fake.requests)
    raw = await send(routed(fake, router, path, is_async=is_async), **request)
    assert [b["model"] for b in sent(fake, mark)] == [HAIKU]  # first attempt from now on
    reasons = {c.model: c.reason for c in decisions[-1].candidates}
    assert "404" in (reasons[RETIRED_HAIKU] or "")


async def test_a_server_listing_retired_models_is_read_the_same_way(
    fake: FakeAnthropic, decisions: list[Decision], is_async: bool, path: str
) -> None:
    source = fetcher(
        fake, initial=Registry.from_models([]), lifecycle=("active", "deprecated", "retired")
    )
    source.refresh()
    assert source.current().lifecycle(RETIRED_HAIKU) == "retired"
    router = LiveRouter(source, on_decision=decisions.append)
    mark = len(fake.requests)
    raw = await send(
        routed(fake, router, path, is_async=is_async),
        model="claude-haiku-7",
        max_tokens=100,
        messages=HI,
    )
    assert raw.status_code == 200
    assert [b["model"] for b in sent(fake, mark)] == [HAIKU]


async def test_a_confirmed_retirement_survives_in_the_cache_file(
    fake: FakeAnthropic, tmp_path: Path, is_async: bool, path: str
) -> None:
    cache = tmp_path / "registry.json"
    first = fetcher(fake, cache_file=True, cache_path=cache)
    first.refresh()
    request = {"model": "claude-haiku-7", "max_tokens": 100, "messages": HI}
    await send(routed(fake, LiveRouter(first), path, is_async=is_async), **request)
    learned = json.loads(cache.read_text())["learned"]
    assert [(f["model"], f["key"], f["value"]) for f in learned] == [
        (RETIRED_HAIKU, "lifecycle", "retired")
    ]
    # A later run starts from the cache alone (no live fetch yet): still known, rerouted.
    later = RegistryFetcher(api_key=API_KEY, base_url=fake.url, cache_path=cache, background=False)
    router = LiveRouter(later)
    mark = len(fake.requests)
    raw = await send(routed(fake, router, path, is_async=is_async), **request)
    assert raw.status_code == 200
    assert [b["model"] for b in sent(fake, mark)] == [HAIKU]


async def test_a_name_no_source_ever_saw_gets_the_apis_own_404(
    fake: FakeAnthropic, decisions: list[Decision], is_async: bool, path: str
) -> None:
    router = live_router(fake, decisions)
    client = routed(fake, router, path, is_async=is_async)
    async with opened(client):
        with pytest.raises(anthropic.NotFoundError):
            await resolve(
                client.messages.create(model="claude-haiku-77", max_tokens=10, messages=HI)
            )
    assert [b["model"] for b in sent(fake)] == ["claude-haiku-77"]
    assert decisions[-1].outcome == "passthrough"
    # The Models API was asked about the name once, and its 404 is not asked again.
    assert fake.count("/v1/models/claude-haiku-77") == 1
    async with opened(routed(fake, router, path, is_async=is_async)) as again:
        with pytest.raises(anthropic.NotFoundError):
            await resolve(
                again.messages.create(model="claude-haiku-77", max_tokens=10, messages=HI)
            )
    assert fake.count("/v1/models/claude-haiku-77") == 1


async def test_an_alias_only_the_models_api_resolves_is_routed_on_the_first_attempt(
    fake: FakeAnthropic, decisions: list[Decision], is_async: bool, path: str
) -> None:
    # The sonnet predates effort `xhigh`: sent as an unknown name, the API refused it.
    request = {
        "model": "claude-sonnet-latest",
        "max_tokens": 100,
        "messages": HI,
        "output_config": {"effort": "xhigh"},
    }
    assert "effort" in await refused_bare(fake, is_async, 400, **request)
    router = live_router(fake, decisions)
    mark = len(fake.requests)

    raw = await send(routed(fake, router, path, is_async=is_async), **request)

    assert raw.status_code == 200
    bodies = sent(fake, mark)
    assert len(bodies) == 1 and bodies[0]["output_config"] == {"effort": "high"}
    assert bodies[0]["model"] == "claude-sonnet-latest"  # the caller's spelling is kept
    assert fake.count("/v1/models/claude-sonnet-latest") == 1
    assert router.registry.resolve("claude-sonnet-latest") == SONNET


async def test_a_batchs_alias_items_are_looked_up_and_routed_before_the_batch_is_sent(
    fake: FakeAnthropic, decisions: list[Decision], is_async: bool, path: str
) -> None:
    params = {
        "model": "claude-sonnet-latest",
        "max_tokens": 100,
        "messages": HI,
        "output_config": {"effort": "xhigh"},  # the sonnet predates `xhigh`
    }
    requests = [{"custom_id": f"r{n}", "params": params} for n in range(3)]
    router = live_router(fake, decisions)
    mark = len(fake.requests)
    async with opened(routed(fake, router, path, is_async=is_async)) as client:
        await resolve(client.messages.batches.create(requests=requests))
    [created] = [r.body for r in fake.requests[mark:] if r.path == "/v1/messages/batches"]
    assert [r["params"]["output_config"] for r in created["requests"]] == [{"effort": "high"}] * 3
    assert fake.count("/v1/models/claude-sonnet-latest") == 1


# -- 2. known beats unknown ------------------------------------------------------------------


async def test_a_missing_optional_leaf_is_read_as_unsupported(
    fake: FakeAnthropic, decisions: list[Decision], is_async: bool, path: str
) -> None:
    request = {
        "model": SONNET,
        "max_tokens": 100,
        "messages": HI,
        "extra_body": {
            "output_config": {"effort": "xhigh"},
            "context_management": {"edits": [{"type": "compact_20260112"}]},
        },
    }
    await refused_bare(fake, is_async, 400, **request)
    mark = len(fake.requests)
    raw = await send(routed(fake, live_router(fake, decisions), path, is_async=is_async), **request)
    assert raw.status_code == 200
    [body] = sent(fake, mark)
    assert body["model"] == SONNET
    assert body["output_config"] == {"effort": "high"}  # the nearest level known to exist
    assert "context_management" not in body


async def test_a_candidate_known_to_support_the_request_beats_an_unknown_one(
    fake: FakeAnthropic, decisions: list[Decision], is_async: bool, path: str
) -> None:
    # A snapshot that doesn't describe HAIKU's effort at all (an older API version):
    # its effort support is unknown; SONNET states it.
    snapshot = Registry.from_models(
        [
            make_model(SONNET, line="sonnet"),
            make_model(HAIKU, line="haiku", max_tokens=64_000, omit=["effort"]),
        ]
    )
    router = LiveRouter(snapshot, on_decision=decisions.append)
    request = {
        "model": HAIKU,
        "max_tokens": 100,
        "messages": HI,
        "extra_body": {"output_config": {"effort": "low"}},
    }
    await refused_bare(fake, is_async, 400, **request)
    mark = len(fake.requests)
    raw = await send(routed(fake, router, path, is_async=is_async), **request)
    assert raw.status_code == 200
    # Adjusted to a value known to work (no effort), not gambled on.
    [body] = sent(fake, mark)
    assert (body["model"], "output_config" in body) == (HAIKU, False)


# -- 3. learning from the API's refusals ------------------------------------------------------


@pytest.mark.parametrize("wording", ["api", "terse", "verbose"])
async def test_a_refusal_is_learned_then_never_repeated(
    fake: FakeAnthropic, decisions: list[Decision], is_async: bool, path: str, wording: str
) -> None:
    fake.wording = wording  # type: ignore[assignment]
    # caproute's registry still says SONNET has effort 'max'; the API no longer agrees.
    router = live_router(fake, decisions)
    fake.update_model(SONNET, unsupported=["effort.max"])
    request = {
        "model": SONNET,
        "max_tokens": 100,
        "messages": HI,
        "extra_body": {"output_config": {"effort": "max"}},
    }
    await refused_bare(fake, is_async, 400, **request)

    mark = len(fake.requests)
    raw = await send(routed(fake, router, path, is_async=is_async), **request)
    assert raw.status_code == 200
    assert [b.get("output_config") for b in sent(fake, mark)] == [
        {"effort": "max"},
        {"effort": "high"},
    ]
    assert [(f.model, f.key, f.value) for f in router.learned] == [(SONNET, "effort.max", False)]

    mark = len(fake.requests)
    raw = await send(routed(fake, router, path, is_async=is_async), **request)
    assert [b.get("output_config") for b in sent(fake, mark)] == [{"effort": "high"}]


async def test_a_value_caproute_never_heard_of_is_the_apis_to_judge_and_teaches_only_itself(
    fake: FakeAnthropic, decisions: list[Decision], is_async: bool, path: str
) -> None:
    # No model states effort 'ultra' and caproute doesn't know it: a level newer than
    # this release, or a typo. Sent as is; the API's refusal (it lists the levels it
    # takes) teaches that this model lacks 'ultra', not that it lacks effort.
    router = live_router(fake, decisions)
    ultra = {"model": SONNET, "max_tokens": 100, "messages": HI}
    ultra["extra_body"] = {"output_config": {"effort": "ultra"}}
    mark = len(fake.requests)
    raw = await send(routed(fake, router, path, is_async=is_async), **ultra)
    assert raw.status_code == 200
    assert [b.get("output_config") for b in sent(fake, mark)] == [{"effort": "ultra"}, None]
    assert [(f.model, f.key) for f in router.learned] == [(SONNET, "effort.ultra")]

    high = {**ultra, "extra_body": {"output_config": {"effort": "high"}}}
    mark = len(fake.requests)
    await send(routed(fake, router, path, is_async=is_async), **high)
    assert [b.get("output_config") for b in sent(fake, mark)] == [{"effort": "high"}]


async def test_an_unattributable_400_reaches_the_caller_unchanged(
    fake: FakeAnthropic, decisions: list[Decision], is_async: bool, path: str
) -> None:
    fake.faults.add("/v1/messages", status=400, message="something went wrong with the request")
    client = routed(fake, live_router(fake, decisions), path, is_async=is_async)
    async with opened(client):
        with pytest.raises(anthropic.BadRequestError) as caught:
            await resolve(client.messages.create(model=SONNET, max_tokens=10, messages=HI))
    assert caught.value.body["error"]["message"] == "something went wrong with the request"
    assert len(sent(fake)) == 1


# -- 4. rules no capability key states ---------------------------------------------------------


async def test_sampling_with_thinking_is_adjusted_and_thinking_kept(
    fake: FakeAnthropic, decisions: list[Decision], is_async: bool, path: str
) -> None:
    request = {
        "model": SONNET,
        "max_tokens": 4000,
        "messages": HI,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "extra_body": {"temperature": 0.3, "top_k": 10, "top_p": 0.5},
        "extra_headers": {"anthropic-version": "2023-06-01"},
    }
    message = await refused_bare(fake, is_async, 400, **request)
    assert "temperature" in message
    mark = len(fake.requests)
    raw = await send(routed(fake, live_router(fake, decisions), path, is_async=is_async), **request)
    assert raw.status_code == 200
    [body] = sent(fake, mark)
    assert body["thinking"]["type"] == "enabled"
    assert ("temperature" in body, "top_k" in body, body["top_p"]) == (False, False, 0.95)


async def test_a_model_that_always_thinks_gets_no_foreign_sampling(
    fake: FakeAnthropic, decisions: list[Decision], is_async: bool, path: str
) -> None:
    request = {
        "model": OPUS,
        "max_tokens": 100,
        "messages": HI,
        "extra_body": {"temperature": 0.2},
        "extra_headers": {"anthropic-version": "2023-06-01"},
    }
    await refused_bare(fake, is_async, 400, **request)
    mark = len(fake.requests)
    raw = await send(routed(fake, live_router(fake, decisions), path, is_async=is_async), **request)
    assert raw.status_code == 200
    assert "temperature" not in sent(fake, mark)[0]


# -- 5. max_tokens is never raised ------------------------------------------------------------


@pytest.mark.parametrize(("model", "expected"), [(SONNET, {"type": "adaptive"}), (HAIKU, None)])
async def test_enabled_thinking_that_cannot_fit_never_raises_max_tokens(
    fake: FakeAnthropic,
    decisions: list[Decision],
    is_async: bool,
    path: str,
    model: str,
    expected: dict[str, str] | None,
) -> None:
    request = {
        "model": model,
        "max_tokens": 1000,
        "messages": HI,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    await refused_bare(fake, is_async, 400, **request)
    mark = len(fake.requests)
    raw = await send(routed(fake, live_router(fake, decisions), path, is_async=is_async), **request)
    assert raw.status_code == 200
    [body] = sent(fake, mark)
    assert body["max_tokens"] == 1000
    assert body.get("thinking") == expected


# -- 6. cold start ---------------------------------------------------------------------------


async def test_the_first_request_waits_for_the_first_live_fetch(
    fake: FakeAnthropic, decisions: list[Decision], is_async: bool, path: str
) -> None:
    # The embedded snapshot has never heard of these models; the first call is decided
    # before the first live fetch has landed, so it waits for it.
    fake.update_model(SONNET, unsupported=["effort.max"])
    source = RegistryFetcher(api_key=API_KEY, base_url=fake.url, cache_file=False)
    router = LiveRouter(source, on_decision=decisions.append)
    request = {
        "model": SONNET,
        "max_tokens": 100,
        "messages": HI,
        "extra_body": {"output_config": {"effort": "max"}},
    }
    raw = await send(routed(fake, router, path, is_async=is_async), **request)
    assert raw.status_code == 200
    assert [b.get("output_config") for b in sent(fake)] == [{"effort": "high"}]
    assert fake.count("/v1/models") >= 1
    assert decisions[-1].registry_source.startswith("live")


# -- 7. fallback is bounded and predictable ------------------------------------------------------


async def test_overload_fallback_stays_in_the_price_class_and_sends_are_bounded(
    fake: FakeAnthropic, decisions: list[Decision], is_async: bool, path: str
) -> None:
    for model in (HAIKU, OLD_HAIKU, SONNET, OPUS):
        fake.overload(model)
    router = live_router(fake, decisions)
    client = routed(fake, router, path, is_async=is_async, max_retries=2)
    async with opened(client):
        with pytest.raises(anthropic.APIStatusError) as caught:
            await resolve(client.messages.create(model=HAIKU, max_tokens=10, messages=HI))
    assert caught.value.status_code == 529
    # One send per SDK attempt, one fallback (none here: the haiku line has no other
    # active model, and the deprecated one is never an alternative): 3 sends in all.
    assert [b["model"] for b in sent(fake)] == [HAIKU, HAIKU, HAIKU]
    assert {d.model for d in decisions} == {HAIKU}
