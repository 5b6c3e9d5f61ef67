"""The fake's model catalogue: what `GET /v1/models` lists and what inference accepts.

The catalogue is the single source of truth of the fake: listing, alias resolution,
lifecycle (retired models answer 404) and request validation all read the same
model dicts, so a test that flips a capability mid-run sees every endpoint change
at once. It holds plain Models API dicts (not caproute's pydantic mirrors) on
purpose: the fake must not share code with the router it is used to test.

Thread-safety: the catalogue is read from the server thread and changed from the
test thread. Every method takes the instance lock and hands out deep copies, so a
reader never sees half an update.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

__all__ = ["Catalogue", "builtin_models", "default_catalogue", "make_model"]

_DATED_ID = re.compile(r"^(?P<alias>.+)-(?P<date>\d{8})$")

_LEAF_CAPABILITIES = (
    "batch",
    "citations",
    "code_execution",
    "image_input",
    "pdf_input",
    "structured_outputs",
)
_EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")
_THINKING_TYPES = ("adaptive", "enabled", "disabled", "between_tools")
_CONTEXT_EDITS = ("clear_thinking_20251015", "clear_tool_uses_20250919", "compact_20260112")


def _full_capabilities() -> dict[str, Any]:
    """Every capability key of SDK 2.14, all supported."""
    yes = {"supported": True}
    caps: dict[str, Any] = {name: dict(yes) for name in _LEAF_CAPABILITIES}
    caps["server_tools"] = {"supported": True, "code_execution": dict(yes), "web_search": dict(yes)}
    caps["context_management"] = {"supported": True, **{e: dict(yes) for e in _CONTEXT_EDITS}}
    caps["effort"] = {"supported": True, **{lvl: dict(yes) for lvl in _EFFORT_LEVELS}}
    caps["thinking"] = {"supported": True, "types": {t: dict(yes) for t in _THINKING_TYPES}}
    return caps


def _set_path(tree: dict[str, Any], dotted: str, supported: bool) -> None:
    """Set ``tree[a][b]...["supported"] = supported`` for the dotted path ``a.b...``.

    Intermediate nodes are created as needed. ``thinking.enabled`` is accepted as
    shorthand for ``thinking.types.enabled`` because that is how people say it.
    """
    parts = dotted.split(".")
    if parts[0] == "thinking" and len(parts) == 2 and parts[1] != "types":
        parts = ["thinking", "types", parts[1]]
    node = tree
    for part in parts:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node["supported"] = supported
    if not supported:
        # As the API writes a family a model lacks: every leaf below says so too,
        # except that a model with no thinking at all can always "disable" it
        # (``anthropic.types.ModelInfo``: `thinking.types.disabled` is true on such models).
        _mark_leaves(node, False)
        if parts == ["thinking"]:
            node.setdefault("types", {})["disabled"] = {"supported": True}


def _mark_leaves(node: dict[str, Any], supported: bool) -> None:
    for child in node.values():
        if isinstance(child, dict):
            if "supported" in child:
                child["supported"] = supported
            _mark_leaves(child, supported)


def _remove_path(tree: dict[str, Any], dotted: str) -> None:
    """Delete the node at ``a.b...`` (nothing if absent); ``thinking.x`` as in `_set_path`."""
    parts = dotted.split(".")
    if parts[0] == "thinking" and len(parts) == 2 and parts[1] != "types":
        parts = ["thinking", "types", parts[1]]
    node: Any = tree
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def make_model(
    model_id: str,
    *,
    unsupported: Iterable[str] = (),
    supported: Iterable[str] = (),
    omit: Iterable[str] = (),
    capabilities: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A Models API `ModelInfo` dict that supports everything unless told otherwise.

    Args:
        model_id: The model's id.
        unsupported: Dotted capability paths to mark ``supported: false``
            (``"image_input"``, ``"effort.xhigh"``, ``"thinking.types.enabled"``;
            ``"thinking.enabled"`` is shorthand for the latter).
        supported: Dotted capability paths to mark ``supported: true`` (applied first).
        omit: Dotted capability paths to leave out altogether (applied last): an
            optional leaf the model predates (``"effort.xhigh"``,
            ``"context_management.compact_20260112"``), or a whole family an older API
            version doesn't describe (``"server_tools"``). The fake, like the API,
            reads a missing leaf as unsupported.
        capabilities: Replace the whole capabilities tree (``None`` = all supported).
        **fields: Any other top-level field (``max_tokens``, ``lifecycle``, ``line``...).

    Returns:
        A fresh dict, safe to mutate.

    Example:
        >>> make_model("claude-tiny-1", unsupported=["image_input"], max_tokens=8192)["max_tokens"]
        8192
    """
    caps = copy.deepcopy(dict(capabilities)) if capabilities is not None else _full_capabilities()
    for path in supported:
        _set_path(caps, path, True)
    for path in unsupported:
        _set_path(caps, path, False)
    for path in omit:
        _remove_path(caps, path)
    model: dict[str, Any] = {
        "type": "model",
        "id": model_id,
        "display_name": model_id.replace("-", " ").title(),
        "created_at": "2026-01-01T00:00:00Z",
        "max_input_tokens": 1_000_000,
        "max_tokens": 128_000,
        "lifecycle": "active",
        "deprecated_at": None,
        "retires_at": None,
        "line": None,
        "capabilities": caps,
    }
    model.update(fields)
    return model


def builtin_models() -> list[dict[str, Any]]:
    """A small lineup, newest first, with the capability differences routers care about.

    Used when caproute's embedded registry snapshot is not available. Values are
    illustrative, not a claim about the real models.
    """
    return [
        make_model(
            "claude-opus-5-5",
            display_name="Claude Opus 5.5",
            created_at="2026-09-22T00:00:00Z",
            line="opus",
            unsupported=["thinking.types.enabled", "thinking.types.disabled"],
        ),
        make_model(
            "claude-sonnet-5-5",
            display_name="Claude Sonnet 5.5",
            created_at="2026-09-20T00:00:00Z",
            line="sonnet",
            unsupported=["thinking.types.enabled"],
        ),
        make_model(
            "claude-haiku-5-5",
            display_name="Claude Haiku 5.5",
            created_at="2026-09-07T00:00:00Z",
            line="haiku",
            unsupported=["effort.xhigh", "effort.max", "thinking.types.enabled"],
        ),
        make_model(
            "claude-sonnet-4-5-20250929",
            display_name="Claude Sonnet 4.5",
            created_at="2025-09-29T00:00:00Z",
            max_tokens=64_000,
            max_input_tokens=200_000,
            line="sonnet",
            lifecycle="deprecated",
            deprecated_at="2026-09-01T00:00:00Z",
            retires_at="2026-11-30T00:00:00Z",
            unsupported=["effort", "thinking.types.adaptive", "context_management"],
        ),
        make_model(
            "claude-haiku-4-5-20251001",
            display_name="Claude Haiku 4.5",
            created_at="2025-10-01T00:00:00Z",
            max_tokens=64_000,
            max_input_tokens=200_000,
            line="haiku",
            unsupported=[
                "effort",
                "thinking.types.adaptive",
                "structured_outputs",
                "code_execution",
                "server_tools.code_execution",
            ],
        ),
        make_model(
            "claude-3-opus-20240229",
            display_name="Claude Opus 3",
            created_at="2024-02-29T00:00:00Z",
            max_tokens=4_096,
            max_input_tokens=200_000,
            line="opus",
            lifecycle="retired",
            deprecated_at="2025-06-30T00:00:00Z",
            retires_at="2026-01-05T00:00:00Z",
            unsupported=["thinking", "effort", "pdf_input", "context_management", "server_tools"],
        ),
    ]


def default_catalogue() -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Models and aliases of caproute's embedded registry snapshot, or the built-in lineup.

    The snapshot is read as plain JSON (``{"format", "source", "aliases", "models"}``)
    rather than through `caproute.Registry`, to keep the fake independent of the code
    it tests.
    """
    try:
        text = (
            resources.files("caproute.data").joinpath("embedded_registry.json").read_text("utf-8")
        )
        document = json.loads(text)
        models = document["models"]
        aliases = document.get("aliases") or {}
        if (
            isinstance(models, list)
            and models
            and all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in models)
            and isinstance(aliases, dict)
        ):
            return models, {str(k): str(v) for k, v in aliases.items()}
    except (OSError, ValueError, KeyError, TypeError, ModuleNotFoundError):
        pass  # not written yet, or unreadable: the built-in lineup is good enough
    return builtin_models(), {}


class Catalogue:
    """A thread-safe, mutable list of Models API dicts plus alias → id pairs."""

    def __init__(
        self, models: Iterable[Mapping[str, Any]], aliases: Mapping[str, str] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._models: list[dict[str, Any]] = []
        self._aliases: dict[str, str] = dict(aliases or {})
        self.set_models(models)

    # -- changes ---------------------------------------------------------------------------

    def set_models(self, models: Iterable[Mapping[str, Any]]) -> None:
        """Replace the whole lineup (order = listing order, newest first)."""
        fresh = [copy.deepcopy(dict(m)) for m in models]
        for i, model in enumerate(fresh):
            if not isinstance(model.get("id"), str):
                raise ValueError(f"models[{i}] has no string 'id'")
        with self._lock:
            self._models = fresh

    def set_aliases(self, aliases: Mapping[str, str]) -> None:
        """Replace the explicit alias → id table."""
        with self._lock:
            self._aliases = dict(aliases)

    def update_model(
        self,
        name: str,
        *,
        unsupported: Iterable[str] = (),
        supported: Iterable[str] = (),
        capabilities: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """Change one model in place; see `FakeAnthropic.update_model`."""
        with self._lock:
            model = self._find(name)
            if model is None:
                raise KeyError(name)
            caps = model.get("capabilities")
            if not isinstance(caps, dict):
                caps = {}
                model["capabilities"] = caps
            if capabilities is not None:
                _deep_merge(caps, capabilities)
            for path in supported:
                _set_path(caps, path, True)
            for path in unsupported:
                _set_path(caps, path, False)
            model.update(copy.deepcopy(fields))

    # -- reads -----------------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        """A deep copy of every model, in listing order."""
        with self._lock:
            return copy.deepcopy(self._models)

    def get(self, name: str) -> dict[str, Any] | None:
        """A deep copy of the model with this id or alias, or `None`."""
        with self._lock:
            model = self._find(name)
            return None if model is None else copy.deepcopy(model)

    def _find(self, name: str) -> dict[str, Any] | None:
        # Callers hold the lock. Order: exact id, explicit alias, dated id → undated alias
        # (the API accepts `claude-haiku-4-5` for `claude-haiku-4-5-20251001`).
        by_id = {m["id"]: m for m in self._models}
        if name in by_id:
            return by_id[name]
        target = self._aliases.get(name)
        if target is not None and target in by_id:
            return by_id[target]
        for model in self._models:
            match = _DATED_ID.match(model["id"])
            if match and match.group("alias") == name:
                return model
        return None


def lifecycle_of(model: Mapping[str, Any]) -> str:
    """The model's lifecycle; models from before the field existed count as active."""
    value = model.get("lifecycle")
    return value if isinstance(value, str) else "active"


def _deep_merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
