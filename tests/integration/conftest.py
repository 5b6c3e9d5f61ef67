"""Fixtures for driving the real anthropic SDK through caproute against the fake API.

The fake runs once per module (a real HTTP server on 127.0.0.1) and is reset before
every test; see `sdk_helpers` for the lineup and what each model lacks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import pytest
from sdk_helpers import API_KEY, Cell, lineup

import caproute
from caproute import Decision, Registry
from caproute.testing import FakeAnthropic
from routed_sdk import routed_sdk_client


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"models": lineup(), "api_key": API_KEY}


@pytest.fixture
def registry(fake: FakeAnthropic) -> Registry:
    """What caproute knows: the fake's catalogue as it is at the start of the test."""
    return Registry.from_models(fake.models())


@pytest.fixture
def decisions() -> list[Decision]:
    """Every decision reported to the ``on_decision`` hook of the clients built here."""
    return []


ClientFactory = Callable[..., Any]


@pytest.fixture
def routed_client(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> ClientFactory:
    """``routed_client(path, is_async=False, **client_options)``: an SDK client whose
    requests go through caproute along `path` (one of `PATHS`), reporting to `decisions`.
    """

    def build(path: str, *, is_async: bool = False, **options: Any) -> Any:
        router = caproute.LiveRouter(registry, on_decision=decisions.append)
        options = {"base_url": fake.url, "api_key": fake.api_key, **options}
        return routed_sdk_client(path, router, is_async=is_async, **options)

    return build


@pytest.fixture
def bare_client(fake: FakeAnthropic) -> ClientFactory:
    """``bare_client(is_async=False)``: the same SDK client without caproute."""

    def build(*, is_async: bool = False, **options: Any) -> Any:
        sdk_class = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
        options = {"base_url": fake.url, "api_key": fake.api_key, "max_retries": 0, **options}
        return sdk_class(**options)

    return build


@pytest.fixture
def sdk(
    path: str,
    is_async: bool,
    fake: FakeAnthropic,
    decisions: list[Decision],
    routed_client: Any,
    bare_client: Any,
) -> Cell:
    """This test's cell of the SDK matrix (it is parametrised by `path` and `is_async`)."""
    return Cell(path, is_async, fake, decisions, routed_client, bare_client)
