"""What a retry round learns from an ``errored`` result, as a single request would
learn from the same refusal (the core flow's attribution and its `Learn` /
`MarkRetired` actions)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from .._core.decision import MISSING
from .._core.flow import Learn, MarkRetired, View, blames_the_model
from .._core.learning import classify
from .._core.request_needs import JSONPath
from .._core.rewrite import apply_edits

__all__ = ["lesson", "sent_params", "taught_by"]


def lesson(
    view: View, error: Mapping[str, Any], sent: Mapping[str, Any], model: str
) -> Learn | MarkRetired | None:
    """What an ``errored`` batch result teaches about `model`: the action the flow takes
    for the same refusal of a single request (`caproute._core.flow.call_flow`), or
    `None`: `Learn` for an ``invalid_request_error`` about the model that names a parameter
    (`classify`: organization, payload and shape refusals teach nothing),
    `MarkRetired` for a ``not_found_error`` about the model.

    Args:
        view: The routing state (for the registry key that gates what is learned).
        error: The result's ``error`` (an error body: ``{"type": "error", "error":
            {"type", "message"}}``, `MessageBatchErroredResult` in the SDK).
        sent: The ``params`` that were sent (and refused).
        model: The model they were sent to.
    """
    inner = error.get("error") if isinstance(error, Mapping) else None
    if not isinstance(inner, Mapping):
        return None
    message = inner.get("message")
    text = message if isinstance(message, str) else None
    if inner.get("type") == "not_found_error" and blames_the_model(text, sent, model):
        return MarkRetired(model, f"errored with not_found_error from {model}")
    if inner.get("type") != "invalid_request_error":
        return None
    details = inner.get("details")
    code = details.get("error_code") if isinstance(details, Mapping) else None
    found = classify(text, sent, model, error_code=code if isinstance(code, str) else None).fact
    if found is None:
        return None  # not about the model (organization, payload, shape) or unclear
    key = view.engine.effective_key(model, found.key)
    return Learn(model, key, found.value, found.reason)


_PATH_PART: Final = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def _parsed_path(path: str) -> JSONPath:
    """``tools[2].strict`` → ``("tools", 2, "strict")`` (`Change.path`, read back)."""
    return tuple(int(i) if i else key for i, key in _PATH_PART.findall(path))


def sent_params(params: Mapping[str, Any], decision: Mapping[str, Any]) -> dict[str, Any]:
    """The ``params`` a round sent: the input line's, with the recorded decision's
    changes applied (the same patches routing made)."""
    edits = [
        (_parsed_path(c["path"]), MISSING if c["removed"] else c["after"])
        for c in decision.get("changes", ())
    ]
    return apply_edits(params, edits)


def taught_by(
    view: View, params: dict[str, Any], result: Mapping[str, Any], decision_json: str
) -> Learn | MarkRetired | None:
    """What a retried request's latest result teaches (only an ``errored`` one can)."""
    if result.get("type") != "errored":
        return None
    decision = json.loads(decision_json)
    model = decision.get("model")
    if not isinstance(model, str) or decision.get("outcome") == "passthrough":
        return None  # a model nobody knows gets no facts, as in the single-request flow
    try:
        sent = sent_params(params, decision)
    except (KeyError, IndexError, TypeError, ValueError):
        return None  # a change whose path can't be read back: learn nothing rather than guess
    return lesson(view, result.get("error") or {}, sent, model)
