"""The capability registry: what each Claude model supports, as the Models API says.

Sans-IO: this module only holds data. Fetching, caching and files live in the shells
(`caproute._registry.fetch`, `caproute._registry.snapshot`).

Three rules shape it:

* The pydantic models mirror `GET /v1/models` exactly and keep every key they don't
  know (``extra="allow"``, top level and nested), so a capability the API adds next
  month is queryable by its dotted path and survives a snapshot round trip.
* Absence is read the way the API writes it. `Registry.supports` answers with a
  three-state `Support`; callers decide what unknown means to them. An *optional*
  leaf (the catalogue's `Family.optional_leaves`) missing while its parent object
  states its siblings is unsupported (that is how the API describes a model that
  predates an effort level or a context-management strategy); a required leaf
  missing (``thinking.types.disabled`` / ``between_tools`` before SDK 1.12 / 1.15)
  or a whole family missing (an older API version, an old snapshot) is unknown;
  below a node that says ``supported: false`` every leaf is unsupported.
* What was once known is not forgotten, and a list never takes a model away by
  omission alone: a model a later list leaves out is kept, *unlisted* (a gateway or a
  key may list only some models), and routed as before until the API itself says it
  is gone (its 404: a learned ``lifecycle`` fact; or a record saying ``retired``).
  *Tombstones* (models known to be unavailable) come only from a snapshot or cache
  file that holds them.
* Facts learned from the API's refusals lie over the data (`LearnedFact`,
  `Registry.with_learned`) for as long as they are true: until their TTL ends
  (`LearnedFact.in_force`) or the live record for their key *changes* after they were
  learned (`LearnedFact.basis`); a fresh copy of the same record does not end them.
* A `Registry` is an immutable snapshot. Changes (a newer list, a learned fact, an
  alias) return a new one.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from .._exceptions import RegistryError
from .catalogue import family_of

__all__ = [
    "Capabilities",
    "CapabilitySupport",
    "LearnedFact",
    "Limits",
    "ModelInfo",
    "Registry",
    "RegistrySource",
    "SourceKind",
    "Support",
    "fact_ttl",
]

SNAPSHOT_FORMAT = "caproute-registry/1"


class _ApiObject(BaseModel):
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


class CapabilitySupport(_ApiObject):
    """A capability leaf: ``{"supported": bool}``."""

    supported: bool | None = None
    """Whether the model supports the feature; `None` when the API left it out."""


class ThinkingTypes(_ApiObject):
    """Which `thinking.type` values the model accepts; read each key independently."""

    adaptive: CapabilitySupport | None = None
    enabled: CapabilitySupport | None = None
    disabled: CapabilitySupport | None = None
    """False exactly when `{"type": "disabled"}` is a 400 (thinking cannot be turned off)."""
    between_tools: CapabilitySupport | None = None


class ThinkingCapability(_ApiObject):
    """`capabilities.thinking`."""

    supported: bool | None = None
    types: ThinkingTypes | None = None


class EffortCapability(_ApiObject):
    """`capabilities.effort`: one leaf per `output_config.effort` level."""

    supported: bool | None = None
    low: CapabilitySupport | None = None
    medium: CapabilitySupport | None = None
    high: CapabilitySupport | None = None
    xhigh: CapabilitySupport | None = None
    max: CapabilitySupport | None = None


class ContextManagementCapability(_ApiObject):
    """`capabilities.context_management`: one optional leaf per edit strategy."""

    supported: bool | None = None
    clear_thinking_20251015: CapabilitySupport | None = None
    clear_tool_uses_20250919: CapabilitySupport | None = None
    compact_20260112: CapabilitySupport | None = None


class ServerToolsCapability(_ApiObject):
    """`capabilities.server_tools` (SDK 1.12+): code execution and web search tools."""

    supported: bool | None = None
    code_execution: CapabilitySupport | None = None
    web_search: CapabilitySupport | None = None


class CompactionCapability(_ApiObject):
    """`capabilities.compaction` (beta responses only)."""

    supported: bool | None = None
    summarize: CapabilitySupport | None = None


class Capabilities(_ApiObject):
    """`ModelInfo.capabilities`, every key api-facts §2.4 lists, plus whatever comes next."""

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


class ModelInfo(_ApiObject):
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


class Support(enum.Enum):
    """The answer to "does model X support Y": three states, kept apart."""

    SUPPORTED = "supported"
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"

    def __bool__(self) -> bool:
        # Refuse truthiness: `if registry.supports(...)` would silently treat UNKNOWN as yes.
        raise TypeError("Support is three-state; compare with Support.SUPPORTED explicitly")


SourceKind = Literal["live", "snapshot", "cache", "embedded", "static"]


@dataclass(frozen=True, slots=True)
class RegistrySource:
    """Where a registry's data came from and when."""

    kind: SourceKind
    """`live` (Models API), `snapshot` (an explicit file), `cache` (the user cache file),
    `embedded` (shipped in the package) or `static` (built in code)."""
    fetched_at: float | None = None
    """Unix time (seconds) the data was fetched from the API; `None` if never."""
    location: str | None = None
    """The base URL or file path it came from (never a key)."""
    describes: str | None = None
    """For the embedded snapshot: the date (YYYY-MM-DD) of the lineup it describes."""

    def age(self, now: float) -> float | None:
        """Seconds since the data was fetched, given the current Unix time."""
        return None if self.fetched_at is None else max(0.0, now - self.fetched_at)

    def describe(self, now: float | None = None) -> str:
        """A short human description, e.g. ``live (https://api.anthropic.com, 12s old)``."""
        bits = [b for b in (self.location, self.describes and f"lineup of {self.describes}") if b]
        if now is not None and (age := self.age(now)) is not None:
            bits.append(f"{_human_seconds(age)} old")
        return f"{self.kind} ({', '.join(bits)})" if bits else self.kind

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "fetched_at": self.fetched_at,
            "location": self.location,
            "describes": self.describes,
        }


@dataclass(frozen=True, slots=True)
class Limits:
    """A model's token limits; `None` where the registry doesn't say."""

    max_input_tokens: int | None
    max_tokens: int | None


_DATED_ID = re.compile(r"^(?P<alias>.+)-(?P<date>20\d{6})$")

LearnedValue = bool | int | str
"""A learned capability leaf (``False``: unsupported), ``max_tokens`` limit or lifecycle."""

LEARNABLE_LIMITS: frozenset[str] = frozenset({"max_tokens", "lifecycle"})
"""Keys a fact may carry besides capability paths."""

CAPABILITY_FACT_TTL_S = 6 * 3600.0
"""How long a fact learned from a 400 (a capability, a ``max_tokens`` limit) lasts at
most: the API's behaviour may change without the list saying so."""
RETIRED_FACT_TTL_S = 7 * 86400.0
"""How long a model that answered 404 is remembered as retired, at most."""


def fact_ttl(key: str) -> float:
    """The default lifetime of a fact on `key` (``lifecycle``: a retirement)."""
    return RETIRED_FACT_TTL_S if key == "lifecycle" else CAPABILITY_FACT_TTL_S


@dataclass(frozen=True, slots=True)
class LearnedFact:
    """What the API's own answers taught the router about one model.

    Made by the response-driven flow from an attributable refusal (a 400 naming a
    parameter the request carried, a 404 for the model); kept with an expiry in an
    overlay on the registry (`Registry.with_learned`) and saved with the cache file.
    Its `reason` is caproute's own words, never the upstream message (which may echo
    request content).
    """

    model: str
    """The model's canonical id."""
    key: str
    """A capability path (``effort.max``), ``max_tokens`` or ``lifecycle``."""
    value: LearnedValue
    """``False`` for an unsupported capability, the limit, or ``retired``."""
    learned_at: float
    """Unix time it was learned."""
    expires_at: float
    """Unix time after which it is forgotten (the shell prunes expired facts)."""
    reason: str
    """Why, in words (``400 from claude-x naming output_config.effort``)."""
    basis: LearnedValue | None = None
    """What the model's record stated for `key` when the fact was learned (`None`: it
    stated nothing). Live data fetched after `learned_at` that states something else
    ends the fact; live data that states the same (a list still claiming what the API
    refused) does not."""

    def in_force(self, now: float) -> bool:
        """Whether the fact's TTL still runs at Unix time `now` (it ends AT `expires_at`)."""
        return now < self.expires_at

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the cache file stores)."""
        document: dict[str, Any] = {
            "model": self.model,
            "key": self.key,
            "value": self.value,
            "learned_at": self.learned_at,
            "expires_at": self.expires_at,
            "reason": self.reason,
        }
        if self.basis is not None:
            document["basis"] = self.basis
        return document

    @classmethod
    def from_dict(cls, data: Any, where: str) -> LearnedFact:
        """Parse one stored fact, strictly.

        Raises:
            RegistryError: `data` is not a well-formed fact (`where` names it).
        """
        if not isinstance(data, Mapping):
            raise RegistryError(f"{where}: a learned fact must be an object")
        model, key, value = data.get("model"), data.get("key"), data.get("value")
        learned_at, expires_at = data.get("learned_at"), data.get("expires_at")
        reason, basis = data.get("reason", ""), data.get("basis")
        if not isinstance(model, str) or not model:
            raise RegistryError(f"{where}.model: expected a model id")
        if not isinstance(key, str) or not key:
            raise RegistryError(f"{where}.key: expected a capability path")
        if not isinstance(value, bool | int | str):
            raise RegistryError(f"{where}.value: expected a boolean, integer or string")
        for name, stamp in (("learned_at", learned_at), ("expires_at", expires_at)):
            if isinstance(stamp, bool) or not isinstance(stamp, int | float):
                raise RegistryError(f"{where}.{name}: expected a Unix time")
        if not isinstance(reason, str):
            raise RegistryError(f"{where}.reason: expected a string")
        if basis is not None and not isinstance(basis, bool | int | str):
            raise RegistryError(f"{where}.basis: expected a boolean, integer, string or null")
        assert isinstance(learned_at, int | float) and isinstance(expires_at, int | float)
        return cls(model, key, value, float(learned_at), float(expires_at), reason, basis)


def _flatten(
    tree: Mapping[str, Any], prefix: str, out: dict[str, bool | None], parents: set[str]
) -> None:
    """Record every node that carries a `supported` key, under its dotted path, and
    every node that states at least one child capability (`parents`)."""
    for key, value in tree.items():
        if not isinstance(value, Mapping):
            continue
        path = f"{prefix}{key}"
        if prefix:
            parents.add(prefix[:-1])
        if "supported" in value:
            sup = value["supported"]
            out[path] = sup if isinstance(sup, bool) else None
        _flatten(value, f"{path}.", out, parents)


@dataclass(frozen=True, slots=True)
class _Entry:
    info: ModelInfo
    flags: Mapping[str, bool | None]
    parents: frozenset[str]
    """Capability nodes that state at least one child (``effort``, ``thinking.types``)."""
    has_capabilities: bool
    tombstone: str | None = None
    """Why a model no longer listed is still known (it is then unavailable)."""
    learned: frozenset[str] = frozenset()
    """Keys whose value here comes from a learned fact."""
    unlisted: str | None = None
    """Why a model the latest list left out is still routed (not confirmed retired)."""


def _entry(info: ModelInfo, tombstone: str | None = None, unlisted: str | None = None) -> _Entry:
    flags: dict[str, bool | None] = {}
    parents: set[str] = set()
    caps = info.capabilities
    if caps is not None:
        _flatten(caps.model_dump(mode="json", exclude_unset=True), "", flags, parents)
    return _Entry(info, flags, frozenset(parents), caps is not None, tombstone, unlisted=unlisted)


def _stated(entry: _Entry, key: str) -> LearnedValue | None:
    """What `entry`'s own record states for a fact's key (`None`: nothing)."""
    if key == "max_tokens":
        return entry.info.max_tokens
    if key == "lifecycle":
        return entry.info.lifecycle
    return entry.flags.get(key)


def _record_changed(entry: _Entry, fact: LearnedFact, source: RegistrySource) -> bool:
    """The one rule that ends a fact before its TTL: live data fetched after the fact
    was learned states something else for its key than the record did then
    (`LearnedFact.basis`). A fresh copy of the same record (the list still claims what
    the API refused) changes nothing; older data (a snapshot, a cache file, an earlier
    fetch) never ends a fact."""
    fetched = source.fetched_at
    if source.kind != "live" or fetched is None or fetched < fact.learned_at:
        return False
    stated = _stated(entry, fact.key)
    return not (stated == fact.basis and type(stated) is type(fact.basis))


def _with_facts(
    entry: _Entry, facts: Iterable[LearnedFact], source: RegistrySource, ended: list[LearnedFact]
) -> _Entry:
    applied = []
    for fact in facts:
        if _record_changed(entry, fact, source):
            ended.append(fact)
        else:
            applied.append(fact)
    if not applied:
        return entry
    flags = dict(entry.flags)
    update: dict[str, Any] = {}
    for fact in applied:
        if fact.key in LEARNABLE_LIMITS:
            update[fact.key] = fact.value
        else:
            flags[fact.key] = bool(fact.value)
            if fact.value is False:  # a whole family refused: every leaf below it too
                below = f"{fact.key}."
                flags.update({path: False for path in flags if path.startswith(below)})
    info = entry.info.model_copy(update=update) if update else entry.info
    return _Entry(
        info,
        flags,
        entry.parents,
        entry.has_capabilities,
        entry.tombstone,
        frozenset(f.key for f in applied),
        entry.unlisted,
    )


@dataclass(frozen=True)
class Registry:
    """An immutable snapshot of the model lineup and what each model supports.

    Build one with `Registry.from_models` (also handy in tests: it is the static
    source), `Registry.from_pages` (Models API list pages) or `Registry.from_json`
    (a snapshot document). Beyond what the API lists it may hold *unlisted* models (an
    earlier source knew them, a later list left them out: still routed when asked
    for, never offered as an alternative), *tombstones* (models known to be
    unavailable) and *learned facts* (`with_learned`).
    """

    source: RegistrySource
    _plain: Mapping[str, _Entry] = field(repr=False)
    """Every model as its source described it (tombstones included), before facts."""
    _order: tuple[str, ...] = field(repr=False)
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Alias → canonical id, as learned from `GET /v1/models/{alias}` (or the snapshot)."""
    learned: tuple[LearnedFact, ...] = ()
    """The learned facts laid over the source's data (see `with_learned`)."""
    _entries: Mapping[str, _Entry] = field(default_factory=dict, repr=False, compare=False)
    """`_plain` with the facts applied: what lookups read."""
    _listed: tuple[str, ...] = field(default=(), repr=False, compare=False)
    """`_order` without the tombstones and the unlisted models."""
    _ended: tuple[LearnedFact, ...] = field(default=(), repr=False, compare=False)
    """The facts of `learned` whose record changed since (not applied; see `ended`)."""

    def __post_init__(self) -> None:
        plain = self._plain
        listed = tuple(i for i in self._order if not (e := plain[i]).tombstone and not e.unlisted)
        object.__setattr__(self, "_listed", listed)
        if self._entries or not plain:
            return
        if not self.learned:
            object.__setattr__(self, "_entries", plain)
            return
        by_model: dict[str, list[LearnedFact]] = {}
        for fact in self.learned:
            by_model.setdefault(fact.model, []).append(fact)
        entries = dict(plain)
        ended: list[LearnedFact] = []
        for model_id, facts in by_model.items():
            if model_id in entries:
                entries[model_id] = _with_facts(entries[model_id], facts, self.source, ended)
        object.__setattr__(self, "_entries", entries)
        object.__setattr__(self, "_ended", tuple(ended))

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_models(
        cls,
        models: Iterable[ModelInfo | Mapping[str, Any]],
        *,
        source: RegistrySource | None = None,
        aliases: Mapping[str, str] | None = None,
        tombstones: Mapping[str, str] | None = None,
        learned: Iterable[LearnedFact] = (),
        unlisted: Mapping[str, str] | None = None,
    ) -> Registry:
        """A registry from ModelInfo objects or raw Models API dicts, in the given order.

        `tombstones` maps ids of models known to be unavailable to why they are kept;
        `unlisted` ids of models a list left out (still routed) to why.
        """
        entries: dict[str, _Entry] = {}
        buried = tombstones or {}
        left_out = unlisted or {}
        for i, raw in enumerate(models):
            info = raw if isinstance(raw, ModelInfo) else _parse_model(raw, f"models[{i}]")
            entries[info.id] = _entry(info, buried.get(info.id), left_out.get(info.id))
        return cls(
            source or RegistrySource("static"),
            entries,
            tuple(entries),
            dict(aliases or {}),
            tuple(learned),
        )

    @classmethod
    def from_pages(cls, pages: Iterable[Mapping[str, Any]], *, source: RegistrySource) -> Registry:
        """A registry from `GET /v1/models` list pages (``{"data": [...], ...}``)."""
        models: list[Mapping[str, Any]] = []
        for n, page in enumerate(pages):
            data = page.get("data")
            if not isinstance(data, list):
                raise RegistryError(f"Models API page {n + 1} has no 'data' list")
            models.extend(data)
        return cls.from_models(models, source=source)

    @classmethod
    def from_json(
        cls, document: Mapping[str, Any], *, source: RegistrySource | None = None
    ) -> Registry:
        """A registry from a snapshot document made by `to_json`.

        The whole document is validated first (types, impossible values such as a
        ``max_tokens`` of 0, repeated model ids), so a bad file fails here with the
        JSON path at fault instead of failing every request later.

        `source` overrides the one stored in the document (the loader knows the file).

        Raises:
            RegistryError: The document is not a valid snapshot (the message names the
                JSON path, e.g. ``source.fetched_at`` or ``models[3] (id): max_tokens``).
        """
        if document.get("format") != SNAPSHOT_FORMAT:
            raise RegistryError(
                f"not a caproute registry snapshot (format is {document.get('format')!r}, "
                f"expected {SNAPSHOT_FORMAT!r})"
            )
        models = document.get("models")
        if not isinstance(models, list):
            raise RegistryError("snapshot has no 'models' list")
        # `null` reads as absent; any other non-object (`[]`, `""`) is an error.
        stored_raw = document.get("source")
        stored_raw = {} if stored_raw is None else stored_raw
        if not isinstance(stored_raw, Mapping):
            raise RegistryError("snapshot 'source' must be an object")
        aliases = document.get("aliases")
        aliases = {} if aliases is None else aliases
        if not isinstance(aliases, dict):
            raise RegistryError("snapshot 'aliases' must be an object")
        stored = _validated(_StoredSource, stored_raw, "source")
        _validated(_Aliases, {"aliases": aliases}, "")
        if source is None:
            source = RegistrySource(
                kind=stored.kind,
                fetched_at=stored.fetched_at,
                location=stored.location,
                describes=stored.describes,
            )
        elif source.fetched_at is None and source.describes is None:
            source = RegistrySource(
                kind=source.kind,
                fetched_at=stored.fetched_at,
                location=source.location,
                describes=stored.describes,
            )
        tombstones = document.get("tombstones") or {}
        if not isinstance(tombstones, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tombstones.items()
        ):
            raise RegistryError("snapshot 'tombstones' must map model ids to reasons")
        unlisted = document.get("unlisted") or {}
        if not isinstance(unlisted, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in unlisted.items()
        ):
            raise RegistryError("snapshot 'unlisted' must map model ids to reasons")
        learned = document.get("learned") or []
        if not isinstance(learned, list):
            raise RegistryError("snapshot 'learned' must be a list")
        facts = [LearnedFact.from_dict(f, f"learned[{i}]") for i, f in enumerate(learned)]
        infos = [
            raw if isinstance(raw, ModelInfo) else _parse_model(raw, f"models[{i}]")
            for i, raw in enumerate(models)
        ]
        first_at: dict[str, int] = {}
        for i, info in enumerate(infos):
            if (j := first_at.setdefault(info.id, i)) != i:
                raise RegistryError(
                    f"invalid model entry models[{i}] ({info.id}): id: repeated (first at "
                    f"models[{j}])"
                )
        return cls.from_models(
            infos,
            source=source,
            aliases=aliases,
            tombstones=tombstones,
            learned=facts,
            unlisted=unlisted,
        )

    def to_json(self) -> dict[str, Any]:
        """The snapshot document: models exactly as the API sent them, plus where they
        came from, the tombstones and the learned facts."""
        document: dict[str, Any] = {
            "format": SNAPSHOT_FORMAT,
            "source": self.source.to_dict(),
            "aliases": dict(sorted(self.aliases.items())),
            "models": [self._plain[i].info.to_api_dict() for i in self._order],
        }
        if tombstones := self.tombstones:
            document["tombstones"] = dict(tombstones)
        if unlisted := self.unlisted:
            document["unlisted"] = dict(unlisted)
        if self.learned:
            document["learned"] = [fact.to_dict() for fact in self.learned]
        return document

    # -- derived registries ---------------------------------------------------------------

    def _replace(self, **changes: Any) -> Registry:
        fields = {
            "source": self.source,
            "_plain": self._plain,
            "_order": self._order,
            "aliases": self.aliases,
            "learned": self.learned,
            **changes,
        }
        return Registry(**fields)

    def with_source(self, source: RegistrySource) -> Registry:
        """The same data, attributed to another source."""
        return self._replace(source=source)

    def with_aliases(self, aliases: Mapping[str, str]) -> Registry:
        """A copy that also resolves the given alias → id pairs."""
        return self._replace(aliases={**self.aliases, **aliases})

    def with_model(self, info: ModelInfo) -> Registry:
        """A copy with `info` added, or replacing the model with the same id (a model
        described again is no longer a tombstone)."""
        plain = {**self._plain, info.id: _entry(info)}
        order = self._order if info.id in self._plain else (*self._order, info.id)
        return self._replace(_plain=plain, _order=order)

    def with_lifecycle(self, model: str, lifecycle: str) -> Registry:
        """A copy where `model` has the given lifecycle (e.g. ``retired`` after a 404)."""
        model_id = self.resolve(model)
        if model_id is None:
            return self
        entry = self._plain[model_id]
        info = entry.info.model_copy(update={"lifecycle": lifecycle})
        plain = {**self._plain, model_id: _entry(info, entry.tombstone, entry.unlisted)}
        return self._replace(_plain=plain)

    def with_learned(self, facts: Iterable[LearnedFact]) -> Registry:
        """A copy whose learned overlay is exactly `facts` (replacing the current one).

        A fact applies unless this registry is live data fetched after the fact was
        learned whose record for the fact's key differs from the fact's `basis` (the
        record changed: the fact is over, see `ended`). A fresh copy of the same record
        leaves it in force. Expiry is the shell's to apply (`LearnedFact.in_force`):
        this module reads no clock.
        """
        return self._replace(learned=tuple(facts))

    def updated_by(self, fresh: Registry, *, dropped: str) -> Registry:
        """`fresh` (a newer list), keeping what this registry knew that `fresh` lacks.

        A list never takes a model away by omission alone: a model `fresh` doesn't list
        stays known and routable, *unlisted* (reason: `dropped`), until the API itself
        confirms it is gone; an empty list changes nothing but the aliases. Tombstones
        stay tombstones; aliases and learned facts carry over (`fresh`'s win), except
        the facts `fresh`'s records end (`ended`). The source is `fresh`'s.
        """
        if not fresh._order:  # a list of nothing (a gateway, a mock) takes nothing away
            return self.with_aliases(fresh.aliases)
        plain = dict(fresh._plain)
        order = list(fresh._order)
        for model_id in self._order:
            if model_id in plain:
                continue
            entry = self._plain[model_id]
            if not entry.tombstone and not entry.unlisted:
                entry = _entry(entry.info, unlisted=dropped)
            plain[model_id] = entry
            order.append(model_id)
        facts = {(f.model, f.key): f for f in (*self.learned, *fresh.learned)}
        merged = Registry(
            fresh.source,
            plain,
            tuple(order),
            {**self.aliases, **fresh.aliases},
            tuple(facts.values()),
        )
        if merged._ended:
            over = set(merged._ended)
            merged = merged.with_learned(f for f in merged.learned if f not in over)
        return merged

    def stated(self, model: str, key: str) -> LearnedValue | None:
        """What the source's own record of `model` states for a fact's `key` (learned
        facts left out; `None`: nothing, or an unknown model). A new fact's `basis`."""
        model_id = self.resolve(model)
        return None if model_id is None else _stated(self._plain[model_id], key)

    def new_fact(
        self,
        model: str,
        key: str,
        value: LearnedValue,
        *,
        reason: str,
        now: float,
        ttl: float | None = None,
    ) -> LearnedFact:
        """A fact about `model` learned at Unix time `now`, stamped with its canonical
        id, its expiry (`ttl`, default `fact_ttl`) and its `basis` in this registry."""
        model_id = self.resolve(model) or model
        lifetime = fact_ttl(key) if ttl is None else ttl
        basis = self.stated(model_id, key)
        return LearnedFact(model_id, key, value, now, now + lifetime, reason, basis)

    @property
    def ended(self) -> tuple[LearnedFact, ...]:
        """The facts of `learned` that no longer apply: the live record for their key
        changed after they were learned. The shell forgets them."""
        return self._ended

    # -- lookups ---------------------------------------------------------------------------

    def resolve(self, name: str) -> str | None:
        """The canonical id for an id or alias, or `None` if the registry doesn't know it.

        Besides learned aliases, a dated snapshot id (``claude-haiku-4-5-20251001``)
        answers to its undated convenience alias (``claude-haiku-4-5``), as the API does.
        Tombstones resolve too: a model once known stays known.
        """
        if name in self._plain:
            return name
        if (target := self.aliases.get(name)) is not None and target in self._plain:
            return target
        for model_id in self._order:
            m = _DATED_ID.match(model_id)
            if m and m.group("alias") == name:
                return model_id
        return None

    @property
    def tombstones(self) -> Mapping[str, str]:
        """Models known to be unavailable that the registry still knows: id → why kept."""
        return {i: e.tombstone for i in self._order if (e := self._plain[i]).tombstone}

    @property
    def unlisted(self) -> Mapping[str, str]:
        """Models the latest list left out, still routed when asked for: id → why kept."""
        return {i: e.unlisted for i in self._order if (e := self._plain[i]).unlisted}

    def get(self, name: str) -> ModelInfo | None:
        """The model for an id or alias (learned facts applied), or `None`."""
        model_id = self.resolve(name)
        return None if model_id is None else self._entries[model_id].info

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.resolve(name) is not None

    def __iter__(self) -> Iterator[ModelInfo]:
        return (self._entries[i].info for i in self._listed)

    def __len__(self) -> int:
        return len(self._listed)

    @property
    def models(self) -> tuple[ModelInfo, ...]:
        """Every listed model, in the API's order (newest first); not the tombstones."""
        return tuple(self)

    @property
    def ids(self) -> tuple[str, ...]:
        """Every listed model id, in the API's order; not the tombstones."""
        return self._listed

    def supports(self, model: str, path: str) -> Support:
        """Whether `model` supports the capability at dotted `path` (e.g. ``effort.xhigh``).

        Absence is read the way the API writes it (api-facts §2.4a): an optional leaf
        missing while its parent states sibling leaves is UNSUPPORTED (the model
        predates that level or strategy), as is anything below a node that says
        ``supported: false``; a required leaf missing (an answer older than the leaf),
        a family missing altogether, a ``null``, a missing capabilities object or an
        unknown model is UNKNOWN.
        """
        model_id = self.resolve(model)
        if model_id is None:
            return Support.UNKNOWN
        entry = self._entries[model_id]
        flags = entry.flags
        flag = flags.get(path)
        if flag is True:
            return Support.SUPPORTED
        if flag is False:
            return Support.UNSUPPORTED
        parent = path
        while "." in parent:
            parent = parent.rsplit(".", 1)[0]
            if flags.get(parent) is False:
                return Support.UNSUPPORTED
        if path not in flags:  # absent (not null): does its parent state siblings?
            head, _, leaf = path.rpartition(".")
            if head and head in entry.parents and _optional_leaf(path, leaf):
                return Support.UNSUPPORTED
        return Support.UNKNOWN

    def capability_flags(self, model: str) -> Mapping[str, bool | None]:
        """Every capability path the registry states for `model` (empty if unknown)."""
        model_id = self.resolve(model)
        return {} if model_id is None else dict(self._entries[model_id].flags)

    def limits(self, model: str) -> Limits:
        """The model's token limits (both `None` for an unknown model)."""
        info = self.get(model)
        if info is None:
            return Limits(None, None)
        return Limits(info.max_input_tokens, info.max_tokens)

    def lifecycle(self, model: str) -> str | None:
        """``active``, ``deprecated`` or ``retired`` (a tombstone is ``retired``)."""
        model_id = self.resolve(model)
        if model_id is None:
            return None
        entry = self._entries[model_id]
        return "retired" if entry.tombstone else entry.info.lifecycle

    def is_retired(self, model: str) -> bool:
        """True when the model is known to be unavailable: retired, or a tombstone."""
        return self.lifecycle(model) == "retired"

    def unavailable_reason(self, model: str) -> str | None:
        """Why a known model can't be used (retired, no longer listed), or `None`."""
        model_id = self.resolve(model)
        if model_id is None:
            return None
        entry = self._entries[model_id]
        if entry.tombstone:
            return entry.tombstone
        if entry.info.lifecycle != "retired":
            return None
        if "lifecycle" in entry.learned:
            fact = next(f for f in self.learned if f.model == model_id and f.key == "lifecycle")
            return f"retired (learned: {fact.reason})"
        return "retired"

    def tombstone(self, model: str) -> str | None:
        """Why a model no longer listed is kept, or `None` (listed, or unknown)."""
        model_id = self.resolve(model)
        return None if model_id is None else self._plain[model_id].tombstone

    def learned_keys(self, model: str) -> frozenset[str]:
        """The keys whose value for `model` comes from a learned fact right now."""
        model_id = self.resolve(model)
        return frozenset() if model_id is None else self._entries[model_id].learned

    def __repr__(self) -> str:
        extra = ""
        if len(self._order) > len(self):
            extra = f", {len(self.tombstones)} tombstones, {len(self.unlisted)} unlisted"
        extra += f", {len(self.learned)} learned" if self.learned else ""
        return f"Registry({len(self)} models, source={self.source.kind!r}{extra})"


def _optional_leaf(path: str, leaf: str) -> bool:
    """Whether the API's types make `leaf` optional, so that its absence beside stated
    siblings means the model predates it (``effort.xhigh``, a context-management
    strategy). A required leaf that is absent (``thinking.types.between_tools`` in an
    answer from before SDK 1.15) marks an older answer, not a missing feature."""
    optional = family_of(path).optional_leaves
    return "*" in optional or leaf in optional


def _parse_model(raw: Mapping[str, Any], where: str) -> ModelInfo:
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


class _StoredSource(BaseModel):
    """A snapshot's ``source`` object (the `RegistrySource` it was saved from)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    kind: SourceKind = "snapshot"
    fetched_at: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    location: str | None = None
    describes: str | None = None


class _Aliases(BaseModel):
    model_config = ConfigDict(strict=True)

    aliases: dict[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]]


_ModelT = TypeVar("_ModelT", bound=BaseModel)


def _validated(model: type[_ModelT], raw: Mapping[str, Any], where: str) -> _ModelT:
    """`model` validated from `raw`; a `RegistryError` naming the JSON path otherwise."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(
            [where, *(str(p) for p in first["loc"])] if where else map(str, first["loc"])
        )
        raise RegistryError(f"{path}: {first['msg']}") from exc


def _human_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"
