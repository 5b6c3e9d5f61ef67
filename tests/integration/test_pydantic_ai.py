"""`caproute.wrap` on pydantic-ai's `AnthropicProvider` / `AnthropicModel`, with the real
pydantic-ai, against the strict fake.

pydantic-ai builds requests from its own model profiles: by default it sends the
model's maximum output as ``max_tokens`` (128,000 for ``claude-opus-4-7``), and it
passes ``anthropic_effort`` through. The fake's ``claude-opus-4-7`` allows 64,000 and
has no ``xhigh``, so each scenario is refused as sent and succeeds routed.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from frameworks_helpers import (
    HAIKU,
    HAIKU_MAX_TOKENS,
    OPUS,
    OPUS_MAX_TOKENS,
    RETIRED,
    WEATHER,
    framework_lineup,
    sent,
)
from pydantic import BaseModel
from pydantic_ai import Agent, NativeOutput
from pydantic_ai.exceptions import ModelHTTPError, UserError
from pydantic_ai.models.anthropic import AnthropicModel, AnthropicModelSettings
from pydantic_ai.providers.anthropic import AnthropicProvider

import caproute
from caproute import Decision, Registry
from caproute.testing import FakeAnthropic, call_tools


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"models": framework_lineup(), "api_key": "test-key", "reply": call_tools()}


def run_sync_loop() -> asyncio.AbstractEventLoop:
    """The loop `Agent.run_sync` uses: the thread's current one, made (and set) if needed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            loop: asyncio.AbstractEventLoop | None = asyncio.get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop


def in_loop(coroutine: Any) -> Any:
    """Run `coroutine` on the loop `Agent.run_sync` uses."""
    return run_sync_loop().run_until_complete(coroutine)


_providers: list[AnthropicProvider] = []


@pytest.fixture(scope="module", autouse=True)
def _close_the_run_sync_loop() -> Iterator[None]:
    """`Agent.run_sync` keeps the thread's event loop open for the next call: close it."""
    yield
    run_sync_loop().close()
    asyncio.set_event_loop(None)


@pytest.fixture(autouse=True)
def _close_providers() -> Iterator[None]:
    """Close each provider's HTTP client on the loop its connections live on.

    A routed provider shares the original's HTTP client (the original owns it), so
    closing the originals closes everything the test opened.
    """
    yield
    while _providers:
        in_loop(_providers.pop().client.close())


def provider(fake: FakeAnthropic) -> AnthropicProvider:
    made = AnthropicProvider(api_key=fake.api_key, base_url=fake.url)
    _providers.append(made)
    return made


def refused_without_caproute(model: AnthropicModel, prompt: str = "Hello") -> ModelHTTPError:
    """The fake's answer to `model` called as it is: the API's error, as pydantic-ai raises it."""
    with pytest.raises(ModelHTTPError) as refused:
        Agent(model).run_sync(prompt)
    return refused.value


def weather_agent(model: Any) -> Agent[None, str]:
    agent = Agent(model)

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    return agent


def test_wrap_returns_a_provider_and_a_model_of_the_same_kind(
    fake: FakeAnthropic, registry: Registry
) -> None:
    base = provider(fake)
    routed_provider = caproute.wrap(base, registry=registry)
    assert type(routed_provider) is AnthropicProvider and routed_provider is not base
    assert routed_provider.client is not base.client
    assert routed_provider.base_url == base.base_url

    settings = AnthropicModelSettings(temperature=0.5)
    model = AnthropicModel(OPUS, provider=base, settings=settings)
    routed_model = caproute.wrap(model, registry=registry)
    assert type(routed_model) is AnthropicModel
    assert (routed_model.model_name, routed_model.settings) == (OPUS, settings)
    assert routed_model.profile == model.profile
    assert routed_model.provider is not base and model.provider is base


def test_the_default_max_tokens_is_refused_as_sent_and_clamped_routed(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    model = AnthropicModel(OPUS, provider=provider(fake))
    refused = refused_without_caproute(model)
    assert refused.status_code == 400 and "max_tokens" in str(refused.body)
    assert sent(fake)[-1]["max_tokens"] == 128_000

    result = Agent(caproute.wrap(model, registry=registry, on_decision=decisions.append)).run_sync(
        "Hello"
    )

    assert result.output == f"Hello from {OPUS}."
    assert sent(fake)[-1]["max_tokens"] == OPUS_MAX_TOKENS
    assert str(decisions[-1].changes[0]) == f"max_tokens: 128000 → {OPUS_MAX_TOKENS}"


def test_an_agent_with_a_tool_in_a_multi_turn_conversation(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    routed = caproute.wrap(provider(fake), registry=registry, on_decision=decisions.append)
    agent = weather_agent(AnthropicModel(OPUS, provider=routed))

    first = agent.run_sync("What's the weather?")
    second = agent.run_sync("And tomorrow?", message_history=first.all_messages())

    assert first.output == second.output == f"{OPUS} read: {WEATHER}"
    bodies = sent(fake)
    assert len(bodies) == 4  # tool call + answer, twice
    assert [len(body["messages"]) for body in bodies] == [1, 3, 5, 7]
    assert all(body["max_tokens"] == OPUS_MAX_TOKENS for body in bodies)
    assert [d.outcome for d in decisions] == ["adjusted"] * 4


def test_streaming(fake: FakeAnthropic, registry: Registry, decisions: list[Decision]) -> None:
    agent = Agent(caproute.wrap(AnthropicModel(OPUS, provider=provider(fake)), registry=registry,
                                on_decision=decisions.append))  # fmt: skip

    async def stream() -> list[str]:
        async with agent.run_stream("Hello") as result:
            return [delta async for delta in result.stream_text(delta=True)]

    deltas = in_loop(stream())

    assert "".join(deltas) == f"Hello from {OPUS}."
    assert sent(fake)[-1]["stream"] is True
    assert decisions[-1].outcome == "adjusted"


def test_a_retired_model_is_rerouted(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    model = AnthropicModel(RETIRED, provider=provider(fake))
    assert refused_without_caproute(model).status_code == 404

    agent = weather_agent(caproute.wrap(model, registry=registry, on_decision=decisions.append))
    result = agent.run_sync("What's the weather?")

    assert result.output == f"{OPUS} read: {WEATHER}"
    assert [body["model"] for body in sent(fake)[-2:]] == [OPUS, OPUS]
    assert decisions[-1].outcome == "rerouted" and decisions[-1].requested_model == RETIRED


def test_an_effort_level_the_model_lacks_is_adjusted(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    settings = AnthropicModelSettings(anthropic_effort="xhigh", max_tokens=4096)
    model = AnthropicModel(OPUS, provider=provider(fake), settings=settings)
    assert "effort" in str(refused_without_caproute(model, "Think hard"))

    Agent(caproute.wrap(model, registry=registry, on_decision=decisions.append)).run_sync(
        "Think hard"
    )

    assert sent(fake)[-1]["output_config"]["effort"] == "high"
    assert [str(c) for c in decisions[-1].changes] == ["output_config.effort: xhigh → high"]


def test_effort_on_a_model_without_effort_is_removed(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    settings = AnthropicModelSettings(anthropic_effort="high", max_tokens=4096)
    model = AnthropicModel(HAIKU, provider=provider(fake), settings=settings)
    assert "effort" in str(refused_without_caproute(model))  # pydantic-ai sends it as set

    Agent(caproute.wrap(model, registry=registry, on_decision=decisions.append)).run_sync("Hello")

    assert "effort" not in sent(fake)[-1].get("output_config", {})
    assert decisions[-1].changes[0].path.startswith("output_config")


class Forecast(BaseModel):
    city: str
    sky: str


def test_structured_output_as_a_tool_and_as_a_json_schema(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    """``output_type`` as an output tool works on Haiku; ``NativeOutput`` asks for a JSON
    schema (``output_config.format``), which Haiku here lacks: refused as sent,
    rerouted to a model that has it through caproute."""
    settings = AnthropicModelSettings(max_tokens=1024)  # within Haiku's limit
    model = AnthropicModel(HAIKU, provider=provider(fake), settings=settings)
    with pytest.raises(ModelHTTPError, match="structured outputs"):
        Agent(model, output_type=NativeOutput(Forecast)).run_sync("Weather?")
    routed = caproute.wrap(model, registry=registry, on_decision=decisions.append)

    as_tool = Agent(routed, output_type=Forecast).run_sync("Weather?")
    native = Agent(routed, output_type=NativeOutput(Forecast)).run_sync("Weather?")

    assert as_tool.output == native.output == Forecast(city="example", sky="example")
    tool_body, native_body = sent(fake)[-2:]
    assert tool_body["model"] == HAIKU and tool_body["tool_choice"]["type"] == "any"
    assert native_body["model"] == OPUS
    assert native_body["output_config"]["format"]["type"] == "json_schema"
    assert [d.outcome for d in decisions] == ["unchanged", "rerouted"]


def test_streaming_a_structured_output(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    routed = caproute.wrap(AnthropicModel(HAIKU, provider=provider(fake)), registry=registry,
                           on_decision=decisions.append)  # fmt: skip

    async def stream() -> Forecast:
        async with Agent(routed, output_type=NativeOutput(Forecast)).run_stream("Hi") as result:
            return await result.get_output()

    assert in_loop(stream()) == Forecast(city="example", sky="example")
    assert sent(fake)[-1]["stream"] is True and sent(fake)[-1]["model"] == OPUS
    assert decisions[-1].outcome == "rerouted"


def test_settings_per_run_are_routed(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    """``model_settings`` given to one run (effort, thinking, max_tokens) are fitted too."""
    agent = Agent(caproute.wrap(AnthropicModel(HAIKU, provider=provider(fake)), registry=registry,
                                on_decision=decisions.append))  # fmt: skip
    per_run = AnthropicModelSettings(anthropic_effort="high", max_tokens=500_000)
    with pytest.raises(ModelHTTPError):
        Agent(AnthropicModel(HAIKU, provider=provider(fake))).run_sync("Hi", model_settings=per_run)

    agent.run_sync("Hi", model_settings=per_run)

    body = sent(fake)[-1]
    assert body["max_tokens"] == HAIKU_MAX_TOKENS and "effort" not in body.get("output_config", {})
    assert [c.path for c in decisions[-1].changes] == ["max_tokens", "output_config"]


def test_runs_on_several_event_loops(fake: FakeAnthropic, registry: Registry) -> None:
    """run_sync twice (each on its own loop) with a provider that owns its HTTP client."""
    agent = Agent(caproute.wrap(AnthropicModel(OPUS, provider=provider(fake)), registry=registry))
    assert agent.run_sync("one").output == agent.run_sync("two").output


def test_pydantic_ai_refuses_budget_thinking_itself(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    """pydantic-ai checks thinking settings against its profile before any request;
    caproute never sees them (docs/integrations.md; the proxy path is the same)."""
    settings = AnthropicModelSettings(anthropic_thinking={"type": "enabled", "budget_tokens": 2048})
    model = AnthropicModel(OPUS, provider=provider(fake), settings=settings)
    for candidate in (model, caproute.wrap(model, registry=registry, on_decision=decisions.append)):
        with pytest.raises(UserError, match="does not support"):
            Agent(candidate).run_sync("Hello")
    assert fake.count("/v1/messages") == 0 and decisions == []
