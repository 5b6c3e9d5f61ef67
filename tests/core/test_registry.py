"""The registry data model: tri-state support, unknown keys, aliases, immutability."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from caproute import (
    LearnedFact,
    Limits,
    ModelInfo,
    Registry,
    RegistryError,
    RegistrySource,
    Support,
)
from caproute.testing import make_model


def registry(*raw: dict[str, Any], aliases: dict[str, str] | None = None) -> Registry:
    return Registry.from_models(raw, aliases=aliases)


# -- supported / unsupported / unknown -----------------------------------------------------


def test_three_states_are_kept_apart() -> None:
    r = registry(
        make_model("claude-a-1", unsupported=["image_input", "thinking.types.enabled"]),
        {"id": "claude-old-1", "capabilities": {"batch": {"supported": True}}},
        {"id": "claude-bare-1"},
    )
    assert r.supports("claude-a-1", "pdf_input") is Support.SUPPORTED
    assert r.supports("claude-a-1", "image_input") is Support.UNSUPPORTED
    assert r.supports("claude-a-1", "thinking.types.enabled") is Support.UNSUPPORTED
    assert r.supports("claude-a-1", "thinking.types.adaptive") is Support.SUPPORTED
    # Absent key, absent capabilities object, unknown model: unknown, never "no".
    assert r.supports("claude-old-1", "effort.xhigh") is Support.UNKNOWN
    assert r.supports("claude-old-1", "batch") is Support.SUPPORTED
    assert r.supports("claude-bare-1", "batch") is Support.UNKNOWN
    assert r.supports("claude-nobody-1", "batch") is Support.UNKNOWN


def test_below_an_unsupported_node_everything_is_unsupported() -> None:
    r = registry(
        {"id": "claude-m-1", "capabilities": {"thinking": {"supported": False}}},
        {"id": "claude-n-1", "capabilities": {"thinking": {"supported": None}}},
    )
    assert r.supports("claude-m-1", "thinking") is Support.UNSUPPORTED
    assert r.supports("claude-m-1", "thinking.types.enabled") is Support.UNSUPPORTED
    assert r.supports("claude-n-1", "thinking") is Support.UNKNOWN
    assert r.supports("claude-n-1", "thinking.types.enabled") is Support.UNKNOWN


def test_support_refuses_truthiness() -> None:
    with pytest.raises(TypeError, match="three-state"):
        bool(Support.UNKNOWN)


# -- unknown keys ----------------------------------------------------------------------------


def future_model() -> dict[str, Any]:
    model = make_model("claude-next-1")
    model["caching_discount"] = 0.9
    model["capabilities"]["effort"]["ultra"] = {"supported": True}
    model["capabilities"]["teleport"] = {"supported": True, "quantum": {"supported": False}}
    model["capabilities"]["thinking"]["types"]["dreaming"] = {"supported": False}
    return model


def test_unknown_keys_are_kept_and_queryable() -> None:
    r = registry(future_model())
    assert r.supports("claude-next-1", "effort.ultra") is Support.SUPPORTED
    assert r.supports("claude-next-1", "teleport") is Support.SUPPORTED
    assert r.supports("claude-next-1", "teleport.quantum") is Support.UNSUPPORTED
    assert r.supports("claude-next-1", "thinking.types.dreaming") is Support.UNSUPPORTED
    info = r.get("claude-next-1")
    assert info is not None
    assert info.to_api_dict() == future_model()
    assert r.capability_flags("claude-next-1")["effort.ultra"] is True


def test_unknown_keys_survive_a_json_round_trip() -> None:
    r = registry(future_model(), aliases={"claude-next": "claude-next-1"})
    text = json.dumps(r.to_json())
    back = Registry.from_json(json.loads(text))
    assert back.to_json() == r.to_json()
    assert back.supports("claude-next", "effort.ultra") is Support.SUPPORTED
    assert back.supports("claude-next", "teleport.quantum") is Support.UNSUPPORTED


capability_names = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True).filter(
    lambda name: name != "supported"
)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(capability_names, st.booleans(), max_size=6), st.booleans())
def test_any_new_capability_round_trips(new: dict[str, bool], parent: bool) -> None:
    model = make_model("claude-p-1")
    caps = model["capabilities"]
    caps["novel"] = {"supported": parent, **{k: {"supported": v} for k, v in new.items()}}
    back = Registry.from_json(json.loads(json.dumps(registry(model).to_json())))
    assert back.supports("claude-p-1", "novel") is (
        Support.SUPPORTED if parent else Support.UNSUPPORTED
    )
    for name, value in new.items():
        expected = Support.SUPPORTED if value else Support.UNSUPPORTED
        assert back.supports("claude-p-1", f"novel.{name}") is expected
    assert back.get("claude-p-1") == registry(model).get("claude-p-1")


# -- lookups, aliases, limits -------------------------------------------------------------


def test_lookup_by_id_dated_alias_and_learned_alias() -> None:
    r = registry(
        make_model("claude-haiku-4-5-20251001"),
        make_model("claude-opus-5"),
        aliases={"fast": "claude-haiku-4-5-20251001", "ghost": "claude-missing-1"},
    )
    assert r.resolve("claude-opus-5") == "claude-opus-5"
    assert r.resolve("claude-haiku-4-5") == "claude-haiku-4-5-20251001"
    assert r.resolve("fast") == "claude-haiku-4-5-20251001"
    assert r.resolve("ghost") is None  # an alias to a model the registry lacks
    assert "claude-haiku-4-5" in r and "claude-opus" not in r and 5 not in r
    assert r.with_aliases({"big": "claude-opus-5"}).resolve("big") == "claude-opus-5"
    assert r.resolve("big") is None  # the original is unchanged


def test_order_limits_and_lifecycle() -> None:
    r = registry(
        make_model("claude-b-1", max_input_tokens=200_000, max_tokens=64_000),
        make_model("claude-a-1", lifecycle="retired"),
    )
    assert r.ids == ("claude-b-1", "claude-a-1")
    assert [m.id for m in r.models] == list(r.ids) == [m.id for m in r]
    assert len(r) == 2
    assert r.limits("claude-b-1") == Limits(200_000, 64_000)
    assert r.limits("claude-zzz") == Limits(None, None)
    assert r.is_retired("claude-a-1") and not r.is_retired("claude-b-1")
    assert not r.is_retired("claude-zzz")


def test_derived_registries_leave_the_original_alone() -> None:
    r = registry(make_model("claude-a-1"), make_model("claude-b-1"))
    retired = r.with_lifecycle("claude-a-1", "retired")
    assert retired.is_retired("claude-a-1") and not r.is_retired("claude-a-1")
    assert retired.ids == r.ids
    assert r.with_lifecycle("claude-nobody", "retired") is r

    added = r.with_model(ModelInfo.model_validate(make_model("claude-c-1")))
    assert added.ids == ("claude-a-1", "claude-b-1", "claude-c-1")
    replaced = r.with_model(ModelInfo.model_validate(make_model("claude-a-1", max_tokens=1)))
    assert replaced.ids == r.ids
    assert replaced.limits("claude-a-1").max_tokens == 1

    moved = r.with_source(RegistrySource("snapshot", location="/tmp/x.json"))
    assert moved.source.kind == "snapshot" and r.source.kind == "static"


def test_registry_and_models_are_immutable() -> None:
    r = registry(make_model("claude-a-1"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.source = RegistrySource("live")  # type: ignore[misc]
    info = r.get("claude-a-1")
    assert info is not None
    with pytest.raises(ValidationError):
        info.max_tokens = 5  # type: ignore[misc]


# -- construction errors and sources -------------------------------------------------------


def test_from_pages_concatenates_pages() -> None:
    pages = [{"data": [make_model("claude-a-1")]}, {"data": [make_model("claude-b-1")]}]
    r = Registry.from_pages(pages, source=RegistrySource("live", fetched_at=10.0))
    assert r.ids == ("claude-a-1", "claude-b-1")
    with pytest.raises(RegistryError, match="page 2 has no 'data' list"):
        Registry.from_pages([{"data": []}, {"error": {}}], source=RegistrySource("live"))


def test_invalid_model_entries_name_the_model_and_field() -> None:
    with pytest.raises(RegistryError, match=r"models\[1\] \(claude-b-1\): max_tokens"):
        Registry.from_models([make_model("claude-a-1"), {"id": "claude-b-1", "max_tokens": "x"}])


def test_source_describes_itself() -> None:
    live = RegistrySource("live", fetched_at=1000.0, location="https://api.anthropic.com")
    assert live.age(1012.0) == 12.0
    assert live.describe(1012.0) == "live (https://api.anthropic.com, 12s old)"
    assert live.describe(1000.0 + 3 * 3600) == "live (https://api.anthropic.com, 3h old)"
    embedded = RegistrySource("embedded", describes="2026-11-26")
    assert embedded.age(5.0) is None
    assert embedded.describe(5.0) == "embedded (lineup of 2026-11-26)"
    assert RegistrySource("static").describe() == "static"


# -- absence, tombstones and learned facts ---------------------------------------------------


def _with_caps(model_id: str, capabilities: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": model_id, "type": "model", "capabilities": capabilities}


def test_a_missing_leaf_beside_stated_siblings_is_unsupported() -> None:
    registry = Registry.from_models(
        [
            _with_caps(
                "m",
                {
                    "effort": {"supported": True, "low": {"supported": True}},
                    "context_management": {
                        "supported": True,
                        "clear_tool_uses_20250919": {"supported": True},
                    },
                    "thinking": {"supported": True},
                    "image_input": {"supported": None},
                },
            )
        ]
    )
    assert registry.supports("m", "effort.low") is Support.SUPPORTED
    # The model predates the level / strategy: the API leaves the leaf out.
    assert registry.supports("m", "effort.xhigh") is Support.UNSUPPORTED
    assert registry.supports("m", "context_management.compact_20260112") is Support.UNSUPPORTED
    # No sibling is stated below `thinking` (only `supported`): its types are unknown.
    assert registry.supports("m", "thinking.types.enabled") is Support.UNKNOWN
    # A whole family missing is unknown; so is an explicit null.
    assert registry.supports("m", "pdf_input") is Support.UNKNOWN
    assert registry.supports("m", "server_tools.web_search") is Support.UNKNOWN
    assert registry.supports("m", "image_input") is Support.UNKNOWN


def test_a_missing_required_leaf_marks_an_older_answer_not_a_missing_feature() -> None:
    # `thinking.types.disabled` / `between_tools` came with SDK 1.12 / 1.15 and are
    # required in the types since; `server_tools` leaves are required too. An answer
    # without them is older than the leaf: it says nothing about the model.
    registry = Registry.from_models(
        [
            _with_caps(
                "m",
                {
                    "thinking": {
                        "supported": True,
                        "types": {"adaptive": {"supported": True}, "enabled": {"supported": True}},
                    },
                    "server_tools": {"supported": True, "web_search": {"supported": True}},
                    "effort": {"supported": True, "high": {"supported": True}},
                },
            )
        ]
    )
    assert registry.supports("m", "thinking.types.adaptive") is Support.SUPPORTED
    assert registry.supports("m", "thinking.types.disabled") is Support.UNKNOWN
    assert registry.supports("m", "thinking.types.between_tools") is Support.UNKNOWN
    assert registry.supports("m", "server_tools.code_execution") is Support.UNKNOWN
    assert registry.supports("m", "effort.low") is Support.UNKNOWN
    # The optional leaf still reads as the API writes it: the model predates it.
    assert registry.supports("m", "effort.xhigh") is Support.UNSUPPORTED


def test_a_list_never_takes_a_model_away_by_omission_alone() -> None:
    old = Registry.from_models(
        [
            {"id": "claude-a-1-20250101", "type": "model", "line": "a", "lifecycle": "active"},
            {"id": "claude-b-2", "type": "model", "line": "b"},
        ],
        aliases={"claude-a-1": "claude-a-1-20250101"},
    )
    fresh = Registry.from_models(
        [{"id": "claude-b-2", "type": "model", "line": "b"}],
        source=RegistrySource("live", fetched_at=100.0),
    )
    merged = old.updated_by(fresh, dropped="no longer listed")
    # Not listed (never offered as an alternative), but kept, known and routable.
    assert merged.ids == ("claude-b-2",) and len(merged) == 1
    assert merged.unlisted == {"claude-a-1-20250101": "no longer listed"}
    assert merged.tombstones == {}
    assert merged.resolve("claude-a-1") == "claude-a-1-20250101"
    assert not merged.is_retired("claude-a-1")
    assert merged.lifecycle("claude-a-1") == "active"
    assert merged.unavailable_reason("claude-a-1") is None
    assert merged.get("claude-a-1").line == "a"  # type: ignore[union-attr]
    assert merged.source.kind == "live"
    # The API's 404 confirms it (a learned lifecycle fact): then it is retired.
    gone = merged.new_fact("claude-a-1", "lifecycle", "retired", reason="a 404", now=101.0)
    assert gone.model == "claude-a-1-20250101" and gone.basis == "active"
    assert merged.with_learned([gone]).is_retired("claude-a-1")
    # Listed again later: no longer unlisted.
    back = merged.updated_by(old.with_source(RegistrySource("live")), dropped="x")
    assert back.unlisted == {} and "claude-a-1-20250101" in back.ids
    # Round trip through a snapshot document.
    again = Registry.from_json(json.loads(json.dumps(merged.to_json())))
    assert again.unlisted == merged.unlisted and again.ids == merged.ids


def test_an_empty_list_takes_nothing_away() -> None:
    old = Registry.from_models(
        [{"id": "claude-a-1", "type": "model"}, {"id": "claude-b-2", "type": "model"}]
    )
    empty = Registry.from_models([], source=RegistrySource("live", fetched_at=100.0))
    merged = old.updated_by(empty, dropped="no longer listed")
    assert merged.ids == ("claude-a-1", "claude-b-2")
    assert merged.unlisted == {} and merged.tombstones == {}


def test_tombstones_stay_tombstones_whatever_a_list_says_of_others() -> None:
    old = Registry.from_models(
        [{"id": "claude-a-1", "type": "model"}, {"id": "claude-gone-1", "type": "model"}],
        tombstones={"claude-gone-1": "retired (confirmed)"},
    )
    fresh = Registry.from_models(
        [{"id": "claude-a-1", "type": "model"}], source=RegistrySource("live", fetched_at=5.0)
    )
    merged = old.updated_by(fresh, dropped="not listed")
    assert merged.tombstones == {"claude-gone-1": "retired (confirmed)"}
    assert merged.is_retired("claude-gone-1")


# -- how long a fact lasts ----------------------------------------------------------------


def _claims_effort_max(supported: bool | None, fetched_at: float, kind: Any = "live") -> Registry:
    effort: dict[str, Any] = {"supported": True, "high": {"supported": True}}
    if supported is not None:
        effort["max"] = {"supported": supported}
    return Registry.from_models(
        [{"id": "claude-b-2", "type": "model", "capabilities": {"effort": effort}}],
        source=RegistrySource(kind, fetched_at=fetched_at),
    )


def test_a_fresh_copy_of_the_same_record_does_not_end_a_fact() -> None:
    claimed = _claims_effort_max(True, fetched_at=10.0)
    fact = claimed.new_fact("claude-b-2", "effort.max", False, reason="a 400", now=50.0)
    assert fact.basis is True
    assert fact.expires_at == 50.0 + 6 * 3600.0
    # Refresh after refresh restates `supported: true`: the fact stays in force.
    for fetched_at in (60.0, 600.0, 6000.0):
        again = _claims_effort_max(True, fetched_at).with_learned([fact])
        assert again.supports("claude-b-2", "effort.max") is Support.UNSUPPORTED
        assert again.ended == ()
        merged = claimed.with_learned([fact]).updated_by(
            _claims_effort_max(True, fetched_at), dropped="x"
        )
        assert merged.learned == (fact,)
        assert merged.supports("claude-b-2", "effort.max") is Support.UNSUPPORTED


@pytest.mark.parametrize("now_states", [False, None])
def test_a_change_of_the_live_record_ends_a_fact(now_states: bool | None) -> None:
    claimed = _claims_effort_max(True, fetched_at=10.0)
    fact = claimed.new_fact("claude-b-2", "effort.max", False, reason="a 400", now=50.0)
    changed = _claims_effort_max(now_states, fetched_at=60.0)
    laid = changed.with_learned([fact])
    assert laid.ended == (fact,)
    assert laid.learned_keys("claude-b-2") == frozenset()
    merged = claimed.with_learned([fact]).updated_by(changed, dropped="x")
    assert merged.learned == ()  # over for good: a later list restating `true` won't revive it
    assert merged.updated_by(_claims_effort_max(True, 70.0), dropped="x").learned == ()


def test_older_or_offline_data_never_ends_a_fact() -> None:
    fact = _claims_effort_max(True, 10.0).new_fact(
        "claude-b-2", "effort.max", False, reason="a 400", now=50.0
    )
    for registry in (
        _claims_effort_max(None, fetched_at=40.0),  # fetched before the fact was learned
        _claims_effort_max(None, fetched_at=60.0, kind="cache"),
        _claims_effort_max(None, fetched_at=60.0, kind="snapshot"),
    ):
        laid = registry.with_learned([fact])
        assert laid.ended == ()
        assert laid.supports("claude-b-2", "effort.max") is Support.UNSUPPORTED


def test_fact_ttl_boundaries() -> None:
    registry = _claims_effort_max(True, 10.0)
    capability = registry.new_fact("claude-b-2", "effort.max", False, reason="a 400", now=100.0)
    retired = registry.new_fact("claude-b-2", "lifecycle", "retired", reason="a 404", now=100.0)
    assert capability.expires_at == 100.0 + 6 * 3600.0
    assert retired.expires_at == 100.0 + 7 * 86400.0
    for fact in (capability, retired):
        tick = 1e-6
        assert fact.in_force(fact.learned_at)
        assert fact.in_force(fact.expires_at - tick)
        assert not fact.in_force(fact.expires_at)  # it ends AT its expiry
        assert not fact.in_force(fact.expires_at + tick)
    custom = registry.new_fact("claude-b-2", "max_tokens", 4096, reason="x", now=0.0, ttl=30.0)
    assert (custom.expires_at, custom.basis) == (30.0, None)


def test_a_facts_basis_survives_the_cache_file() -> None:
    registry = _claims_effort_max(True, 10.0)
    fact = registry.new_fact("claude-b-2", "effort.max", False, reason="a 400", now=50.0)
    again = Registry.from_json(json.loads(json.dumps(registry.with_learned([fact]).to_json())))
    assert again.learned == (fact,) and again.learned[0].basis is True
    document = {"format": "caproute-registry/1", "models": [], "learned": [{**fact.to_dict()}]}
    document["learned"][0]["basis"] = [1]
    with pytest.raises(RegistryError, match=r"learned\[0\]\.basis"):
        Registry.from_json(document)


def test_tombstones_and_learned_facts_survive_a_snapshot_round_trip() -> None:
    fact = LearnedFact("claude-b-2", "effort.max", False, 10.0, 20.0, "a 400 named effort.max")
    registry = Registry.from_models(
        [
            {
                "id": "claude-b-2",
                "type": "model",
                "capabilities": {"effort": {"max": {"supported": True}}},
            },
            {"id": "claude-gone-1", "type": "model"},
        ],
        tombstones={"claude-gone-1": "not listed any more"},
        learned=[fact],
    )
    document = json.loads(json.dumps(registry.to_json()))
    again = Registry.from_json(document)
    assert again.tombstones == {"claude-gone-1": "not listed any more"}
    assert again.learned == (fact,)
    assert again.supports("claude-b-2", "effort.max") is Support.UNSUPPORTED
    assert again.learned_keys("claude-b-2") == frozenset({"effort.max"})
    # The models are stored as the API sent them, not with the facts applied.
    assert document["models"][0]["capabilities"]["effort"]["max"] == {"supported": True}


@pytest.mark.parametrize(
    ("fact", "message"),
    [
        ({"model": 1, "key": "k", "value": False, "learned_at": 1, "expires_at": 2}, "model"),
        ({"model": "m", "key": "", "value": False, "learned_at": 1, "expires_at": 2}, "key"),
        ({"model": "m", "key": "k", "value": [1], "learned_at": 1, "expires_at": 2}, "value"),
        (
            {"model": "m", "key": "k", "value": False, "learned_at": "x", "expires_at": 2},
            "learned_at",
        ),
        (
            {"model": "m", "key": "k", "value": False, "learned_at": 1, "expires_at": True},
            "expires_at",
        ),
        ("not an object", r"learned\[0\]"),
    ],
)
def test_a_malformed_learned_fact_is_refused_with_its_location(fact: object, message: str) -> None:
    document = {"format": "caproute-registry/1", "models": [], "learned": [fact]}
    with pytest.raises(RegistryError, match=message):
        Registry.from_json(document)


def test_learned_limits_and_lifecycle_apply_until_live_data_states_them() -> None:
    facts = [
        LearnedFact("m", "max_tokens", 4096, 50.0, 99.0, "a 400"),
        LearnedFact("m", "lifecycle", "retired", 50.0, 99.0, "a 404"),
    ]
    base = [{"id": "m", "type": "model", "max_tokens": 8192, "lifecycle": "active"}]
    older = Registry.from_models(base, source=RegistrySource("live", fetched_at=40.0))
    newer = Registry.from_models(base, source=RegistrySource("live", fetched_at=60.0))
    cached = Registry.from_models(base, source=RegistrySource("cache", fetched_at=60.0))
    assert older.with_learned(facts).limits("m").max_tokens == 4096
    assert older.with_learned(facts).is_retired("m")
    assert "learned" in (older.with_learned(facts).unavailable_reason("m") or "")
    assert newer.with_learned(facts).limits("m").max_tokens == 8192
    assert not newer.with_learned(facts).is_retired("m")
    # A cache file is not a live answer: the fact still wins over it.
    assert cached.with_learned(facts).limits("m").max_tokens == 4096
