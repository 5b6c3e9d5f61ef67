"""The test catalogue: made-up models that vary every capability the router checks.

Registry order is "newest first", as the Models API lists models; the order matters
for the default candidate order (same line first, then newest overall).

=================  ======  ==============================================================
id                 line    what is special
=================  ======  ==============================================================
t-retired          alpha   everything, but retired (must never be chosen)
t-full             alpha   everything; the newest usable model
t-adaptive         alpha   thinking adaptive only (cannot disable); no effort xhigh; no
                           structured outputs; no web search; clear_tool_uses only;
                           max_tokens 64 000
t-deprecated       beta    everything, deprecated
t-enabled          beta    thinking enabled only (disable allowed); no effort at all; no
                           pdf, citations or batch; max_tokens 32 000, window 200 000
t-ladder           beta    effort medium and max only; every thinking type
t-small            gamma   no thinking, images, pdf or compaction; max_tokens 4 096, window 8 000
t-gamma-vision     gamma   like t-small but with images and pdf
t-tiny             delta   max_tokens 1 000: no room for a thinking budget
t-old-shape        delta   SDK 0.x registry shape: no server_tools, code_execution true
t-old-noexec       delta   SDK 0.x shape, code_execution false
t-unknown          None    capabilities null, no limits: everything unknown
=================  ======  ==============================================================
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from caproute import ModelInfo, Registry, RegistrySource, RouteResult
from caproute._core.engine import PolicyEngine
from caproute._core.policy import Policy

YES = {"supported": True}

FULL_CAPABILITIES: dict[str, Any] = {
    "batch": YES,
    "citations": YES,
    "code_execution": YES,
    "server_tools": {"supported": True, "code_execution": YES, "web_search": YES},
    "context_management": {
        "supported": True,
        "clear_thinking_20251015": YES,
        "clear_tool_uses_20250919": YES,
        "compact_20260112": YES,
    },
    "compaction": {"supported": True, "summarize": YES},
    "effort": {
        "supported": True,
        "low": YES,
        "medium": YES,
        "high": YES,
        "xhigh": YES,
        "max": YES,
    },
    "image_input": YES,
    "pdf_input": YES,
    "structured_outputs": YES,
    "thinking": {
        "supported": True,
        "types": {"adaptive": YES, "enabled": YES, "disabled": YES, "between_tools": YES},
    },
}


def capabilities(changes: Mapping[str, bool | None] | None = None) -> dict[str, Any]:
    """`FULL_CAPABILITIES` with dotted paths set to supported true/false, or removed (None)."""
    caps = copy.deepcopy(FULL_CAPABILITIES)
    for path, value in (changes or {}).items():
        *parents, leaf = path.split(".")
        node = caps
        for key in parents:
            node = node.setdefault(key, {"supported": True})
            if key == "thinking" and "types" not in node:
                node["types"] = {}
        if value is None:
            node.pop(leaf, None)
        elif value is False:
            node[leaf] = {"supported": False}  # an unsupported family states no leaves
        elif isinstance(node.get(leaf), dict):
            node[leaf]["supported"] = True
        else:
            node[leaf] = {"supported": True}
    return caps


def model(
    model_id: str,
    line: str | None,
    *,
    caps: Mapping[str, bool | None] | None = None,
    max_tokens: int | None = 128_000,
    max_input_tokens: int | None = 1_000_000,
    lifecycle: str = "active",
    raw_capabilities: dict[str, Any] | None = None,
    no_capabilities: bool = False,
) -> dict[str, Any]:
    """A Models API entry."""
    entry: dict[str, Any] = {
        "id": model_id,
        "type": "model",
        "display_name": model_id,
        "line": line,
        "lifecycle": lifecycle,
        "max_tokens": max_tokens,
        "max_input_tokens": max_input_tokens,
    }
    if no_capabilities:
        entry["capabilities"] = None
    else:
        entry["capabilities"] = raw_capabilities or capabilities(caps)
    return entry


def _old_shape(code_execution: bool) -> dict[str, Any]:
    return capabilities({"server_tools": None, "code_execution": code_execution})


MODELS: list[dict[str, Any]] = [
    model("t-retired", "alpha", lifecycle="retired"),
    model("t-full", "alpha"),
    model(
        "t-adaptive",
        "alpha",
        caps={
            "thinking.types.enabled": False,
            "thinking.types.disabled": False,
            "thinking.types.between_tools": False,
            "effort.xhigh": False,
            "structured_outputs": False,
            "server_tools.web_search": False,
            "context_management.clear_thinking_20251015": None,
            "context_management.compact_20260112": False,
        },
        max_tokens=64_000,
    ),
    model("t-deprecated", "beta", lifecycle="deprecated"),
    model(
        "t-enabled",
        "beta",
        caps={
            "thinking.types.adaptive": False,
            "thinking.types.between_tools": False,
            "effort": False,
            "pdf_input": False,
            "citations": False,
            "batch": False,
        },
        max_tokens=32_000,
        max_input_tokens=200_000,
    ),
    model(
        "t-ladder",
        "beta",
        caps={"effort.low": False, "effort.high": False, "effort.xhigh": False},
    ),
    model(
        "t-small",
        "gamma",
        caps={
            "thinking": False,
            "compaction": False,
            "image_input": False,
            "pdf_input": False,
        },
        max_tokens=4_096,
        max_input_tokens=8_000,
    ),
    model(
        "t-gamma-vision",
        "gamma",
        caps={"thinking": False},
        max_tokens=4_096,
        max_input_tokens=8_000,
    ),
    model("t-tiny", "delta", max_tokens=1_000),
    model("t-old-shape", "delta", raw_capabilities=_old_shape(True)),
    model("t-old-noexec", "delta", raw_capabilities=_old_shape(False)),
    model("t-unknown", None, no_capabilities=True, max_tokens=None, max_input_tokens=None),
]

SOURCE = RegistrySource("snapshot", fetched_at=1_000.0, location="tests/core/catalogue.py")


def registry(models: list[dict[str, Any]] | None = None) -> Registry:
    """The test registry (or one built from other model entries)."""
    return Registry.from_models(
        [ModelInfo.model_validate(m) for m in (models or MODELS)],
        source=SOURCE,
        aliases={"t-full-latest": "t-full"},
    )


def body(model_id: str = "t-full", **fields: Any) -> dict[str, Any]:
    """A small valid Messages body for `model_id`, with extra top-level fields."""
    out: dict[str, Any] = {
        "model": model_id,
        "max_tokens": 2_000,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    out.update(fields)
    return out


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    """A user message with the given content blocks."""
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    """An assistant message with the given content blocks."""
    return {"role": "assistant", "content": list(blocks)}


IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}
PDF = {
    "type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
}
TEXT_DOCUMENT = {
    "type": "document",
    "source": {"type": "text", "media_type": "text/plain", "data": "plain words"},
}


REGISTRY = registry()


def policy(actions: Mapping[str, str] | None = None, **route: Any) -> Policy:
    """A policy with one catch-all route named ``test`` (`route` adds its settings)."""
    spec: dict[str, Any] = {"name": "test", **route}
    if actions:
        spec["actions"] = dict(actions)
    return Policy.from_dict({"version": 1, "routes": [spec]})


def run(request: Any, policy: Policy | None = None, **options: Any) -> RouteResult:
    """Route `request` against the test catalogue."""
    return PolicyEngine(REGISTRY, policy).route(request, **options)


def changes(result: RouteResult) -> list[str]:
    """The decision's changes as ``path: before → after`` strings."""
    return [str(c) for c in result.decision.changes]
