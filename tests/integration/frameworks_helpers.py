"""The lineup the framework integration tests run against, and what each model lacks.

The frameworks keep their own idea of each Claude model (LangChain and pydantic-ai
ship model profiles: maximum output, effort levels, thinking modes) and build
requests from it. The fake's lineup uses model names the frameworks know but gives
them other limits, as the real API does when a profile is out of date:

* ``claude-opus-4-7``: the frameworks believe 128,000 output tokens and every effort
  level; here it allows 64,000 and has no ``xhigh`` effort and no ``enabled``
  thinking. pydantic-ai's default ``max_tokens`` (the model's maximum) is refused by
  the API as sent.
* ``claude-haiku-4-5``: 8,192 output tokens, no effort parameter at all, and no
  structured outputs (a JSON-schema answer needs another model).
* ``claude-opus-4-1``: retired (404 on inference), what an app pinned a year ago sends.

Every request each test sends is refused by the fake without caproute (the tests
show that first) and accepted through it.
"""

from __future__ import annotations

from typing import Any

from caproute.testing import make_model

OPUS = "claude-opus-4-7"
HAIKU = "claude-haiku-4-5"
RETIRED = "claude-opus-4-1"

OPUS_MAX_TOKENS = 64_000
HAIKU_MAX_TOKENS = 8_192

NO_EFFORT = ["effort", *(f"effort.{level}" for level in ("low", "medium", "high", "xhigh", "max"))]
"""A model without the effort parameter: the capability and every level off, as the API says."""

WEATHER = "sunny in example"
"""What the `get_weather` tools of the tests answer for the fake's placeholder city."""


def framework_lineup() -> list[dict[str, Any]]:
    """The fake's catalogue for the framework tests (newest first)."""
    return [
        make_model(
            OPUS,
            max_tokens=OPUS_MAX_TOKENS,
            unsupported=["effort.xhigh", "thinking.types.enabled"],
            line="opus",
        ),
        make_model(
            HAIKU,
            max_tokens=HAIKU_MAX_TOKENS,
            unsupported=[*NO_EFFORT, "structured_outputs"],
            line="haiku",
        ),
        make_model(RETIRED, lifecycle="retired", line="opus"),
    ]


def sent(fake: Any, path: str = "/v1/messages") -> list[dict[str, Any]]:
    """The JSON bodies the fake received on `path` (query string ignored), oldest first."""
    return [r.body for r in fake.requests if r.path == path and r.body is not None]
