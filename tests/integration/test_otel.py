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
    HAIKU_MAX_TOKENS,
    OPUS,
    OPUS_MAX_TOKENS,
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


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(models=framework_lineup(), api_key="test-key") as fake:
        yield fake


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_the_decision_lands_on_the_current_span(
    fake: FakeAnthropic,
    registry: Registry,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    # The SDK's own spans off (SDK 0.x and 1.x have none): the app's span is current.
    client = caproute.wrap(fake.client(open_telemetry=NO_SDK_SPANS), registry=registry)
    tracer = tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("answer the user"):
        client.messages.create(
            model=RETIRED, max_tokens=20_000, messages=[{"role": "user", "content": "Hi"}]
        )

    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {}) == {
        "caproute.outcome": "rerouted",
        "caproute.model": OPUS,
        "caproute.requested_model": RETIRED,
        "caproute.changes": f"model: {RETIRED} → {OPUS}",
    }


def test_with_the_sdks_own_spans_the_api_call_span_gets_it(
    fake: FakeAnthropic,
    registry: Registry,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    """anthropic 2.x traces each API call in a span of its own, current while the request is
    routed: the decision lands on it, beside the SDK's request attributes."""
    traced = fake.client(open_telemetry={"tracer_provider": tracer_provider})
    client = caproute.wrap(traced, registry=registry)
    with tracer_provider.get_tracer("app").start_as_current_span("app"):
        client.messages.create(
            model=HAIKU, max_tokens=20_000, messages=[{"role": "user", "content": "Hi"}]
        )

    spans = {span.name: span for span in exporter.get_finished_spans()}
    api_call = next(span for name, span in spans.items() if name != "app")
    attributes = dict(api_call.attributes or {})
    assert attributes["caproute.changes"] == f"max_tokens: 20000 → {HAIKU_MAX_TOKENS}"
    assert attributes["gen_ai.provider.name"] == "anthropic"  # the SDK's own
    assert api_call.parent is not None
    assert api_call.parent.span_id == spans["app"].context.span_id
    assert "caproute.outcome" not in (spans["app"].attributes or {})


def test_a_refusal_carries_its_reason(
    fake: FakeAnthropic, tracer_provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    import anthropic

    policy = caproute.Policy.from_dict({"defaults": {"on_unsupported": "reject"}})
    registry = Registry.from_models(fake.models())
    client = caproute.wrap(
        fake.client(open_telemetry=NO_SDK_SPANS), registry=registry, policy=policy
    )
    with (
        tracer_provider.get_tracer("app").start_as_current_span("call"),
        pytest.raises(anthropic.BadRequestError),
    ):
        client.messages.create(
            model=OPUS,
            max_tokens=1000,
            output_config={"effort": "xhigh"},
            messages=[{"role": "user", "content": "Hi"}],
        )

    attributes = dict(exporter.get_finished_spans()[0].attributes or {})
    assert attributes["caproute.outcome"] == "rejected"
    assert "effort" in str(attributes["caproute.reason"])
    assert fake.count("/v1/messages") == 0


def test_unchanged_requests_say_so_and_no_span_means_nothing(
    fake: FakeAnthropic,
    registry: Registry,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    client = caproute.wrap(fake.client(open_telemetry=NO_SDK_SPANS), registry=registry)
    request = {"model": OPUS, "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}
    client.messages.create(**request)  # no current span: nothing to annotate, nothing fails
    with tracer_provider.get_tracer("app").start_as_current_span("call"):
        client.messages.create(**request)

    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["caproute.outcome"] == "unchanged"
    assert span.attributes["caproute.changes"] == "none"


def test_pydantic_ai_model_request_span_shows_the_decision(
    fake: FakeAnthropic,
    registry: Registry,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.models.instrumented import InstrumentationSettings, InstrumentedModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    anthropic_client = fake.async_client(open_telemetry=NO_SDK_SPANS)
    model = AnthropicModel(OPUS, provider=AnthropicProvider(anthropic_client=anthropic_client))
    settings = InstrumentationSettings(tracer_provider=tracer_provider)
    agent = Agent(InstrumentedModel(caproute.wrap(model, registry=registry), settings))

    async def run() -> None:
        try:
            await agent.run("Hello")
        finally:
            await anthropic_client.close()

    import asyncio

    asyncio.run(run())

    spans = {span.name: dict(span.attributes or {}) for span in exporter.get_finished_spans()}
    chat = spans[f"chat {OPUS}"]
    assert chat["caproute.outcome"] == "adjusted"
    assert chat["caproute.changes"] == f"max_tokens: 128000 → {OPUS_MAX_TOKENS}"
    assert chat["gen_ai.request.model"] == OPUS  # beside the framework's own attributes


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
