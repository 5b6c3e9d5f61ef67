"""A valid policy's warnings once a registry says which models exist, a route that
matches on metadata only, and policies as dictionary keys: mutmut found these free to
change."""

from __future__ import annotations

from catalogue import REGISTRY

from caproute import Policy
from caproute._core.policy_check import PolicyWarning, registry_warnings


def test_registry_warnings_of_a_policy_built_in_code() -> None:
    # Built from a dict: no file positions, so no line or column.
    policy = Policy.from_dict(
        {
            "version": 1,
            "routes": [{"name": "a", "match": {"model": "t-fulll"}, "candidates": ["t-nope"]}],
        }
    )
    warnings = registry_warnings(policy, REGISTRY)
    assert [str(w) for w in warnings] == [
        "<policy>: warning: no model in the registry matches 't-fulll'; did you mean "
        "'t-full'? (at routes[0].match.model[0])",
        "<policy>: warning: candidate 't-nope' matches no model in the registry "
        "(at routes[0].candidates[0])",
        "<policy>: warning: route 'a' has no usable candidate: every model it lists is "
        "unknown to the registry or retired or deprecated (at routes[0].candidates)",
    ]
    assert all(w.line is None and w.column is None for w in warnings)


def test_a_deprecated_candidate_is_usable_where_the_route_allows_deprecated() -> None:
    policy = Policy.from_dict(
        {
            "version": 1,
            "routes": [{"name": "a", "candidates": ["t-deprecated"], "allow_deprecated": True}],
        }
    )
    assert registry_warnings(policy, REGISTRY) == ()


def test_a_warning_without_a_path_says_so_plainly() -> None:
    assert str(PolicyWarning("a problem", "p.yaml", None, None, None)) == (
        "p.yaml: warning: a problem"
    )


def test_a_route_matching_on_metadata_only_is_not_a_catch_all() -> None:
    policy = Policy.from_dict(
        {
            "version": 1,
            "routes": [
                {"name": "a", "match": {"metadata": {"team": "a"}}, "candidates": ["t-full"]},
                {"name": "b", "candidates": ["t-small"]},
            ],
        }
    )
    assert [r.name for r in policy.routes] == ["a", "b"]


def test_different_policies_hash_differently() -> None:
    policies = [
        Policy.from_dict({"version": 1, "defaults": {"allow_deprecated": value}})
        for value in (True, False, "requested")
    ]
    assert len({hash(p) for p in policies}) == 3
    assert hash(Policy.from_dict({"version": 1})) == hash(Policy.from_dict({"version": 1}))
