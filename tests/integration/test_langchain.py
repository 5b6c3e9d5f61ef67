"""`caproute.wrap(ChatAnthropic(...))` with the real LangChain, against the strict fake.

Runs under both SDK generations (2.x in ``.venv``, 0.x in ``.venv-sdk0`` via ``make
test-sdk0``): langchain-anthropic allows both. Each scenario first shows the request
LangChain builds is refused by the fake as sent, then that the routed copy gets it
through: a retired model, an effort level the model lacks, ``max_tokens`` above the
model's limit, sync and async, streamed, in a multi-turn conversation and in an agent
calling a tool.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import anthropic
import pytest
from frameworks_helpers import (
    HAIKU,
    HAIKU_MAX_TOKENS,
    OPUS,
    RETIRED,
    WEATHER,
    framework_lineup,
    sent,
)
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

import caproute
from caproute import Decision, Registry
from caproute._wrap.langchain import HOOKS, check_hooks
from caproute.testing import FakeAnthropic, call_tools

SDK_GENERATION = int(anthropic.__version__.split(".")[0])
VIAS = ["auto", "transport"]


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"models": framework_lineup(), "api_key": "test-key", "reply": call_tools()}


@pytest.fixture(autouse=True)
def _fresh_async_http_client() -> None:
    """LangChain shares one async HTTP client per base URL for the whole process, and an
    async connection pool can't outlive the event loop it was used on: each test here
    runs its own loop (``asyncio.run``), so each starts from a new client, as a new
    process would. (Without caproute the same second loop fails the same way.)"""
    from langchain_anthropic import _client_utils

    _client_utils._get_default_async_httpx_client.cache_clear()


def run_async(model: ChatAnthropic, work: Any) -> Any:
    """``await work()`` in a new event loop, then close the model's async client in it."""

    async def main() -> Any:
        try:
            return await work()
        finally:
            await getattr(model, HOOKS[1]).close()

    return asyncio.run(main())


def chat(fake: FakeAnthropic, model: str, **options: Any) -> ChatAnthropic:
    """An ordinary ChatAnthropic aimed at the fake (no retries: every answer is final)."""
    return ChatAnthropic(
        model=model, base_url=fake.url, api_key=fake.api_key, max_retries=0, **options
    )


def routed(base: ChatAnthropic, registry: Registry, decisions: list[Decision], via: str = "auto"):
    return caproute.wrap(base, registry=registry, on_decision=decisions.append, via=via)


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


# -- the copy ----------------------------------------------------------------------------------


def test_the_routed_copy_is_a_chat_anthropic_and_the_original_stays_unrouted(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    base = chat(fake, HAIKU, max_tokens=16_000)
    copy = routed(base, registry, decisions)

    assert type(copy) is ChatAnthropic and copy is not base
    assert copy.model == HAIKU and copy.max_tokens == 16_000
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        base.invoke("Hello")  # the original is untouched: refused as sent
    assert copy.invoke("Hello").content == f"Hello from {HAIKU}."
    assert sent(fake)[-1]["max_tokens"] == HAIKU_MAX_TOKENS
    assert [d.outcome for d in decisions] == ["adjusted"]


@pytest.mark.parametrize("via", VIAS)
def test_max_tokens_above_the_limit_is_clamped_sync_and_async(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision], via: str
) -> None:
    copy = routed(chat(fake, HAIKU, max_tokens=16_000), registry, decisions, via)

    async def both() -> tuple[Any, Any]:
        return copy.invoke("Hello"), await copy.ainvoke("Hello")

    sync_answer, async_answer = run_async(copy, both)
    assert sync_answer.content == async_answer.content == f"Hello from {HAIKU}."
    assert [body["max_tokens"] for body in sent(fake)] == [HAIKU_MAX_TOKENS] * 2
    assert [d.changes[0].path for d in decisions] == ["max_tokens"] * 2


def test_a_retired_model_is_rerouted(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    base = chat(fake, RETIRED, max_tokens=1024)
    with pytest.raises(anthropic.NotFoundError):
        base.invoke("Hello")

    answer = routed(base, registry, decisions).invoke("Hello")

    assert answer.content == f"Hello from {OPUS}."
    assert answer.response_metadata["model"] == OPUS
    assert sent(fake)[-1]["model"] == OPUS
    assert decisions[-1].outcome == "rerouted" and decisions[-1].requested_model == RETIRED


def test_an_effort_level_the_model_lacks_is_adjusted(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    base = chat(fake, OPUS, max_tokens=4096, reasoning_effort="xhigh")
    with pytest.raises(anthropic.BadRequestError, match="effort"):
        base.invoke("Think hard")

    routed(base, registry, decisions).invoke("Think hard")

    assert sent(fake)[-1]["output_config"]["effort"] == "high"
    assert str(decisions[-1].changes[0]) == "output_config.effort: xhigh → high"


@pytest.mark.parametrize("via", VIAS)
def test_streaming_sync_and_async(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision], via: str
) -> None:
    copy = routed(chat(fake, HAIKU, max_tokens=16_000), registry, decisions, via)

    async def astream() -> list[Any]:
        return [chunk async for chunk in copy.astream("Hello")]

    sync_chunks = list(copy.stream("Hello"))
    async_chunks = run_async(copy, astream)

    for chunks in (sync_chunks, async_chunks):
        assert len(chunks) > 2  # event by event, not one buffered answer
        text = "".join(c.content if isinstance(c.content, str) else "" for c in chunks)
        assert text == f"Hello from {HAIKU}."
    assert all(body["stream"] is True for body in sent(fake))
    assert [body["max_tokens"] for body in sent(fake)] == [HAIKU_MAX_TOKENS] * 2


def test_a_multi_turn_conversation_stays_routed(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    copy = routed(chat(fake, HAIKU, max_tokens=16_000), registry, decisions)
    history: list[Any] = [HumanMessage("Hello")]
    for question in ("And again?", "Once more?"):
        history.append(copy.invoke(history))
        history.append(HumanMessage(question))
    copy.invoke(history)

    assert [len(body["messages"]) for body in sent(fake)] == [1, 3, 5]
    assert (
        sent(fake)[-1]["messages"][1]
        == {
            "role": "assistant",
            "content": f"Hello from {HAIKU}.",
        }
        or sent(fake)[-1]["messages"][1]["role"] == "assistant"
    )
    assert [d.outcome for d in decisions] == ["adjusted"] * 3


def test_tool_calls_round_trip(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    copy = routed(chat(fake, HAIKU, max_tokens=16_000), registry, decisions)
    with_tools = copy.bind_tools([get_weather])
    question = HumanMessage("What's the weather?")

    call: AIMessage = with_tools.invoke([question])
    assert [c["name"] for c in call.tool_calls] == ["get_weather"]
    result = ToolMessage(
        get_weather.invoke(call.tool_calls[0]["args"]), tool_call_id=call.tool_calls[0]["id"]
    )
    answer = with_tools.invoke([question, call, result])

    assert answer.content == f"{HAIKU} read: {WEATHER}"
    assert sent(fake)[0]["tools"][0]["name"] == "get_weather"
    assert [d.outcome for d in decisions] == ["adjusted", "adjusted"]


def test_an_agent_with_a_tool(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    from langchain.agents import create_agent

    base = chat(fake, RETIRED, max_tokens=1024)
    copy = routed(base, registry, decisions)
    agent = create_agent(copy, tools=[get_weather])

    async def run_both() -> tuple[Any, Any]:
        question = {"messages": [{"role": "user", "content": "What's the weather?"}]}
        return agent.invoke(question), await agent.ainvoke(question)

    for state in run_async(copy, run_both):
        messages = state["messages"]
        assert [type(m).__name__ for m in messages] == [
            "HumanMessage",
            "AIMessage",
            "ToolMessage",
            "AIMessage",
        ]
        assert messages[-1].content == f"{OPUS} read: {WEATHER}"
    assert [body["model"] for body in sent(fake)] == [OPUS] * 4
    assert [d.outcome for d in decisions] == ["rerouted"] * 4


class Forecast(BaseModel):
    city: str
    sky: str


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_structured_output_both_methods(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision], method: str
) -> None:
    """The tool-calling method forces a tool; the json_schema method asks for
    ``output_config.format``, which Haiku here lacks: refused as sent, rerouted routed."""
    base = chat(fake, HAIKU, max_tokens=1024)
    if method == "json_schema":
        with pytest.raises(anthropic.BadRequestError, match="structured outputs"):
            base.with_structured_output(Forecast, method=method).invoke("Weather?")

    answer = routed(base, registry, decisions).with_structured_output(Forecast, method=method)

    assert answer.invoke("Weather?") == Forecast(city="example", sky="example")
    body = sent(fake)[-1]
    if method == "json_schema":
        asked = body.get("output_config", {}).get("format") or body.get("output_format")
        assert body["model"] == OPUS and asked["type"] == "json_schema"  # either SDK generation
        assert decisions[-1].outcome == "rerouted"
    else:
        assert body["model"] == HAIKU and body["tool_choice"] == {
            "type": "tool",
            "name": "Forecast",
        }
        assert decisions[-1].outcome == "unchanged"


def test_batch_with_config_bind_and_retry_stay_routed(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    """Runnables LangChain derives from the copy (``bind``, ``with_config``,
    ``with_retry``, ``model_copy``) keep its routed clients; so do ``batch`` / ``abatch``."""
    copy = routed(chat(fake, HAIKU, max_tokens=1024), registry, decisions)
    derived = [
        copy.bind(max_tokens=200_000),
        copy.with_config(tags=["audit"]).bind(max_tokens=200_000),
        copy.with_retry(stop_after_attempt=1).bind(max_tokens=200_000),
        copy.model_copy(update={"max_tokens": 200_000}),
    ]
    for runnable in derived:
        assert runnable.invoke("Hello").content == f"Hello from {HAIKU}."
    assert len(copy.bind(max_tokens=200_000).batch(["a", "b"])) == 2
    run_async(copy, lambda: copy.bind(max_tokens=200_000).abatch(["a", "b"]))

    assert [body["max_tokens"] for body in sent(fake)] == [HAIKU_MAX_TOKENS] * 8
    assert [str(d.changes[0]) for d in decisions] == [
        f"max_tokens: 200000 → {HAIKU_MAX_TOKENS}"
    ] * 8


def test_a_subclass_stays_its_class_and_is_routed(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    class TeamChat(ChatAnthropic):
        pass

    base = TeamChat(model=HAIKU, max_tokens=16_000, base_url=fake.url, api_key=fake.api_key)
    copy = routed(base, registry, decisions)

    assert type(copy) is TeamChat
    assert copy.invoke("Hello").content == f"Hello from {HAIKU}."
    assert sent(fake)[-1]["max_tokens"] == HAIKU_MAX_TOKENS


def test_a_model_langchain_rebuilds_from_its_fields_is_not_routed(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    """Documented limit (docs/integrations.md): ``configurable_fields`` builds a new
    ChatAnthropic from the copy's fields, with new clients, so its requests go out as
    sent. The base URL is a field, so the proxy path keeps working."""
    from langchain_core.runnables import ConfigurableField

    copy = routed(chat(fake, HAIKU, max_tokens=1024), registry, decisions)
    configurable = copy.configurable_fields(max_tokens=ConfigurableField(id="max_tokens"))
    assert configurable.invoke("Hello").content == f"Hello from {HAIKU}."  # the copy itself
    rebuilt = configurable.with_config(configurable={"max_tokens": 200_000})

    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        rebuilt.invoke("Hello")
    assert len(decisions) == 1 and sent(fake)[-1]["max_tokens"] == 200_000


# -- where LangChain refuses before sending ------------------------------------------------------


def test_langchain_refuses_some_thinking_settings_itself(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    """langchain-anthropic checks a few settings per model name before any request; caproute
    never sees them (documented in docs/integrations.md; the proxy path is the same)."""
    base = chat(
        fake, "claude-opus-5", max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 2048}
    )
    for model in (base, routed(base, registry, decisions)):
        with pytest.raises(ValueError, match="not supported for claude-opus-5"):
            model.invoke("Hello")
    assert fake.count("/v1/messages") == 0 and decisions == []


# -- the private hook, checked loudly -------------------------------------------------------------


def test_chat_anthropic_still_keeps_its_clients_where_caproute_routes_them() -> None:
    """If this fails, langchain-anthropic moved its clients: update _frameworks_langchain.py."""
    for name in HOOKS:
        assert isinstance(vars(ChatAnthropic).get(name), functools.cached_property), name
    check_hooks(ChatAnthropic)


def test_a_chat_model_without_the_hooks_is_refused_with_the_way_round() -> None:
    class Moved(ChatAnthropic):
        @property
        def _client(self) -> Any:  # type: ignore[override]
            raise AssertionError("never read")

    with pytest.raises(TypeError, match="caproute serve"):
        caproute.wrap(Moved(model=HAIKU, api_key="test-key"), registry=Registry.from_models([]))


def test_the_sync_and_async_clients_share_one_router(fake: FakeAnthropic) -> None:
    """What the sync client learns (a model retired since the registry was made) the async
    client uses at once: its first request goes straight to a live model."""
    stale = [{**m, "lifecycle": "active"} if m["id"] == RETIRED else m for m in fake.models()]
    copy = caproute.wrap(chat(fake, RETIRED, max_tokens=1024), registry=Registry.from_models(stale))

    assert copy.invoke("Hello").content == f"Hello from {OPUS}."  # 404, then rerouted
    assert [body["model"] for body in sent(fake)] == [RETIRED, OPUS]
    run_async(copy, lambda: copy.ainvoke("Hello"))
    assert [body["model"] for body in sent(fake)] == [RETIRED, OPUS, OPUS]
