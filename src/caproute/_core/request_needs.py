"""What a request needs, as `features.detect` reports it: `RequestNeeds` (capability
paths with where they came from, the input-token estimate) and the `Parameters`
selection, the rules and the router's fast path read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

__all__ = [
    "MISSING_VALUE",
    "NOT_A_SCALAR",
    "JSONPath",
    "Parameters",
    "RequestNeeds",
    "format_path",
]

_FORCED_TOOL_CHOICES = frozenset({"any", "tool"})


JSONPath = tuple[str | int, ...]
"""A location in the body as keys and list indices: ``("messages", 3, "content", 0)``."""


def format_path(path: JSONPath) -> str:
    """Render a path the way decisions show it: ``messages[3].content[0]``."""
    out: list[str] = []
    for key in path:
        if isinstance(key, int):
            out.append(f"[{key}]")
        else:
            out.append(f".{key}" if out else key)
    return "".join(out)


class Parameters(NamedTuple):
    """The request parameters selection and the rules read: small, hashable values.

    One value shared by `RequestNeeds` (as sent), `Draft` (as planned for a candidate)
    and the router's fast-path key, so a parameter added here can't be forgotten in
    any of the three. A named tuple: built for every request, compared and hashed as
    a plain tuple.
    """

    model: str
    """The requested model id or alias, as sent."""
    max_tokens: int | None = None
    """``max_tokens`` (`None` when absent, e.g. for count_tokens)."""
    thinking_type: str | None = None
    """``thinking.type`` as sent (``enabled``, ``adaptive``, ``disabled``...)."""
    budget_tokens: int | None = None
    """``thinking.budget_tokens`` when it is an integer."""
    effort: str | None = None
    """``output_config.effort`` as sent."""
    sampling: tuple[tuple[str, Any], ...] = ()
    """``(name, value)`` of each of ``temperature`` / ``top_p`` / ``top_k`` present; a
    value that is not a JSON scalar is kept as `NOT_A_SCALAR` (still hashable)."""
    tool_choice_type: str | None = None
    """``tool_choice.type`` as sent (``auto``, ``any``, ``tool``, ``none``)."""
    thinking_history: bool = False
    """Whether the history carries ``thinking`` / ``redacted_thinking`` blocks."""
    versioned_content: bool = False
    """Whether the content holds shapes API version 2026-10-21 refuses (a document in an
    assistant turn, citations in a user text block)."""
    batch_refused: str | None = None
    """For a Message Batch item, the parameter the API errors in a batch whatever the
    model ("Batch processing" page): ``stream`` (``true``: batches run non-streaming bodies
    only) or ``billing_policy.bill_to`` (``user_profile``); else `None`."""

    @property
    def sampling_names(self) -> tuple[str, ...]:
        """Which sampling parameters are present, in `SAMPLING_PARAMS` order."""
        return tuple(name for name, _ in self.sampling)

    def sampling_value(self, name: str) -> Any:
        """The value of a sampling parameter, or `MISSING_VALUE` when it is absent."""
        for key, value in self.sampling:
            if key == name:
                return value
        return MISSING_VALUE


NOT_A_SCALAR: Final = "<not a JSON scalar>"
"""Stands for a sampling value that is a list or object (the API will refuse it)."""

MISSING_VALUE: Final = object()
"""`Parameters.sampling_value` of a parameter the request doesn't carry."""


@dataclass(frozen=True, slots=True)
class RequestNeeds:
    """Everything about a body that decides which model can take it, and how.

    Build it with `detect`; it holds paths and small values, never request content.
    """

    params: Parameters
    """The parameters as sent."""
    capabilities: Mapping[str, tuple[JSONPath, ...]]
    """Capability path → every place in the body that needs it, in body order."""
    thinking_history: JSONPath | None = None
    """Where the first ``thinking`` / ``redacted_thinking`` block of the history is."""
    assistant_documents: tuple[JSONPath, ...] = ()
    """``document`` blocks directly inside assistant turns (400 under 2026-10-21)."""
    user_text_citations: tuple[JSONPath, ...] = ()
    """User ``text`` blocks carrying a non-empty ``citations`` list (400 under 2026-10-21)."""
    input_tokens: int = 0
    """The cheap input-token estimate described in the module docstring."""

    @property
    def paths(self) -> tuple[str, ...]:
        """The capability paths needed, sorted."""
        return tuple(sorted(self.capabilities))

    @property
    def forced_tool_choice(self) -> bool:
        """True when ``tool_choice`` forces a tool (``any`` or ``tool``)."""
        return self.params.tool_choice_type in _FORCED_TOOL_CHOICES

    def where(self, capability: str) -> str:
        """The first place `capability` is needed, rendered (empty if not needed)."""
        found = self.capabilities.get(capability)
        return format_path(found[0]) if found else ""
