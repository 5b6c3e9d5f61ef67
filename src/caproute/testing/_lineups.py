"""Generated lineups and requests: test routing against catalogues nobody wrote by hand.

A router and a fake written by the same hands agree with each other, which proves
little; a lineup drawn at random does not care what either expects. `random_lineup`
draws the *truth* (every model's full capability tree, lifecycle, line and limits) and
what the Models API would *list* for it:

* retired models left out (the list's default filter);
* a leaf a model lacks left out where the API's types make it optional
  (``effort.xhigh``, each ``context_management`` strategy): that is how the API
  describes a model that predates it;
* some models answered as an older API version would: no ``server_tools`` family, the
  top-level ``code_execution`` meaning "the code-execution tools"
  (``anthropic.types.ModelInfo`` of SDK 0.x).

`random_request` draws a Messages body against it (effort, thinking, sampling, images,
PDFs, citations, server and strict tools, context edits, structured output, forced
tool choice; either API version), and `verdict` says what the fake, as the API would,
answers to a body sent to the truth.

Everything here is plain dicts and a `random.Random`, seedable for a reproducible run
and drivable by hypothesis (``st.randoms()``); it imports nothing from the router.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._catalogue import Catalogue
from ._validation import VERSION_2026, resolve_model, validate_params
from ._wire import ApiError

__all__ = ["GeneratedLineup", "random_lineup", "random_request", "verdict"]

LINES = ("haiku", "sonnet", "opus")
_LEAVES = ("batch", "citations", "image_input", "pdf_input", "structured_outputs", "code_execution")
_LEVELS = ("low", "medium", "high", "xhigh", "max")
_TYPES = ("adaptive", "enabled", "disabled", "between_tools")
_STRATEGIES = ("clear_thinking_20251015", "clear_tool_uses_20250919", "compact_20260112")
_IMAGE = {"type": "image", "source": {"type": "url", "url": "https://example.test/a.png"}}
_PDF = {"type": "document", "source": {"type": "url", "url": "https://example.test/a.pdf"}}
_CITED = {
    "type": "document",
    "source": {"type": "text", "media_type": "text/plain", "data": "words"},
    "citations": {"enabled": True},
}
_TOOLS = {
    "web_search": {"type": "web_search_20260318", "name": "web_search"},
    "code_execution": {"type": "code_execution_20250825", "name": "code_execution"},
    "strict": {"name": "lookup", "input_schema": {"type": "object"}, "strict": True},
}


@dataclass(frozen=True)
class GeneratedLineup:
    """A drawn lineup: the truth, and the Models API's list of it."""

    truth: list[dict[str, Any]]
    """Every model, newest first, with its full capability tree (retired ones too)."""
    listed: list[dict[str, Any]]
    """What ``GET /v1/models`` answers: no retired models, optional leaves a model
    lacks left out, some models in an older API version's shape."""

    @property
    def ids(self) -> list[str]:
        """Every model id of the truth."""
        return [model["id"] for model in self.truth]

    def catalogue(self) -> Catalogue:
        """The truth as the fake's catalogue (what `verdict` checks against)."""
        return Catalogue(self.truth)


def _support(flag: bool) -> dict[str, bool]:
    return {"supported": flag}


def random_capabilities(rng: random.Random, p: float) -> dict[str, Any]:
    """A full capability tree (every leaf stated) where each feature is supported with
    probability `p`; a leaf is only supported under a supported family."""

    def coin() -> bool:
        return rng.random() < p

    caps: dict[str, Any] = {leaf: _support(coin()) for leaf in _LEAVES}
    tools = coin()
    caps["server_tools"] = {
        "supported": tools,
        "code_execution": _support(tools and coin()),
        "web_search": _support(tools and coin()),
    }
    effort = coin()
    caps["effort"] = {"supported": effort, **{lv: _support(effort and coin()) for lv in _LEVELS}}
    thinking = coin()
    types = {t: _support(thinking and coin()) for t in _TYPES}
    if not thinking:
        types["disabled"] = _support(True)  # no thinking at all: it can always be "disabled"
    caps["thinking"] = {"supported": thinking, "types": types}
    edits = coin()
    caps["context_management"] = {
        "supported": edits,
        **{s: _support(edits and coin()) for s in _STRATEGIES},
    }
    return caps


def _model(rng: random.Random, index: int, p: float) -> dict[str, Any]:
    caps = random_capabilities(rng, p)
    return {
        "type": "model",
        "id": f"claude-{LINES[index % 3]}-{9 - index}",
        "display_name": f"Generated {index}",
        "line": LINES[index % 3],
        "lifecycle": rng.choice(["active"] * 6 + ["deprecated", "retired"]),
        "max_tokens": rng.choice([1_000, 4_096, 32_000, 64_000, 128_000]),
        "max_input_tokens": 1_000_000,
        "capabilities": caps,
    }


def _as_listed(rng: random.Random, model: dict[str, Any], older_api: float) -> dict[str, Any]:
    listed = copy.deepcopy(model)
    caps = listed["capabilities"]
    if not caps["effort"]["xhigh"]["supported"]:
        del caps["effort"]["xhigh"]
    for strategy in _STRATEGIES:
        if not caps["context_management"][strategy]["supported"]:
            del caps["context_management"][strategy]
    if rng.random() < older_api:
        # Before `server_tools` (SDK < 1.12): `code_execution` meant the tools themselves.
        caps["code_execution"] = caps.pop("server_tools")["code_execution"]
    return listed


def random_lineup(
    rng: random.Random,
    *,
    size: int | None = None,
    supported_share: float = 0.7,
    older_api_share: float = 0.15,
) -> GeneratedLineup:
    """Draw a lineup.

    Args:
        rng: The source of randomness (seed it for a reproducible lineup).
        size: How many models (default: 2 to 6).
        supported_share: The chance that any one capability is supported.
        older_api_share: The share of models the list describes as an older API
            version would (no ``server_tools``).
    """
    count = size if size is not None else rng.randint(2, 6)
    truth = [_model(rng, i, supported_share) for i in range(count)]
    listed = [_as_listed(rng, m, older_api_share) for m in truth if m["lifecycle"] != "retired"]
    return GeneratedLineup(truth, listed)


def random_request(rng: random.Random, models: Sequence[str]) -> tuple[dict[str, Any], str]:
    """Draw a Messages body naming one of `models`, and the API version to send it with."""
    body: dict[str, Any] = {
        "model": rng.choice(list(models)),
        "max_tokens": rng.choice([512, 1_000, 2_048, 16_000, 100_000]),
    }
    blocks: list[dict[str, Any]] = [{"type": "text", "text": "hi"}]
    blocks += [block for block in (_IMAGE, _PDF, _CITED) if rng.random() < 0.15]
    body["messages"] = [{"role": "user", "content": blocks}]
    if rng.random() < 0.4:
        body["output_config"] = {"effort": rng.choice(_LEVELS)}
    if rng.random() < 0.4:
        kind = rng.choice(_TYPES)
        body["thinking"] = {"type": kind}
        if kind == "enabled":
            body["thinking"]["budget_tokens"] = rng.choice([500, 1_024, 4_000, 200_000])
    for name, values in (("temperature", (0.2, 1)), ("top_p", (0.5, 0.97)), ("top_k", (5,))):
        if rng.random() < 0.15:
            body[name] = rng.choice(values)
    tools = [name for name in _TOOLS if rng.random() < 0.15]
    if tools:
        body["tools"] = [_TOOLS[name] for name in tools]
        if rng.random() < 0.3:
            body["tool_choice"] = {"type": rng.choice(["auto", "any"])}
    if rng.random() < 0.1:
        body["context_management"] = {"edits": [{"type": rng.choice(_STRATEGIES)}]}
    if rng.random() < 0.1:
        body.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": {}}
    return body, rng.choice(["2023-06-01", VERSION_2026])


def verdict(lineup: GeneratedLineup, body: dict[str, Any], api_version: str) -> ApiError | None:
    """The fake's answer to `body` sent to the truth: `None` if accepted, else the error."""
    catalogue = lineup.catalogue()
    try:
        model = resolve_model(catalogue, body)
        validate_params(body, model, api_version=api_version, endpoint="messages")
    except ApiError as error:
        return error
    return None
