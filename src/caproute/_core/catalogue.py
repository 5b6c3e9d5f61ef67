"""The capability catalogue: what caproute knows about each capability family, in one place.

Policy validation (which names and actions are allowed), selection (what to do when a
model lacks a capability), the rule table (which policy key governs each rule) and the
learning step (which words in an API error point at a capability) all read this
module; none of them keeps its own copy.

Per capability family (the top-level keys of the Models API ``capabilities``):

=====================  =========  =========  ==============================================
family                 auto       strip      why
=====================  =========  =========  ==============================================
thinking               adjust     yes        ``enabled`` ↔ ``adaptive`` keeps the intent
effort                 adjust     yes        the nearest level (downwards first), else removed
context_management     strip      yes        edits only save tokens; the request still works
image_input            reroute    refused    images are message content
pdf_input              reroute    refused    PDFs are message content
citations              reroute    yes        stripping changes a content block and the answer
structured_outputs     reroute    yes        a JSON schema cannot be emulated
server_tools           reroute    yes        dropping a tool changes what the model can do
code_execution         reroute    yes        programmatic tool calling; strip drops callers
compaction, batch      reroute    yes / no   nothing to adjust
=====================  =========  =========  ==============================================

And per rule no capability key states (`RULE_KEYS`, implemented in `rules`):
``max_tokens`` (adjust: clamp; strip refused), ``context_window`` (reroute; strip
refused), ``sampling`` (strip), ``tool_choice`` (adjust), ``thinking_sampling``
(adjust the sampling; ``strip`` drops thinking instead) and ``refused_parameters``
(strip a parameter a model was seen to refuse, learned as ``parameters.<name>``).

Last, the words of refusals that are *not* about the model (`REFUSAL_CODES`,
`ORGANIZATION_PHRASES`, `PAYLOAD_PHRASES`, `SHAPE_PHRASES`) and of a model refusing a
plain parameter (`MODEL_PARAMETER_PHRASES`): what `learning.classify` reads to decide
which kind of refusal a 400 is, each with the public text it comes from.

An action that means nothing for a family (``adjust`` an image) reads as the family's
default, so every policy has one literal reading.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, TypeAlias, get_args

from .decision import MISSING
from .draft import Draft
from .request_needs import JSONPath

__all__ = [
    "ACTIONS",
    "ACCOUNT_FEATURES",
    "EFFORT_LEVELS",
    "ERROR_TYPE_CLASSES",
    "FAMILIES",
    "KNOWN_LEAVES",
    "MODEL_PARAMETER_PHRASES",
    "NEVER_STRIPPED",
    "ORGANIZATION_PHRASES",
    "PARAMETER_PREFIX",
    "PAYLOAD_PHRASES",
    "REFUSAL_CODES",
    "RULE_KEYS",
    "SHAPE_PHRASES",
    "UNKNOWN_FAMILY",
    "Action",
    "CapabilityFix",
    "Family",
    "Missing",
    "RefusalClass",
    "RuleKey",
    "family_of",
    "known_leaf",
    "not_strippable",
]

Action: TypeAlias = Literal["auto", "reroute", "adjust", "strip", "reject"]
"""What to do when the chosen model lacks something the request needs."""

ACTIONS: tuple[Action, ...] = get_args(Action)

EFFORT_LEVELS: Final = ("low", "medium", "high", "xhigh", "max")

KNOWN_LEAVES: Final[Mapping[str, frozenset[str]]] = {
    "effort": frozenset(EFFORT_LEVELS),
    "thinking.types": frozenset({"enabled", "adaptive", "disabled", "between_tools"}),
    "context_management": frozenset(
        {"clear_tool_uses_20250919", "clear_thinking_20251015", "compact_20260112"}
    ),
}
"""The leaves this release was written for, under the parents whose leaves are request
values (an effort level, a thinking type, an edit type): the API adds new ones."""


def known_leaf(path: str) -> bool:
    """Whether caproute knows the capability at `path`, as opposed to a value newer than
    this release (``effort.ultra``, a context-management edit type added later)."""
    head, _, leaf = path.rpartition(".")
    known = KNOWN_LEAVES.get(head)
    return known is None or leaf in known


"""``output_config.effort`` values, from least to most effort."""


class Missing(NamedTuple):
    """A capability the candidate lacks, as a fix sees it (a tuple: made per problem)."""

    capability: str
    """The capability path (``effort.max``, ``server_tools.web_search``...)."""
    where: tuple[JSONPath, ...]
    """Every place in the body that needs it."""


CapabilityFix = Callable[[Draft, Missing], None]
"""A fix for a missing capability, recording its edits on the draft."""


# -- capability fixes ----------------------------------------------------------------------------


def _effort_adjust(draft: Draft, missing: Missing) -> None:
    """The nearest level the model has, downwards first; none at all → remove it."""
    level = draft.params.effort
    if level in EFFORT_LEVELS:
        i = EFFORT_LEVELS.index(level)
        for other in (*reversed(EFFORT_LEVELS[:i]), *EFFORT_LEVELS[i + 1 :]):
            if draft.model_has(f"effort.{other}"):
                draft.plan(effort=other)
                reason = f"{draft.model} has no effort level {level!r}"
                draft.edit(("output_config", "effort"), other, "adjust", reason)
                return
    _effort_strip(draft, missing)


def _effort_strip(draft: Draft, missing: Missing) -> None:
    draft.plan(effort=None)
    draft.remove(("output_config", "effort"), "strip", _lacks(draft, missing))


# What `adjust` tries instead of a thinking type the model lacks, in order.
_THINKING_ALTERNATIVES: Final[Mapping[str, tuple[str, ...]]] = {
    "enabled": ("adaptive",),
    "adaptive": ("enabled",),
    "between_tools": ("disabled",),
    "disabled": (),
}


def _thinking_adjust(draft: Draft, missing: Missing) -> None:
    """Switch to the closest thinking type the model has; none → omit (model default)."""
    current = draft.params.thinking_type or ""
    for other in _THINKING_ALTERNATIVES.get(current, ()):
        if draft.model_has(f"thinking.types.{other}"):
            draft.switch_thinking(other, f"{draft.model} has no thinking type {current!r}")
            return
    draft.drop_thinking(
        f"{_lacks(draft, missing)} and has no close type; the model default applies"
    )


def _thinking_strip(draft: Draft, missing: Missing) -> None:
    draft.drop_thinking(_lacks(draft, missing))


def _strip_key_at(key: str) -> CapabilityFix:
    """A fix removing `key` inside each location (``citations`` of a document block)."""

    def strip(draft: Draft, missing: Missing) -> None:
        for path in missing.where:
            draft.remove((*path, key), "strip", _lacks(draft, missing))

    return strip


def _strip_locations(draft: Draft, missing: Missing) -> None:
    """Remove each location itself (a tool, an edit, ``output_config.format``, ...)."""
    for path in missing.where:
        draft.remove(path, "strip", _lacks(draft, missing))


def _strip_code_execution_callers(draft: Draft, missing: Missing) -> None:
    """Drop the ``code_execution_*`` entries of ``allowed_callers`` (the key if none remain)."""
    reason = f"{_lacks(draft, missing)} (programmatic tool calling)"
    for path in missing.where:
        callers = _at(draft.body, path)
        kept = [c for c in callers if not (isinstance(c, str) and c.startswith("code_execution_"))]
        draft.edit(path, kept if kept else MISSING, "strip", reason)


def _lacks(draft: Draft, missing: Missing) -> str:
    """``claude-x lacks effort.max`` (or "doesn't state" when support is only unknown)."""
    if draft.model_lacks(missing.capability):
        return f"{draft.model} lacks {missing.capability}"
    return f"{draft.model} is not known to support {missing.capability}"


def _at(body: Any, path: JSONPath) -> Any:
    node = body
    for key in path:
        node = node[key]
    return node


# -- the families --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Family:
    """What caproute knows about one capability family."""

    name: str
    default: Action
    """What ``auto`` does when a model lacks a capability of this family."""
    fixes: Mapping[Action, CapabilityFix]
    """How ``adjust`` / ``strip`` repair the request (an action missing here has no fix)."""
    vocabulary: tuple[str, ...]
    """Words an API error uses for this family (matched on word boundaries; a trailing
    ``*`` matches a prefix, e.g. a versioned tool type)."""
    strip_refused: str | None = None
    """Why ``strip`` is not allowed here (message content), or `None`."""
    optional_leaves: tuple[str, ...] = ()
    """Leaves the SDK types mark optional (``*`` = every leaf; the optional fields under
    ``anthropic.types.ModelInfo``): their absence, while the parent states siblings,
    means the model predates them."""
    meaningful: frozenset[Action] = frozenset()
    """The actions with a meaning here (the fixes, reroute, reject); derived."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "meaningful", frozenset({*self.fixes, "reroute", "reject"}))


_CONTENT = "message content, which caproute never removes"

FAMILIES: Final[Mapping[str, Family]] = {
    family.name: family
    for family in (
        Family(
            "thinking",
            "adjust",
            {"adjust": _thinking_adjust, "strip": _thinking_strip},
            ("thinking",),
        ),
        Family(
            "effort",
            "adjust",
            {"adjust": _effort_adjust, "strip": _effort_strip},
            ("effort",),
            optional_leaves=("xhigh",),
        ),
        Family(
            "context_management",
            "strip",
            {"strip": _strip_locations},
            ("context_management", "context management", "edits"),
            optional_leaves=("*",),
        ),
        Family(
            "image_input",
            "reroute",
            {},
            ("image", "images"),
            strip_refused=f"images are {_CONTENT}",
        ),
        Family(
            "pdf_input",
            "reroute",
            {},
            ("pdf", "pdfs", "document", "documents"),
            strip_refused=f"PDFs are {_CONTENT}",
        ),
        Family(
            "citations", "reroute", {"strip": _strip_key_at("citations")}, ("citations", "citation")
        ),
        Family(
            "structured_outputs",
            "reroute",
            {"strip": _strip_locations},
            ("structured", "output_format", "format", "json_schema", "strict"),
        ),
        Family(
            "server_tools",
            "reroute",
            {"strip": _strip_locations},
            ("server tool", "server tools", "server_tools"),
        ),
        Family(
            "code_execution",
            "reroute",
            {"strip": _strip_code_execution_callers},
            ("allowed_callers", "programmatic", "code_execution", "code execution"),
        ),
        Family("compaction", "reroute", {"strip": _strip_locations}, ("compaction",)),
        Family("batch", "reroute", {}, ("batch", "batches")),
    )
}
"""Every capability family of the Models API (``anthropic.types.ModelInfo``), by name."""

UNKNOWN_FAMILY: Final = Family("unknown", "reroute", {}, ())
"""A capability key caproute doesn't know yet: nothing to adjust, so reroute."""


def family_of(path: str) -> Family:
    """The family of a capability path (``effort.max`` → effort)."""
    return FAMILIES.get(path.split(".", 1)[0], UNKNOWN_FAMILY)


# -- the policy keys of rules no capability key states ------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleKey:
    """A policy key governing API rules that no capability key states."""

    name: str
    doc: str
    strip_refused: str | None = None


RULE_KEYS: Final[Mapping[str, RuleKey]] = {
    key.name: key
    for key in (
        RuleKey(
            "max_tokens",
            "the model's output ceiling (adjust: clamp)",
            strip_refused="the API requires max_tokens (use adjust to clamp it)",
        ),
        RuleKey(
            "context_window",
            "the model's input limit (max_input_tokens)",
            strip_refused="the conversation itself is what fills the context window",
        ),
        RuleKey("sampling", "temperature/top_p/top_k under anthropic-version 2026-10-21"),
        RuleKey("tool_choice", "a forced tool_choice with thinking on"),
        RuleKey(
            "refused_parameters",
            "a top-level parameter a model refused although no capability key says so "
            "(learned from its 400, e.g. temperature on a model that deprecated it; "
            "auto: strip it for that model)",
        ),
        RuleKey(
            "thinking_sampling",
            "temperature/top_p/top_k with thinking on (adjust: fix the sampling; "
            "strip: drop thinking instead)",
        ),
    )
}


def not_strippable(key: str) -> str | None:
    """Why ``strip`` is refused for a policy key (a capability path or rule key), or `None`."""
    rule = RULE_KEYS.get(key)
    if rule is not None:
        return rule.strip_refused
    family = FAMILIES.get(key.split(".", 1)[0])
    return family.strip_refused if family is not None else None


# -- what a refusal is about (read by `learning.classify`) --------------------------------------
#
# The API documents ``error.type`` as the thing to branch on and, in SDK 2.x, the
# ``error.details.error_code`` naming the cause ("branch on it rather than on
# `message`... Treat an unrecognized `error_code` as the bare `type`": the docstring of
# ``APIStatusError.error_code`` in anthropic 2.17's ``_exceptions.py``). The phrases
# below are for the refusals that carry no code: they are matched lower-cased, as
# substrings, after the error code and before any capability vocabulary.

RefusalClass: TypeAlias = Literal["organization", "payload", "shape"]

REFUSAL_CODES: Final[Mapping[str, RefusalClass]] = {
    # anthropic 2.17 ``types/shared/organization_url_fetch_disabled_error.py``: "Anthropic
    # has turned off URL image and document sources, the `web_fetch` tool and
    # `mcp_servers` for the organization, so the request cannot use them."
    "organization_url_fetch_disabled": "organization",
    # ``types/shared/``: the organization's standing, contract and spend limits.
    "organization_on_hold": "organization",
    "organization_type_not_supported": "organization",
    "parent_organization_required": "organization",
    "contract_spend_limit_reached": "organization",
    "enforced_spend_limit_reached": "organization",
    "linked_organization_billing_unavailable": "organization",
    "linked_organization_spend_limit_reached": "organization",
    "ramp_limit_exceeded": "organization",
    "workspace_human_review_disabled": "organization",
    "workspace_policy_violation": "organization",
    "cmek_key_disabled": "organization",
    "cmek_key_unreachable": "organization",
    "cmek_key_network_blocked": "organization",
    "cmek_context_unavailable": "organization",
    "user_profile_required": "organization",
    "user_profile_not_found": "organization",
    "user_profile_not_billable": "organization",
    "user_profile_billing_not_authorized": "organization",
    # ``types/image_dimensions_too_large_error.py``: "The longest side of one or more
    # images in the request exceeds the image size limit."
    "image_dimensions_too_large": "payload",
    "request_body_too_large_after_decoding": "payload",
    "available_tools_limit_exceeded": "payload",
    # ``types/*``: a request any model would refuse as it is written.
    "request_body_encoding_invalid": "shape",
    "request_body_encoding_unsupported": "shape",
    "tool_name_conflict": "shape",
    "tool_reference_unresolved": "shape",
    "file_not_downloadable": "shape",
    "file_expired": "shape",
    "compaction_block_ambiguous": "shape",
    "compaction_block_misplaced": "shape",
    "compaction_content_mismatch": "shape",
    "compaction_incomplete_turn": "shape",
    "compaction_nothing_to_summarize": "shape",
    "compaction_signature_invalid": "shape",
    "compaction_too_many_tool_references": "shape",
    "compaction_tool_changes_mismatch": "shape",
}
"""``error.details.error_code`` → what the refusal is about (the ``(400, code)`` entries of
anthropic 2.17's ``ERROR_CLASSES`` in ``_error_classes.py``, by the class docstrings).
A code not listed is read as the bare type: the message decides."""

ERROR_TYPE_CLASSES: Final[Mapping[str, RefusalClass]] = {
    "billing_error": "organization",  # 402, ``PaymentRequiredError``
    "permission_error": "organization",  # 403, ``PermissionDeniedError``
    "authentication_error": "organization",  # 401
    "request_too_large": "payload",  # 413, "Request exceeds the maximum size"
}
"""``error.type`` values that are never about a model (docs: /en/api/errors)."""

ORGANIZATION_PHRASES: Final = (
    # "Your credit balance is too low to access the Anthropic API. Please go to Plans &
    # Billing to upgrade or purchase credits." (a 400 invalid_request_error)
    "credit balance",
    "plans & billing",
    "billing",
    # "This organization has been disabled."; URL sources "turned off ... for the
    # organization" (the SDK 2.17 class docstring above)
    "organization",
    "workspace",
    "your account",
    "api key does not have permission",
    "spend limit",
)
"""Words of a refusal about the organization or account, not about the model."""

PAYLOAD_PHRASES: Final = (
    # "messages.0.content.2.image.source.base64: image exceeds 5 MB maximum: 15908784
    # bytes > 5242880 bytes" (anthropics/claude-code#10612)
    "image exceeds",
    "mb maximum",
    "bytes >",
    # "...image.source.base64.data: At least one of the image dimensions exceed max
    # allowed size: 8000 pixels" / "...for many-image requests: 2000 pixels"
    # (anthropics/claude-code#4778, #24630)
    "image dimensions",
    "pixels",
    # "messages.38.content.0.pdf.source.base64.data: A maximum of 100 PDF pages may be
    # provided." (anthropics/claude-code#6231)
    "pdf pages",
    "pages may be provided",
    # "Too much media: 0 document pages + 103 images > 100" (anthropics/claude-code#3397);
    # "too many images and documents: 104 + 1 > 100" (anthropics/claude-code#23392)
    "too much media",
    "too many images",
    "images and documents",
    # "prompt is too long: 208656 tokens > 200000 maximum" (the window for this content)
    "prompt is too long",
    "prompt is too large",
    # 413 "Request exceeds the maximum size" (anthropics/anthropic-sdk-python#938)
    "request exceeds the maximum",
    "request too large",
    "request is too large",
)
"""Words of a refusal about the size or count of the content, not about the model."""

SHAPE_PHRASES: Final = (
    # Rules every model enforces, whatever it can do: "`temperature` may only be set to
    # 1 when thinking is enabled.", "temperature: Extra inputs are not permitted"
    # (API version 2026-10-21), pydantic-style "Field required" / "Input should be".
    "when thinking is enabled",
    "extra inputs are not permitted",
    "field required",
    "must be greater than",
)
"""Words of a refusal of the request's shape that any model would give."""

MODEL_PARAMETER_PHRASES: Final = (
    # "`temperature` is deprecated for this model." (claude-opus-4-7; LiteLLM issue
    # 26444, The-PR-Agent/pr-agent#2456), "temperature is deprecated in this model"
    "deprecated for this model",
    "deprecated in this model",
    "deprecated on this model",
    "not supported by this model",
    "not supported for this model",
    "not supported on this model",
    "is not supported by model",
)
"""Words of a model refusing a plain parameter it used to take (no capability key)."""

PARAMETER_PREFIX: Final = "parameters."
"""Learned-fact keys for plain parameters a model refuses: ``parameters.temperature``."""

NEVER_STRIPPED: Final = frozenset(
    {"model", "messages", "system", "max_tokens", "stream", "metadata", "container"}
)
"""Top-level keys never learned as refused parameters: stripping them would change the
conversation, the answer's transport or what the caller tracks."""

ACCOUNT_FEATURES: Final[Mapping[str, str]] = {
    "organization_url_fetch_disabled": "url_sources",
}
"""Organization-level refusals caproute can recognise in later requests, by code → the
feature the organization has off (``url_sources``: URL image/document sources, the
``web_fetch`` tool and ``mcp_servers``)."""
