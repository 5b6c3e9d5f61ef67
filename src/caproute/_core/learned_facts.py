"""Facts learned from the API's refusals (`LearnedFact`) and the per-model record they
lie over (`ModelRecord`): flattened capability flags, with the rule that ends a fact
when the live record for its key changes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._exceptions import RegistryError
from .model_info import ModelInfo
from .registry_source import RegistrySource

__all__ = [
    "CAPABILITY_FACT_TTL_S",
    "LEARNABLE_LIMITS",
    "RETIRED_FACT_TTL_S",
    "LearnedFact",
    "LearnedValue",
    "ModelRecord",
    "fact_ttl",
    "record_of",
    "stated_value",
    "with_facts",
]


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


def flatten_capabilities(
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
        flatten_capabilities(value, f"{path}.", out, parents)


@dataclass(frozen=True, slots=True)
class ModelRecord:
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


def record_of(
    info: ModelInfo, tombstone: str | None = None, unlisted: str | None = None
) -> ModelRecord:
    flags: dict[str, bool | None] = {}
    parents: set[str] = set()
    caps = info.capabilities
    if caps is not None:
        flatten_capabilities(caps.model_dump(mode="json", exclude_unset=True), "", flags, parents)
    return ModelRecord(
        info, flags, frozenset(parents), caps is not None, tombstone, unlisted=unlisted
    )


def stated_value(entry: ModelRecord, key: str) -> LearnedValue | None:
    """What `entry`'s own record states for a fact's key (`None`: nothing)."""
    if key == "max_tokens":
        return entry.info.max_tokens
    if key == "lifecycle":
        return entry.info.lifecycle
    return entry.flags.get(key)


def record_changed(entry: ModelRecord, fact: LearnedFact, source: RegistrySource) -> bool:
    """The one rule that ends a fact before its TTL: live data fetched after the fact
    was learned states something else for its key than the record did then
    (`LearnedFact.basis`). A fresh copy of the same record (the list still claims what
    the API refused) changes nothing; older data (a snapshot, a cache file, an earlier
    fetch) never ends a fact."""
    fetched = source.fetched_at
    if source.kind != "live" or fetched is None or fetched < fact.learned_at:
        return False
    stated = stated_value(entry, fact.key)
    return not (stated == fact.basis and type(stated) is type(fact.basis))


def with_facts(
    entry: ModelRecord,
    facts: Iterable[LearnedFact],
    source: RegistrySource,
    ended: list[LearnedFact],
) -> ModelRecord:
    applied = []
    for fact in facts:
        if record_changed(entry, fact, source):
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
    return ModelRecord(
        info,
        flags,
        entry.parents,
        entry.has_capabilities,
        entry.tombstone,
        frozenset(f.key for f in applied),
        entry.unlisted,
    )
