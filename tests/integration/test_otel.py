"""Decisions on the current OpenTelemetry span, checked with the OTel SDK's in-memory exporter.

caproute never imports OpenTelemetry: it acts when the application already has
(``opentelemetry.trace`` in ``sys.modules``) and a span is recording.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from frameworks_helpers import (
    HAIKU,
    OPUS,
    RETIRED,
    framework_lineup,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import caproute
from caproute import Registry
from caproute.testing import FakeAnthropic

NO_SDK_SPANS: Any = False
"""The anthropic SDK's ``open_telemetry=False``: no span of its own per API call."""

VIAS = ("middleware", "transport")


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"models": framework_lineup(), "api_key": "test-key"}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def http(fake: FakeAnthropic, registry: Registry) -> Iterator[Any]:
    """A routed HTTP client for the fake, not yet opened (closed after the test)."""
    client = caproute.routed_http_client(registry=registry, base_url=fake.url)
    yield client
    client.close()


def spans_by_name(exporter: InMemorySpanExporter) -> dict[str, Any]:
    return {span.name: span for span in exporter.get_finished_spans()}


def caproute_attributes(span: Any) -> dict[str, Any]:
    return {k: v for k, v in (span.attributes or {}).items() if k.startswith("caproute.")}


def test_the_decision_lands_on_the_current_span(
    fake: FakeAnthropic,
    http: Any,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    # A library calling the API through a routed HTTP client: the app's span is current.
    tracer = tracer_provider.get_tracer("app")
    with http, tracer.start_as_current_span("answer the user"):
        http.post(
            "/v1/messages",
            headers=fake.headers(),
            json={
                "model": RETIRED,
                "max_tokens": 99,
                "messages": [{"role": "user", "content": "Hi"}],
            },
        )

    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {}) == {
        "caproute.outcome": "rerouted",
        "caproute.model": OPUS,
        "caproute.requested_model": RETIRED,
        "caproute.changes": f"model: {RETIRED} → {OPUS}",
    }


@pytest.mark.parametrize("via", VIAS)
def test_the_sdks_own_span_is_left_as_the_sdk_made_it(
    fake: FakeAnthropic,
    registry: Registry,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
    via: Any,
) -> None:
    """anthropic 2.x traces each API call in a span of its own, current while the request is
    routed: caproute writes nothing into it and adds no span (the trace is the SDK's)."""
    traced = fake.client(open_telemetry={"tracer_provider": tracer_provider})
    with tracer_provider.get_tracer("app").start_as_current_span("app"):
        traced.messages.create(
            model=HAIKU, max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
        )
    bare_spans = sorted(span.name for span in exporter.get_finished_spans())
    exporter.clear()

    client = caproute.wrap(traced, registry=registry, via=via)
    with client, tracer_provider.get_tracer("app").start_as_current_span("app"):
        client.messages.create(
            model=HAIKU, max_tokens=20_000, messages=[{"role": "user", "content": "Hi"}]
        )

    spans = exporter.get_finished_spans()
    assert sorted(span.name for span in spans) == bare_spans
    assert all(caproute_attributes(span) == {} for span in spans)
    api_call = next(span for span in spans if span.name != "app")
    assert api_call.attributes is not None
    assert api_call.attributes["gen_ai.provider.name"] == "anthropic"  # the SDK's own


@pytest.mark.parametrize("via", VIAS)
def test_a_client_built_with_open_telemetry_false_is_not_annotated(
    fake: FakeAnthropic,
    registry: Registry,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
    via: Any,
) -> None:
    """``open_telemetry=False`` asks the client not to trace: caproute adds nothing either,
    not even to the application's span that is current then."""
    client = caproute.wrap(fake.client(open_telemetry=NO_SDK_SPANS), registry=registry, via=via)
    with client, tracer_provider.get_tracer("app").start_as_current_span("app"):
        client.messages.create(
            model=RETIRED, max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
        )

    (span,) = exporter.get_finished_spans()
    assert span.name == "app"
    assert caproute_attributes(span) == {}
    assert fake.count("/v1/messages") == 1


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("is_async", [False, True])
def test_a_failing_get_current_span_never_stops_the_request(
    fake: FakeAnthropic,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    via: Any,
    is_async: bool,
) -> None:
    from opentelemetry import trace

    def broken() -> Any:
        raise RuntimeError("tracing is broken")

    monkeypatch.setattr(trace, "get_current_span", broken)
    request: dict[str, Any] = {
        "model": RETIRED, "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]
    }  # fmt: skip
    if is_async:
        import asyncio

        async def call() -> Any:
            async with caproute.wrap(fake.async_client(), registry=registry, via=via) as client:
                return await client.messages.create(**request)

        message = asyncio.run(call())
    else:
        with caproute.wrap(fake.client(), registry=registry, via=via) as client:
            message = client.messages.create(**request)

    assert message.model == OPUS  # routed, sent and answered
    assert fake.count("/v1/messages") == 1


def test_a_refusal_carries_its_reason(
    fake: FakeAnthropic, tracer_provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    policy = caproute.Policy.from_dict({"defaults": {"on_unsupported": "reject"}})
    registry = Registry.from_models(fake.models())
    http = caproute.routed_http_client(registry=registry, policy=policy, base_url=fake.url)
    with http, tracer_provider.get_tracer("app").start_as_current_span("call"):
        answer = http.post(
            "/v1/messages",
            headers=fake.headers(),
            json={
                "model": OPUS,
                "max_tokens": 1000,
                "output_config": {"effort": "xhigh"},
                "messages": [{"role": "user", "content": "Hi"}],
            },
        )

    assert answer.status_code == 400
    attributes = caproute_attributes(exporter.get_finished_spans()[0])
    assert attributes["caproute.outcome"] == "rejected"
    assert "effort" in str(attributes["caproute.reason"])
    assert fake.count("/v1/messages") == 0


def test_unchanged_requests_say_so_and_no_span_means_nothing(
    fake: FakeAnthropic,
    http: Any,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    request = {"model": OPUS, "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"x-api-key": fake.api_key, "anthropic-version": "2023-06-01"}
    with http:
        http.post("/v1/messages", headers=headers, json=request)  # no span: nothing fails
        with tracer_provider.get_tracer("app").start_as_current_span("call"):
            http.post("/v1/messages", headers=headers, json=request)

    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["caproute.outcome"] == "unchanged"
    assert span.attributes["caproute.changes"] == "none"


def test_pydantic_ai_spans_get_nothing_under_the_sdks_own_span(
    fake: FakeAnthropic,
    registry: Registry,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    """pydantic-ai's chat span, then the SDK's span of the API call (current while the
    request is routed): neither gets caproute's attributes, and the call is routed."""
    from pydantic_ai import Agent
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.models.instrumented import InstrumentationSettings, InstrumentedModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    decisions: list[caproute.Decision] = []
    anthropic_client = fake.async_client(open_telemetry={"tracer_provider": tracer_provider})
    model = AnthropicModel(OPUS, provider=AnthropicProvider(anthropic_client=anthropic_client))
    settings = InstrumentationSettings(tracer_provider=tracer_provider)
    routed = caproute.wrap(model, registry=registry, on_decision=decisions.append)
    agent = Agent(InstrumentedModel(routed, settings))

    async def run() -> None:
        try:
            await agent.run("Hello")
        finally:
            await anthropic_client.close()

    import asyncio

    asyncio.run(run())

    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert f"chat {OPUS}" in spans
    assert all(caproute_attributes(span) == {} for span in spans.values())
    assert [d.outcome for d in decisions] == ["adjusted"]  # the hook still sees it


def test_caproute_never_imports_opentelemetry() -> None:
    code = (
        "import sys, caproute\n"
        "from caproute.testing import make_model\n"
        "registry = caproute.Registry.from_models([make_model('claude-x-1', max_tokens=10)])\n"
        "router = caproute.LiveRouter(registry)\n"
        "body = {'model': 'claude-x-1', 'max_tokens': 99, 'messages': []}\n"
        "assert router.route(body).decision.outcome == 'adjusted'\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
