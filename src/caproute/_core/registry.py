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
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._exceptions import RegistryError
from .catalogue import family_of
from .learned_facts import (
    LearnedFact,
    LearnedValue,
    ModelRecord,
    fact_ttl,
    record_of,
    stated_value,
    with_facts,
)
from .model_info import ModelInfo, parse_model
from .registry_source import RegistrySource, StoredSource

__all__ = ["SNAPSHOT_FORMAT", "Limits", "Registry", "Support"]

SNAPSHOT_FORMAT = "caproute-registry/1"


class Support(enum.Enum):
    """The answer to "does model X support Y": three states, kept apart."""

    SUPPORTED = "supported"
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"

    def __bool__(self) -> bool:
        # Refuse truthiness: `if registry.supports(...)` would silently treat UNKNOWN as yes.
        raise TypeError("Support is three-state; compare with Support.SUPPORTED explicitly")


@dataclass(frozen=True, slots=True)
class Limits:
    """A model's token limits; `None` where the registry doesn't say."""

    max_input_tokens: int | None
    max_tokens: int | None


_DATED_ID = re.compile(r"^(?P<alias>.+)-(?P<date>20\d{6})$")


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
    _plain: Mapping[str, ModelRecord] = field(repr=False)
    """Every model as its source described it (tombstones included), before facts."""
    _order: tuple[str, ...] = field(repr=False)
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Alias → canonical id, as learned from `GET /v1/models/{alias}` (or the snapshot)."""
    learned: tuple[LearnedFact, ...] = ()
    """The learned facts laid over the source's data (see `with_learned`)."""
    _entries: Mapping[str, ModelRecord] = field(default_factory=dict, repr=False, compare=False)
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
                entries[model_id] = with_facts(entries[model_id], facts, self.source, ended)
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
        entries: dict[str, ModelRecord] = {}
        buried = tombstones or {}
        left_out = unlisted or {}
        for i, raw in enumerate(models):
            info = raw if isinstance(raw, ModelInfo) else parse_model(raw, f"models[{i}]")
            entries[info.id] = record_of(info, buried.get(info.id), left_out.get(info.id))
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
        stored = _validated(StoredSource, stored_raw, "source")
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
            raw if isinstance(raw, ModelInfo) else parse_model(raw, f"models[{i}]")
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
        plain = {**self._plain, info.id: record_of(info)}
        order = self._order if info.id in self._plain else (*self._order, info.id)
        return self._replace(_plain=plain, _order=order)

    def with_lifecycle(self, model: str, lifecycle: str) -> Registry:
        """A copy where `model` has the given lifecycle (e.g. ``retired`` after a 404)."""
        model_id = self.resolve(model)
        if model_id is None:
            return self
        entry = self._plain[model_id]
        info = entry.info.model_copy(update={"lifecycle": lifecycle})
        plain = {**self._plain, model_id: record_of(info, entry.tombstone, entry.unlisted)}
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
                entry = record_of(entry.info, unlisted=dropped)
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
        return None if model_id is None else stated_value(self._plain[model_id], key)

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

        Absence is read the way the API writes it (the optional fields under
        ``anthropic.types.ModelInfo``): an optional leaf missing while its parent states
        sibling leaves is UNSUPPORTED (the model predates that level or strategy), as is
        anything below a node that says ``supported: false``; a required leaf missing
        (an answer older than the leaf), a family missing altogether, a ``null``, a
        missing capabilities object or an unknown model is UNKNOWN.
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
