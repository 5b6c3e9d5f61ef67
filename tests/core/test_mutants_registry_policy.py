"""Registry bookkeeping and policy diagnostics as a user sees them (mutmut survivors):
a registry's repr and tombstones, what each strip says it did and why, glob and
version errors, header names in locations."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import caproute
from caproute import (
    LearnedFact,
    Policy,
    PolicyError,
    Registry,
    RegistryError,
    RegistrySource,
    Support,
)
from caproute._core.policy_check import check_policy_text, registry_warnings
from caproute.testing import make_model

HI = [{"role": "user", "content": "hi"}]


def policy(**actions: str) -> Policy:
    return Policy.from_dict({"version": 1, "routes": [{"name": "r", "actions": actions}]})


def test_repr_and_tombstones() -> None:
    models = [make_model("claude-a-2"), make_model("claude-b-1"), make_model("claude-c-1")]
    plain = Registry.from_models(models)
    assert repr(plain) == "Registry(3 models, source='static')"
    kept = Registry.from_models(
        models, tombstones={"claude-b-1": "retired"}, unlisted={"claude-c-1": "left out"}
    )

    assert repr(kept) == "Registry(1 models, source='static', 1 tombstones, 1 unlisted)"
    assert kept.tombstone("claude-b-1") == "retired"
    assert kept.tombstone("claude-a-2") is None
    assert kept.tombstone("claude-nobody-1") is None
    fact = LearnedFact("claude-a-2", "effort.max", False, 1.0, 2.0, "x")
    assert repr(kept.with_learned([fact])) == (
        "Registry(1 models, source='static', 1 tombstones, 1 unlisted, 1 learned)"
    )
    assert repr(plain.with_learned([fact])) == "Registry(3 models, source='static', 1 learned)"


REGISTRY = Registry.from_models([make_model("claude-b-1", unsupported=["effort.max"])])


def test_a_stripped_forced_tool_choice_says_why() -> None:
    body = {
        "model": "claude-b-1",
        "max_tokens": 4000,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "tool_choice": {"type": "any"},
        "messages": HI,
    }
    [change] = caproute.route(
        body, registry=REGISTRY, policy=policy(tool_choice="strip")
    ).decision.changes
    assert change.to_dict() == {
        "path": "tool_choice",
        "before": {"type": "any"},
        "after": None,
        "added": False,
        "removed": True,
        "action": "strip",
        "reason": "thinking refuses a forced tool_choice",
    }


def test_a_stripped_capability_says_which_model_lacks_what() -> None:
    body = {
        "model": "claude-b-1",
        "max_tokens": 400,
        "output_config": {"effort": "max"},
        "messages": HI,
    }
    [change] = caproute.route(
        body, registry=REGISTRY, policy=policy(effort="strip")
    ).decision.changes
    assert (change.path, change.action, change.reason) == (
        "output_config",
        "strip",
        "claude-b-1 lacks effort.max",
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [("1", "str '1'"), (2.5, "float 2.5"), (None, "nothing (null)"), (True, "bool True")],
)
def test_a_bad_version_is_named(value: Any, shown: str) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_dict({"version": value})
    assert str(caught.value) == f"<policy>: expected an integer, got {shown} (at version)"


@pytest.mark.parametrize(
    ("glob", "error"),
    [
        ("claude-[z-a]*", "range 'z-a' is reversed and matches nothing"),
        ("claude-[ab", "unclosed '[' at character 8"),
        ("claude-[]", "unclosed '[' at character 8"),
        ("c-[a-c]x[d-", "unclosed '[' at character 9"),
        ("c-[a-c]x[z-d]", "range 'z-d' is reversed and matches nothing"),
        ("c-[!z-d]", "range 'z-d' is reversed and matches nothing"),
    ],
)
def test_a_bad_model_glob_is_explained(glob: str, error: str) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_dict({"version": 1, "routes": [{"name": "r", "match": {"model": glob}}]})
    assert str(caught.value) == (
        f"<policy>: bad glob {glob!r}: {error} (at routes[0].match.model[0])"
    )


@pytest.mark.parametrize("glob", ["claude-[!a-c]*", "claude-[a-c]x[d-f]", "claude-[a-a]", "c-[!!]"])
def test_good_model_globs_pass(glob: str) -> None:
    Policy.from_dict({"version": 1, "routes": [{"name": "r", "match": {"model": glob}}]})


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        (
            {"x-a": 1},
            "expected a glob (a string) or a list of globs, got int 1; quote it to mean the "
            'text: "1" (at routes[0].match.headers.x-a)',
        ),
        (
            {"bad header": "1"},
            "'bad header' is not a valid HTTP header name "
            "(at routes[0].match.headers['bad header'])",
        ),
    ],
)
def test_header_matches_are_checked_and_located(headers: dict[str, Any], error: str) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_dict({"version": 1, "routes": [{"name": "r", "match": {"headers": headers}}]})
    assert str(caught.value) == f"<policy>: {error}"


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        (
            "routes: &a [*a]",
            ["<policy>:1:13: alias *a refers to a node that contains it"],
        ),
        (
            "version: 1\nroutes:\n  - name: a\n  - name: b\n    match: {model: x}\n",
            [
                "<policy>:5:12: route 'b' can never match: route 'a' (routes[0]) comes first "
                "and matches every request (at routes[1].match)"
            ],
        ),
        (
            "version: 1\nbase: &b {name: a}\nroutes:\n  - <<: *b\n    nme: x\n",
            [
                "<policy>:2:1: unknown key 'base' (at base)",
                "<policy>:5:5: unknown key 'nme' in route; did you mean 'name'? (at routes[0].nme)",
            ],
        ),
        (
            "version: 1\nroutes:\n  - {name: a, actions: {efort: strip}}",
            [
                "<policy>:3:25: unknown capability 'efort'; did you mean 'effort'? "
                "(at routes[0].actions.efort)"
            ],
        ),
    ],
)
def test_policy_text_diagnostics_are_located(text: str, errors: list[str]) -> None:
    policy, found = check_policy_text(text)
    assert policy is None
    assert [str(e) for e in found] == errors


@pytest.mark.parametrize("how", ["deepcopy", "model_copy"])
def test_a_policy_can_be_deep_copied(how: str) -> None:
    """Found by mutation testing (`Policy.model_copy`'s `deep` was never exercised)."""
    original = Policy.from_dict({"version": 1, "routes": [{"name": "a", "candidates": ["x"]}]})
    copied = copy.deepcopy(original) if how == "deepcopy" else original.model_copy(deep=True)
    assert copied == original
    assert [s.name for s in copied.route_specs] == ["a"]
    changed = original.model_copy(update={"version": 1}, deep=True)
    assert changed is not original and original.route_specs == copied.route_specs


WARNED = """version: 1
routes:
  - name: a
    match: {model: claude-sonet-*}
    candidates: [claude-sonet-4-5, claude-old-1]
  - name: b
    match: {model: claude-x}
    allow_deprecated: true
    candidates: [claude-gone-*]
  - name: c
    match: {model: claude-sonnet-4-5}
    candidates: [claude-old-*, requested]
  - name: d
    candidates: [claude-old-*]
"""


def test_registry_warnings_are_located_and_sorted() -> None:
    registry = Registry.from_models(
        [
            make_model("claude-sonnet-4-5"),
            make_model("claude-old-1", lifecycle="deprecated"),
            make_model("claude-gone-1", lifecycle="retired"),
        ]
    )
    found = registry_warnings(Policy.from_text(WARNED, filename="p.yaml"), registry)
    assert [str(w) for w in found] == [
        "p.yaml:4:20: warning: no model in the registry matches 'claude-sonet-*' "
        "(at routes[0].match.model[0])",
        "p.yaml:5:17: warning: route 'a' has no usable candidate: every model it lists is "
        "unknown to the registry or retired or deprecated (at routes[0].candidates)",
        "p.yaml:5:18: warning: candidate 'claude-sonet-4-5' matches no model in the registry; "
        "did you mean 'claude-sonnet-4-5'? (at routes[0].candidates[0])",
        "p.yaml:7:20: warning: no model in the registry matches 'claude-x' "
        "(at routes[1].match.model[0])",
        "p.yaml:9:17: warning: route 'b' has no usable candidate: every model it lists is "
        "unknown to the registry or retired (at routes[1].candidates)",
        "p.yaml:14:17: warning: route 'd' has no usable candidate: every model it lists is "
        "unknown to the registry or retired or deprecated (at routes[3].candidates)",
    ]
    assert [w.path for w in found][:2] == ["routes[0].match.model[0]", "routes[0].candidates"]


@pytest.mark.parametrize(
    ("learned_at", "support"),
    [(99.0, Support.SUPPORTED), (100.0, Support.SUPPORTED), (101.0, Support.UNSUPPORTED)],
)
def test_a_live_value_fetched_at_or_after_a_fact_beats_it(
    learned_at: float, support: Support
) -> None:
    """A live list fetched when (or after) a fact was learned already knows better."""
    live = Registry.from_models(
        [make_model("claude-a-2")], source=RegistrySource("live", fetched_at=100.0)
    )
    fact = LearnedFact("claude-a-2", "effort.max", False, learned_at, 1e12, "x")
    registry = live.with_learned([fact])
    assert registry.supports("claude-a-2", "effort.max") is support
    learned = {"effort.max"} if support is Support.UNSUPPORTED else set()
    assert registry.learned_keys("claude-a-2") == learned
    assert registry.learned_keys("claude-nobody-1") == frozenset()


def test_support_has_no_truth_value() -> None:
    with pytest.raises(TypeError) as caught:
        bool(Support.UNKNOWN)
    assert str(caught.value) == "Support is three-state; compare with Support.SUPPORTED explicitly"


def test_a_lifecycle_change_keeps_a_tombstone() -> None:
    models = [make_model("claude-a-2"), make_model("claude-b-1")]
    kept = Registry.from_models(models, tombstones={"claude-b-1": "gone"})
    assert kept.with_lifecycle("claude-b-1", "deprecated").tombstone("claude-b-1") == "gone"


def test_stripped_citations_leave_the_document_and_say_why() -> None:
    registry = Registry.from_models([make_model("claude-a-1", unsupported=["citations"])])
    source = {"type": "text", "media_type": "text/plain", "data": "hello"}
    document = {"type": "document", "source": source, "citations": {"enabled": True}}
    body = {
        "model": "claude-a-1",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [document, {"type": "text", "text": "q"}]}],
    }
    result = caproute.route(body, registry=registry, policy=policy(citations="strip"))

    assert [c.to_dict() for c in result.decision.changes] == [
        {
            "path": "messages[0].content[0].citations",
            "before": {"enabled": True},
            "after": None,
            "added": False,
            "removed": True,
            "action": "strip",
            "reason": "claude-a-1 lacks citations",
        }
    ]
    assert result.body["messages"][0]["content"][0] == {"type": "document", "source": source}
    assert body["messages"][0]["content"][0]["citations"] == {"enabled": True}  # not mutated


def test_a_fact_saying_supported_lays_support_over_the_listing() -> None:
    listed = Registry.from_models([make_model("claude-a-2", unsupported=["effort.max"])])
    taught = listed.with_learned([LearnedFact("claude-a-2", "effort.max", True, 1.0, 2.0, "x")])
    assert listed.supports("claude-a-2", "effort.max") is Support.UNSUPPORTED
    assert taught.supports("claude-a-2", "effort.max") is Support.SUPPORTED
    assert taught.supports("claude-a-2", "effort") is Support.SUPPORTED
    assert taught.supports("claude-a-2", "effort.high") is Support.SUPPORTED
    limited = listed.with_learned([LearnedFact("claude-a-2", "max_tokens", 512, 1.0, 2.0, "x")])
    assert limited.limits("claude-a-2").max_tokens == 512
    assert limited.supports("claude-a-2", "effort.max") is Support.UNSUPPORTED


GOOD = Registry.from_models(
    [make_model("claude-a-2")],
    source=RegistrySource("live", fetched_at=5.0, location="https://x", describes="2026-01-01"),
    aliases={"claude-a": "claude-a-2"},
).to_json()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            {"format": "nope"},
            "not a caproute registry snapshot (format is 'nope', expected 'caproute-registry/1')",
        ),
        ({"models": None}, "snapshot has no 'models' list"),
        ({"source": []}, "snapshot 'source' must be an object"),
        ({"aliases": []}, "snapshot 'aliases' must be an object"),
        ({"tombstones": {"a": 1}}, "snapshot 'tombstones' must map model ids to reasons"),
        ({"tombstones": {1: "x"}}, "snapshot 'tombstones' must map model ids to reasons"),
        ({"learned": {"a": 1}}, "snapshot 'learned' must be a list"),
        ({"source": {"fetched_at": "x"}}, "source.fetched_at: Input should be a valid number"),
        ({"aliases": {"a": 5}}, "aliases.a: Input should be a valid string"),
        ({"models": [5]}, "invalid model entry models[0]: not an object"),
    ],
)  # fmt: skip
def test_a_bad_snapshot_names_what_is_wrong(change: dict[str, Any], error: str) -> None:
    with pytest.raises(RegistryError) as caught:
        Registry.from_json({**GOOD, **change})
    assert str(caught.value) == error


def test_a_snapshots_source_is_kept_or_completed_by_the_loaders() -> None:
    stored = RegistrySource("live", fetched_at=5.0, location="https://x", describes="2026-01-01")
    assert Registry.from_json(GOOD).source == stored
    assert Registry.from_json(GOOD).resolve("claude-a") == "claude-a-2"
    # The loader knows the file: its kind and location win, the stored times fill in.
    assert Registry.from_json(GOOD, source=RegistrySource("cache", location="/f")).source == (
        RegistrySource("cache", fetched_at=5.0, location="/f", describes="2026-01-01")
    )
    given = RegistrySource("cache", location="/f", fetched_at=9.0)
    assert Registry.from_json(GOOD, source=given).source == given
    given = RegistrySource("cache", location="/f", describes="2026-02-02")
    assert Registry.from_json(GOOD, source=given).source == given
    assert Registry.from_json({**GOOD, "source": None}).source == RegistrySource("snapshot")
