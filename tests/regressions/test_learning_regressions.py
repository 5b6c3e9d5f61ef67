"""Issue 22, bugs 1-4, 6 and 15: what the router learns from the API's answers, and for
how long.

End to end where the bug is about a running router: the real SDK, `caproute.wrap` or
`caproute.middleware`, and the fake API answering the way the real one does, so the
tests hold whatever shape learning takes inside. Clocks are injected
(`LiveRouter(wall_clock=...)`): nothing waits for a TTL to pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import pytest

import caproute
from caproute import LearnedFact, LiveRouter, Registry
from caproute._core.flow import MarkOverloaded
from caproute.testing import FakeAnthropic, make_model

KEY = "test-key-regressions"
BIG, SMALL, TWIN = "claude-big-2", "claude-small-1", "claude-twin-1"
HOUR, DAY = 3600.0, 86400.0
HI = [{"role": "user", "content": "hi"}]
IMAGE = {
    "type": "image",
    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
}
# What the API holds: BIG has no `max` effort (the router's registry doesn't know yet).
TRUTH = [
    make_model(BIG, unsupported=["effort.max"], line="big"),
    make_model(SMALL, unsupported=["image_input"], line="small"),
    make_model(TWIN, unsupported=["image_input"], line="small"),
]
# What the router was told: BIG does everything.
BELIEVED = [
    make_model(BIG, line="big"),
    make_model(SMALL, unsupported=["image_input"], line="small"),
    make_model(TWIN, unsupported=["image_input"], line="small"),
]


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"models": TRUTH, "api_key": KEY}


def sent(fake: FakeAnthropic, since: int = 0) -> list[str | None]:
    """The model of each ``/v1/messages`` request the fake got (after request `since`)."""
    return [r.model for r in fake.requests[since:] if r.path == "/v1/messages"]


def router_for(clock: Clock | None = None, **options: Any) -> LiveRouter:
    wall = clock or Clock()
    return LiveRouter(Registry.from_models(BELIEVED), wall_clock=wall, **options)


# -- bug 1: an ambiguous refusal teaches nothing ---------------------------------------------


def refused_with(fake: FakeAnthropic, message: str) -> LiveRouter:
    """A router, and the fake set to refuse the next request with this 400 message."""
    fake.faults.add("/v1/messages", status=400, error_type="invalid_request_error", message=message)
    return router_for()


def thinking_with_effort(model: str, effort: str) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 2000,
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": effort},
        "messages": HI,
    }


def test_a_refusal_naming_two_parameters_equally_teaches_nothing(fake: FakeAnthropic) -> None:
    """Bug 1: attribution's tie rule dropped (the first-sorted parameter was learned).

    The message fits the adaptive thinking and the ``max`` effort equally (each is
    named by its words, neither by its path): nothing may be learned, and the caller
    gets the API's answer unchanged, after one send.
    """
    router = refused_with(fake, "effort max with adaptive thinking is not supported")
    body = thinking_with_effort(TWIN, "max")
    with (
        caproute.wrap(fake.client(), router=router) as client,
        pytest.raises(anthropic.BadRequestError, match="effort max with adaptive"),
    ):
        client.messages.create(**body)

    assert router.learned == ()
    assert sent(fake) == [TWIN]


def test_a_refusal_naming_one_parameter_best_is_learned(fake: FakeAnthropic) -> None:
    """Bug 1, the control: the same setting with one clear winner does teach."""
    router = refused_with(fake, "thinking.type: adaptive is not supported on this model")
    body = thinking_with_effort(BIG, "high")
    with caproute.wrap(fake.client(), router=router) as client:
        client.messages.create(**body)

    assert [(f.model, f.key) for f in router.learned] == [(BIG, "thinking.types.adaptive")]


# -- bug 2: the model that refused is the one that learns ---------------------------------


def test_a_fact_learned_after_a_reroute_is_the_refusing_models(fake: FakeAnthropic) -> None:
    """Bug 2: the fact was recorded on the requested model, not on the one that refused.

    SMALL can't see images, so the call goes to BIG; BIG refuses ``effort: max`` (the
    router thought it had it). BIG must learn it, the call must then succeed on BIG with
    a lower effort, and the next such call must go out right the first time.
    """
    router = router_for()
    body = {
        "model": SMALL,
        "max_tokens": 100,
        "output_config": {"effort": "max"},
        "messages": [{"role": "user", "content": [IMAGE]}],
    }
    with caproute.wrap(fake.client(), router=router) as client:
        raw = client.messages.with_raw_response.create(**body)
        assert raw.parse().model == BIG
        assert sent(fake) == [BIG, BIG]
        assert [(f.model, f.key, f.value) for f in router.learned] == [(BIG, "effort.max", False)]

        mark = len(fake.requests)
        client.messages.create(**body)
    assert sent(fake, mark) == [BIG]
    assert fake.requests[-1].body["output_config"]["effort"] != "max"


# -- bug 3: a retirement is remembered for 7 days, a capability fact for 6 hours -----------


def test_a_model_found_retired_is_remembered_for_seven_days(fake: FakeAnthropic) -> None:
    """Bug 3: a retirement kept for the 6 h capability TTL instead of the 7 d one."""
    clock = Clock()
    router = router_for(clock)
    fake.retire(SMALL)
    with caproute.wrap(fake.client(), router=router) as client:
        assert client.messages.create(model=SMALL, max_tokens=10, messages=HI).model == TWIN

    [fact] = router.learned
    assert (fact.model, fact.key, fact.value) == (SMALL, "lifecycle", "retired")
    assert fact.expires_at - fact.learned_at == 7 * DAY
    plain = {"model": SMALL, "max_tokens": 10, "messages": HI}
    clock.now += 6 * HOUR + 1
    assert router.route(plain).decision.model == TWIN
    clock.now += 7 * DAY - 6 * HOUR - 2
    assert router.route(plain).decision.model == TWIN
    clock.now += 2
    assert router.route(plain).decision.model == SMALL
    assert router.learned == ()


def test_retired_forgets_an_expired_retirement() -> None:
    """Found while writing the bug 3 tests: `retired` says "still remembered", and
    forgets a retirement when routing does."""
    clock = Clock()
    router = router_for(clock)
    router.learn(SMALL, "lifecycle", "retired", "told by a test")
    clock.now += 7 * DAY + 1
    assert router.retired == frozenset()


def test_a_capability_fact_is_kept_for_six_hours(fake: FakeAnthropic) -> None:
    """Bug 3, the other TTL: a fact learned from a 400 lasts 6 h, not 7 d."""
    clock = Clock()
    router = router_for(clock)
    body = {"model": BIG, "max_tokens": 100, "output_config": {"effort": "max"}, "messages": HI}
    with caproute.wrap(fake.client(), router=router) as client:
        client.messages.create(**body)

    [fact] = router.learned
    assert fact.expires_at - fact.learned_at == 6 * HOUR
    clock.now += 6 * HOUR - 1
    assert len(router.learned) == 1
    clock.now += 2
    assert router.learned == ()


@pytest.mark.parametrize(
    ("key", "value", "ttl"),
    [
        ("lifecycle", "retired", 7 * DAY),
        ("effort.max", False, 6 * HOUR),
        ("max_tokens", 512, 6 * HOUR),
    ],
)
def test_facts_taught_by_hand_get_the_ttl_of_their_kind(key: str, value: Any, ttl: float) -> None:
    """Bug 3, through `LiveRouter.learn` (what the flow's actions and tools call)."""
    clock = Clock()
    router = router_for(clock)
    fact = router.learn(BIG, key, value, "told by a test")

    assert (fact.learned_at, fact.expires_at) == (clock.now, clock.now + ttl)


def test_custom_ttls_are_used_for_their_own_kind() -> None:
    """Bug 3: the two TTL settings must not be swapped or merged."""
    router = router_for(learned_ttl_s=10.0, retired_ttl_s=1000.0)
    retired = router.learn(SMALL, "lifecycle", "retired", "t")
    learned = router.learn(BIG, "effort.max", False, "t")
    assert retired.expires_at - retired.learned_at == 1000.0
    assert learned.expires_at - learned.learned_at == 10.0


# -- bug 4: expired facts in a cache file are not adopted ----------------------------------


def test_expired_facts_in_a_cache_file_are_not_adopted(tmp_path: Path) -> None:
    """Bug 4: a cache file's facts adopted on load whatever their expiry.

    The file says BIG lacks ``effort.max`` (expired an hour ago) and SMALL answers at
    most 512 tokens (still valid). The first request routed after loading must see
    only the valid fact.
    """
    clock = Clock()
    expired = LearnedFact(BIG, "effort.max", False, clock.now - 7 * HOUR, clock.now - HOUR, "old")
    valid = LearnedFact(SMALL, "max_tokens", 512, clock.now - HOUR, clock.now + HOUR, "fresh")
    path = tmp_path / "registry.json"
    caproute.save_snapshot(Registry.from_models(BELIEVED).with_learned([expired, valid]), path)

    router = LiveRouter(caproute.load_snapshot(path), wall_clock=clock)
    effort = {"model": BIG, "max_tokens": 100, "output_config": {"effort": "max"}, "messages": HI}
    first = router.route(effort)
    limited = router.route({"model": SMALL, "max_tokens": 1000, "messages": HI})

    assert first.decision.outcome == "unchanged"
    assert limited.body["max_tokens"] == 512
    assert [(f.model, f.key) for f in router.learned] == [(SMALL, "max_tokens")]


def test_a_fact_expiring_exactly_now_is_not_adopted(tmp_path: Path) -> None:
    """Bug 4 at the boundary: ``expires_at == now`` is expired."""
    clock = Clock()
    ending = LearnedFact(BIG, "effort.max", False, clock.now - HOUR, clock.now, "ends now")
    path = tmp_path / "registry.json"
    caproute.save_snapshot(Registry.from_models(BELIEVED).with_learned([ending]), path)

    router = LiveRouter(caproute.load_snapshot(path), wall_clock=clock)
    effort = {"model": BIG, "max_tokens": 100, "output_config": {"effort": "max"}, "messages": HI}
    assert router.route(effort).decision.outcome == "unchanged"


# -- bug 6: the SDK's retries are not multiplied by the fallback -----------------------------


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.anyio
async def test_the_middleware_falls_back_once_per_call_not_per_sdk_retry(
    fake: FakeAnthropic, is_async: bool
) -> None:
    """Bug 6: the SDK's retry count ignored in the middleware.

    Every send answers 529 (the SDK retries at once: ``retry-after-ms: 1``). With no
    cool-down between SDK attempts, the first attempt may fall back once (SMALL →
    TWIN, same price class), and each SDK retry sends exactly once: 2 + 1 + 1 sends
    for ``max_retries=2``. Ignoring the retry count makes it 2 + 2 + 2.
    """
    fake.faults.add("/v1/messages", status=529, headers={"retry-after-ms": "1"}, times=None)
    router = router_for(overload_cooldown_s=0.0)
    options = {"base_url": fake.url, "api_key": KEY, "max_retries": 2}
    middleware = [caproute.middleware(router=router)]
    if is_async:
        async with anthropic.AsyncAnthropic(middleware=middleware, **options) as aclient:
            with pytest.raises(anthropic.APIStatusError) as caught:
                await aclient.messages.create(model=SMALL, max_tokens=10, messages=HI)
    else:
        with (
            anthropic.Anthropic(middleware=middleware, **options) as client,
            pytest.raises(anthropic.APIStatusError) as caught,
        ):
            client.messages.create(model=SMALL, max_tokens=10, messages=HI)

    assert caught.value.status_code == 529
    assert sent(fake) == [SMALL, TWIN, SMALL, SMALL]


# -- bug 15: only the API's own not_found_error retires a model ---------------------------


@pytest.mark.parametrize(
    "error_type", ["gateway_error", "invalid_request_error", "api_error", "route_not_found"]
)
def test_a_404_of_another_error_type_does_not_retire_the_model(
    fake: FakeAnthropic, error_type: str
) -> None:
    """Bug 15: a gateway's own JSON 404 that names the model marked it retired."""
    message = f"no route to model {SMALL} on this gateway"
    fake.faults.add("/v1/messages", status=404, error_type=error_type, message=message)
    router = router_for()
    with (
        caproute.wrap(fake.client(), router=router) as client,
        pytest.raises(anthropic.NotFoundError),
    ):
        client.messages.create(model=SMALL, max_tokens=10, messages=HI)

    assert router.retired == frozenset()
    assert router.learned == ()
    assert sent(fake) == [SMALL]


def test_a_not_found_error_naming_the_model_does_retire_it(fake: FakeAnthropic) -> None:
    """Bug 15, the control: the API's own 404 for the model marks it retired."""
    message = f"model: {SMALL}"
    fake.faults.add("/v1/messages", status=404, error_type="not_found_error", message=message)
    router = router_for()
    with caproute.wrap(fake.client(), router=router) as client:
        assert client.messages.create(model=SMALL, max_tokens=10, messages=HI).model == TWIN

    assert router.retired == frozenset({SMALL})
    assert sent(fake) == [SMALL, TWIN]


# -- found by mutation testing: which 404 blames the model, which status falls back -------


@pytest.mark.parametrize(
    ("message", "retired"),
    [
        ("Not Found", False),  # a wrong path (a gateway prefix) answers 404 too
        (f"{SMALL.upper()} does not exist", True),  # names it, in any case
        ("model: not available", True),  # the API's wording: "model: claude-..."
    ],
)
def test_a_not_found_error_retires_the_model_only_when_it_is_about_the_model(
    fake: FakeAnthropic, message: str, retired: bool
) -> None:
    fake.faults.add("/v1/messages", status=404, error_type="not_found_error", message=message)
    router = router_for()
    with caproute.wrap(fake.client(), router=router) as client:
        if retired:
            assert client.messages.create(model=SMALL, max_tokens=10, messages=HI).model == TWIN
        else:
            with pytest.raises(anthropic.NotFoundError):
                client.messages.create(model=SMALL, max_tokens=10, messages=HI)

    assert router.retired == (frozenset({SMALL}) if retired else frozenset())


def test_a_routes_own_fallback_statuses_apply_to_its_requests_only(fake: FakeAnthropic) -> None:
    policy = caproute.Policy.from_dict(
        {
            "version": 1,
            "routes": [
                {"name": "twins", "match": {"model": SMALL}, "fallback_on": [500]},
                {"name": "rest"},
            ],
        }
    )
    router = LiveRouter(Registry.from_models(BELIEVED), policy=policy)
    fake.faults.add("/v1/messages", status=500)
    with caproute.wrap(fake.client(max_retries=0), router=router) as client:
        assert client.messages.create(model=SMALL, max_tokens=10, messages=HI).model == TWIN
        fake.faults.add("/v1/messages", status=500)
        with pytest.raises(anthropic.InternalServerError):
            client.messages.create(model=TWIN, max_tokens=10, messages=HI)
    assert sent(fake) == [SMALL, TWIN, TWIN]


def test_models_cooling_down_are_avoided_only_while_another_can_serve() -> None:
    """A cooling requested model is replaced within its price class, else used anyway;
    a cooling model that alone can serve the request is used rather than refuse."""
    router = router_for(overload_cooldown_s=60.0)
    plain = {"model": SMALL, "max_tokens": 5, "messages": HI}
    picture = {"model": SMALL, "max_tokens": 5, "messages": [{"role": "user", "content": [IMAGE]}]}

    router.carry_out(MarkOverloaded(SMALL))
    assert router.cooling == frozenset({SMALL})
    assert router.route(plain).decision.model == TWIN
    router.carry_out(MarkOverloaded(TWIN))
    assert router.route(plain).decision.model == SMALL  # the whole class is cooling
    router.carry_out(MarkOverloaded(BIG))
    assert router.route(picture).decision.model == BIG  # only BIG sees images
    assert router.route({**plain, "model": BIG}).decision.model == BIG
