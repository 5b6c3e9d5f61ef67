"""Registry bookkeeping and policy diagnostics as a user sees them (mutmut survivors):
a registry's repr and tombstones, what each strip says it did and why, glob and
version errors, header names in locations."""

from __future__ import annotations

from typing import Any

import pytest

import caproute
from caproute import LearnedFact, Policy, PolicyError, Registry
from caproute.testing import make_model

HI = [{"role": "user", "content": "hi"}]


def policy(**actions: str) -> Policy:
    return Policy.from_dict({"version": 1, "routes": [{"name": "r", "actions": actions}]})


def test_repr_and_tombstones_of_an_updated_registry() -> None:
    old = Registry.from_models([make_model("claude-a-2"), make_model("claude-b-1")])
    assert repr(old) == "Registry(2 models, source='static')"
    new = old.updated_by(Registry.from_models([make_model("claude-a-2")]), dropped="unlisted")

    assert repr(new) == "Registry(1 models, source='static', 1 tombstones)"
    assert new.tombstone("claude-b-1") == "unlisted"
    assert new.tombstone("claude-a-2") is None
    assert new.tombstone("claude-nobody-1") is None
    fact = LearnedFact("claude-a-2", "effort.max", False, 1.0, 2.0, "x")
    assert repr(new.with_learned([fact])) == (
        "Registry(1 models, source='static', 1 tombstones, 1 learned)"
    )
    assert repr(old.with_learned([fact])) == "Registry(2 models, source='static', 1 learned)"


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
