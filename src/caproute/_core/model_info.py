"""The Models API's model object (``GET /v1/models``; the SDK's
`anthropic.types.ModelInfo` and its ``capabilities``), as pydantic models that keep
every key they don't know, so a capability the API adds next month is queryable by its
dotted path and survives a snapshot round trip."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from .._exceptions import RegistryError

__all__ = [
    "ApiObject",
    "Capabilities",
    "CapabilitySupport",
    "ModelInfo",
    "parse_model",
]


class ApiObject(BaseModel):
    """Base for Models API payloads: frozen, strict, and unknown keys are kept.

    Strict: a value of the wrong JSON type is an error, never coerced (``"yes"`` is not
    a boolean, ``"8192"`` not a token count), so a corrupt snapshot fails at load time
    with its path instead of being half-understood. Unknown keys are not validated.
    """

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)


_PositiveInt = Annotated[int, Field(gt=0)]
"""A token limit: a model that takes no tokens at all is impossible data."""
_Timestamp = Annotated[datetime, Strict(False)]
"""An RFC 3339 string in JSON (strict mode would only take `datetime` objects)."""


class CapabilitySupport(ApiObject):
    """A capability leaf, ``{"supported": bool}``; a family (``thinking``, ``effort``...)
    is one with leaves below it."""

    supported: bool | None = None
    """Whether the model supports the feature; `None` when the API left it out."""


class ThinkingTypes(ApiObject):
    """Which `thinking.type` values the model accepts; read each key independently."""

    adaptive: CapabilitySupport | None = None
    enabled: CapabilitySupport | None = None
    disabled: CapabilitySupport | None = None
    """False exactly when `{"type": "disabled"}` is a 400 (thinking cannot be turned off)."""
    between_tools: CapabilitySupport | None = None


class ThinkingCapability(CapabilitySupport):
    """`capabilities.thinking`."""

    types: ThinkingTypes | None = None


class EffortCapability(CapabilitySupport):
    """`capabilities.effort`: one leaf per `output_config.effort` level."""

    low: CapabilitySupport | None = None
    medium: CapabilitySupport | None = None
    high: CapabilitySupport | None = None
    xhigh: CapabilitySupport | None = None
    max: CapabilitySupport | None = None


class ContextManagementCapability(CapabilitySupport):
    """`capabilities.context_management`: one optional leaf per edit strategy."""

    clear_thinking_20251015: CapabilitySupport | None = None
    clear_tool_uses_20250919: CapabilitySupport | None = None
    compact_20260112: CapabilitySupport | None = None


class ServerToolsCapability(CapabilitySupport):
    """`capabilities.server_tools` (SDK 1.12+): code execution and web search tools."""

    code_execution: CapabilitySupport | None = None
    web_search: CapabilitySupport | None = None


class CompactionCapability(CapabilitySupport):
    """`capabilities.compaction` (beta responses only)."""

    summarize: CapabilitySupport | None = None


class Capabilities(ApiObject):
    """`ModelInfo.capabilities`: every key the SDK's ``anthropic.types.ModelInfo`` gives
    its ``capabilities``, plus whatever comes next."""

    batch: CapabilitySupport | None = None
    citations: CapabilitySupport | None = None
    code_execution: CapabilitySupport | None = None
    """0.x meaning: any code-execution tool; 2.x meaning: programmatic tool calling."""
    server_tools: ServerToolsCapability | None = None
    context_management: ContextManagementCapability | None = None
    compaction: CompactionCapability | None = None
    effort: EffortCapability | None = None
    image_input: CapabilitySupport | None = None
    pdf_input: CapabilitySupport | None = None
    structured_outputs: CapabilitySupport | None = None
    thinking: ThinkingCapability | None = None


class ModelInfo(ApiObject):
    """One entry of `GET /v1/models`, field for field."""

    id: Annotated[str, Field(min_length=1)]
    type: str = "model"
    display_name: str | None = None
    created_at: _Timestamp | None = None
    max_input_tokens: _PositiveInt | None = None
    """The context window, in tokens."""
    max_tokens: _PositiveInt | None = None
    """The ceiling for a request's `max_tokens`."""
    lifecycle: str | None = None
    """`active`, `deprecated` or `retired` (open set); `None` on older API answers."""
    deprecated_at: _Timestamp | None = None
    retires_at: _Timestamp | None = None
    line: str | None = None
    """`haiku`, `sonnet`, `opus`, `fable`, `mythos`, ... (open set; never parsed from the id)."""
    capabilities: Capabilities | None = None

    def to_api_dict(self) -> dict[str, Any]:
        """The model as the API sent it: keys it left out stay out, unknown keys stay in."""
        return self.model_dump(mode="json", exclude_unset=True)


def parse_model(raw: Mapping[str, Any], where: str) -> ModelInfo:
    if not isinstance(raw, Mapping):
        raise RegistryError(f"invalid model entry {where}: not an object")
    try:
        return ModelInfo.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        model_id = raw.get("id")
        ident = f" ({model_id})" if isinstance(model_id, str) and model_id else ""
        raise RegistryError(f"invalid model entry {where}{ident}: {loc}: {first['msg']}") from exc
