"""Stateful scenarios: sequences of requests with API-side events between them.

Each scenario runs the same steps through two paths (the `path` fixture):

* ``wrap``: SDK 2.x clients wrapped by `caproute.wrap`, all sharing one `LiveRouter`
  that reads the fake's Models API live (as one process holding several keys would);
* ``proxy``: SDK 2.x clients pointed at the real proxy (`tests/running_proxy.py`) in
  pass-through mode, each bringing its own key.

What reached the API is read from the fake's record (`Upstream.since`): a scenario
asserts, per step, which requests went upstream, to which model, carrying what.

Fixtures meant for every scenario module (keep them generic):

* ``lineup``: the Models API catalogue (module scope; override it in a module);
* ``fake``: a `FakeAnthropic` serving `lineup`, accepting `KEY_A` and `KEY_B`
  (reset before each test; the shipped plugin's, see tests/conftest.py);
* ``path``: ``"wrap"`` or ``"proxy"``;
* ``clients``: `Clients`, SDK clients per key through that path (``clients(KEY_B)``);
* ``upstream``: `Upstream`, the requests that reached the fake since the last look.

The classes, keys and `credential_of` live in ``scenario_helpers.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from scenario_helpers import KEY_A, KEY_B, Clients, Upstream

from caproute.testing import FakeAnthropic, builtin_models


@pytest.fixture(scope="module")
def lineup() -> list[dict[str, Any]]:
    """The catalogue the fake serves (override in a scenario module)."""
    return builtin_models()


@pytest.fixture(scope="module")
def fake_anthropic_options(lineup: list[dict[str, Any]]) -> dict[str, Any]:
    return {"models": lineup, "api_key": KEY_A, "keys": {KEY_B: None}}


@pytest.fixture
def upstream(fake: FakeAnthropic) -> Upstream:
    return Upstream(fake)


@pytest.fixture(params=["wrap", "proxy"])
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clients(fake: FakeAnthropic, path: str) -> Iterator[Clients]:
    made = Clients(fake, path)
    try:
        yield made
    finally:
        made.close()
