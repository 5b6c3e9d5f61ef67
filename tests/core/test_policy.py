"""Routing policies: parsing, validation errors with positions, matching, effective settings."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from caproute import PolicyError, Registry
from caproute._core.policy import Policy, RouteSpec, policy_json_schema
from caproute._core.policy_check import _glob_covers, check_policy_text, registry_warnings
from caproute._core.policy_fields import CAPABILITY_FAMILIES, CAPABILITY_NAMES

FIXTURES = Path(__file__).parent.parent / "fixtures" / "policies"
INVALID = sorted((FIXTURES / "invalid").glob("*.yaml"))
VALID = sorted((FIXTURES / "valid").glob("*.yaml"))


def _expectation(path: Path) -> tuple[int, int, str]:
    """The ``# expect: LINE:COLUMN: message`` header of an invalid fixture."""
    header = path.read_text().splitlines()[0]
    assert header.startswith("# expect: "), f"{path.name} has no expectation header"
    line, column, message = header.removeprefix("# expect: ").split(":", 2)
    return int(line), int(column), message.strip()


# -- invalid files: the exact position and message -----------------------------------------------


def test_there_are_invalid_fixtures() -> None:
    assert len(INVALID) >= 25


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_policy_reports_the_exact_location(path: Path) -> None:
    line, column, message = _expectation(path)
    with pytest.raises(PolicyError) as caught:
        Policy.from_text(path.read_text(), filename=path.name)
    error = caught.value
    assert (error.file, error.line, error.column) == (path.name, line, column)
    assert error.message.startswith(message)
    assert str(error).startswith(f"{path.name}:{line}:{column}: {message}")


def test_error_names_the_data_path() -> None:
    text = "routes:\n  - name: a\n    match: {model: [ok, 5]}\n"
    with pytest.raises(PolicyError) as caught:
        Policy.from_text(text, filename="p.yaml")
    assert caught.value.path == "routes[0].match.model[1]"
    assert str(caught.value) == (
        'p.yaml:3:25: expected a string, got int 5; quote it to mean the text: "5" '
        "(at routes[0].match.model[1])"
    )


def test_check_collects_every_error_sorted_by_position() -> None:
    text = (
        "routes:\n"
        "  - name: a\n"
        "    actions: {efort: adjust}\n"
        "    candiates: [x]\n"
        "defaults: {unknown: maybe}\n"
    )
    policy, errors = check_policy_text(text, filename="p.yaml")
    assert policy is None
    assert [(e.line, e.column) for e in errors] == [(3, 15), (4, 5), (5, 21)]
    assert "did you mean 'effort'" in errors[0].message
    assert "did you mean 'candidates'" in errors[1].message


def test_semantic_checks_run_once_the_shape_is_valid() -> None:
    text = "routes:\n  - name: a\n  - name: a\n    match: {model: x}\n    candidates: []\n"
    _, errors = check_policy_text(text, filename="p.yaml")
    assert [(e.line, e.column, e.message[:25]) for e in errors] == [
        (3, 11, "duplicate route name 'a' "),
        (4, 12, "route 'a' can never match"),
        (5, 17, "an empty candidate list c"),
    ]


def test_no_suggestion_when_nothing_is_close() -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_text("zzzzzz: 1\n")
    assert caught.value.message == "unknown key 'zzzzzz'"


def test_multiple_documents_are_refused_with_a_position() -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_text("version: 1\n---\nversion: 1\n", filename="p.yaml")
    assert (caught.value.line, caught.value.column) == (2, 1)
    assert "expected a single document" in caught.value.message


def test_from_dict_errors_carry_the_path_but_no_position() -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_dict({"routes": [{"name": "a", "actions": {"pdf_input": "strip"}}]})
    error = caught.value
    assert (error.file, error.line, error.column) == ("<policy>", None, None)
    assert error.path == "routes[0].actions.pdf_input"
    assert str(error).startswith("<policy>: 'strip' is not allowed for pdf_input")


def test_from_dict_refuses_a_non_mapping() -> None:
    with pytest.raises(PolicyError, match="a policy must be a mapping, got a list"):
        Policy.from_dict([], filename="x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("glob", "problem"),
    [
        ("claude-[", "unclosed '[' at character 8"),
        ("[!]x", "unclosed '[' at character 1"),
        ("[b-a]*", "range 'b-a' is reversed and matches nothing"),
    ],
)
def test_bad_globs(glob: str, problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_dict({"routes": [{"name": "r", "match": {"model": glob}}]})
    assert caught.value.message == f"bad glob {glob!r}: {problem}"


@pytest.mark.parametrize("glob", ["[]]x", "[!]]x", "claude-[hs]*", "x[a-c]?", "*"])
def test_good_globs(glob: str) -> None:
    Policy.from_dict({"routes": [{"name": "r", "match": {"model": glob}}]})


# -- valid files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_fixtures_load(path: Path) -> None:
    policy, errors = check_policy_text(path.read_text(), filename=path.name)
    assert errors == ()
    assert isinstance(policy, Policy)


def test_full_fixture_effective_settings() -> None:
    policy = Policy.from_text((FIXTURES / "valid" / "full.yaml").read_text())
    vision, opus, rest = policy.route_specs
    assert vision == RouteSpec(
        name="vision-to-sonnet",
        candidates=("requested", "claude-sonnet-5-5", "claude-opus-*"),
        on_unsupported="adjust",
        actions={
            # the route's `effort` replaced the defaults' `effort` and `effort.max`
            "citations": "strip",
            "context_management.clear_thinking_20251015": "strip",
            "thinking": "adjust",
            "effort": "reroute",
            "max_tokens": "adjust",
            "pdf_input": "reroute",
        },
        unknown="supported",
        allow_deprecated=True,
        fallback_on=frozenset({429, *range(500, 600)}),
    )
    # Unset route settings inherit the defaults.
    assert opus.on_unsupported == "reroute"
    assert opus.unknown == "unsupported"
    assert opus.allow_deprecated is False
    assert opus.fallback_on == frozenset({529})
    assert opus.candidates == ()
    assert opus.action_for("effort.max") == "reject"
    assert opus.action_for("effort.high") == "adjust"
    assert rest.name == "rest"


def test_anchors_share_a_candidate_list() -> None:
    policy = Policy.from_text((FIXTURES / "valid" / "anchors.yaml").read_text())
    a, b = policy.route_specs
    assert a.candidates == b.candidates == ("requested", "claude-sonnet-5-5", "claude-opus-5-5")


def test_schema_key_is_accepted_and_ignored() -> None:
    with_schema = Policy.from_text("$schema: ./policy.schema.json\nversion: 1\n")
    assert with_schema.schema_ == "./policy.schema.json"
    assert with_schema.match("m") == Policy.default().match("m")


# -- matching ------------------------------------------------------------------------------------

ROUTING = """
routes:
  - name: team-a-haiku
    match:
      model: "claude-haiku-*"
      metadata: {user_id: "team-a-*"}
    candidates: [requested, claude-sonnet-5-5]
  - name: research
    match:
      headers: {X-Team: "research"}
    candidates: [claude-opus-*]
  - name: opus-or-mythos
    match:
      model: ["claude-opus-*", "claude-mythos-*"]
"""


@pytest.fixture(scope="module")
def routing() -> Policy:
    return Policy.from_text(ROUTING)


@pytest.mark.parametrize(
    ("model", "metadata", "headers", "expected"),
    [
        ("claude-haiku-4-5", {"user_id": "team-a-7"}, None, "team-a-haiku"),
        ("claude-haiku-4-5", {"user_id": "team-b-7"}, None, None),
        ("claude-haiku-4-5", {"user_id": 7}, None, None),
        ("claude-haiku-4-5", None, None, None),
        ("claude-Haiku-4-5", {"user_id": "team-a-7"}, None, None),  # globs are case-sensitive
        ("claude-haiku-4-5", None, {"x-team": "research"}, "research"),
        ("claude-haiku-4-5", None, {"X-TEAM": "research"}, "research"),  # names are not
        ("claude-haiku-4-5", None, {"x-team": "Research"}, None),
        (None, None, {"x-team": "research"}, "research"),
        ("claude-mythos-5", None, None, "opus-or-mythos"),
        ("claude-opus-5-5", {"user_id": "team-a-1"}, {"x-team": "research"}, "research"),
        (None, None, None, None),
        ("claude-sonnet-5", None, {"x-other": "research"}, None),
    ],
)
def test_first_matching_route_wins(
    routing: Policy,
    model: str | None,
    metadata: dict[str, Any] | None,
    headers: dict[str, str] | None,
    expected: str | None,
) -> None:
    assert routing.match(model, metadata=metadata, headers=headers).name == expected


def test_no_match_gives_the_default_route(routing: Policy) -> None:
    spec = routing.match("claude-sonnet-5")
    assert spec is routing.default_route
    assert spec == RouteSpec(
        name=None,
        candidates=(),
        on_unsupported="auto",
        actions={},
        unknown="prefer-known",
        allow_deprecated="requested",
        fallback_on=frozenset(),
    )


def test_default_policy_is_the_no_policy_behaviour() -> None:
    policy = Policy.default()
    assert policy.routes == ()
    assert policy == Policy.from_text("version: 1\n")
    assert (
        policy.match("claude-opus-5-5", metadata={"user_id": "u"}, headers={"a": "b"}).name is None
    )


# -- actions -------------------------------------------------------------------------------------


def _spec(**settings: Any) -> RouteSpec:
    return Policy.from_dict({"routes": [{"name": "r", **settings}]}).route_specs[0]


def test_action_for_prefers_the_most_specific_key() -> None:
    spec = _spec(
        on_unsupported="reroute",
        actions={"thinking": "adjust", "thinking.types.enabled": "reject", "effort": "strip"},
    )
    assert spec.action_for("thinking.types.enabled") == "reject"
    assert spec.action_for("thinking.types.adaptive") == "adjust"
    assert spec.action_for("thinking") == "adjust"
    assert spec.action_for("effort.xhigh") == "strip"
    assert spec.action_for("citations") == "reroute"


def test_blanket_strip_never_applies_to_content_or_max_tokens() -> None:
    spec = _spec(on_unsupported="strip")
    assert spec.action_for("citations") == "strip"
    assert spec.action_for("pdf_input") == "auto"
    assert spec.action_for("image_input") == "auto"
    assert spec.action_for("max_tokens") == "auto"


def test_route_actions_replace_the_defaults_for_their_subtree() -> None:
    policy = Policy.from_dict(
        {
            "defaults": {"actions": {"effort.max": "reject", "thinking": "strip"}},
            "routes": [{"name": "r", "actions": {"effort": "adjust"}}],
        }
    )
    (spec,) = policy.route_specs
    assert dict(spec.actions) == {"thinking": "strip", "effort": "adjust"}
    assert policy.default_route.action_for("effort.max") == "reject"
    assert spec.action_for("effort.max") == "adjust"


def test_unknown_context_management_edits_are_accepted() -> None:
    spec = _spec(actions={"context_management.clear_everything_20270101": "strip"})
    assert spec.action_for("context_management.clear_everything_20270101") == "strip"


def test_capability_names_cover_every_registry_family() -> None:
    from caproute import Capabilities

    assert set(CAPABILITY_FAMILIES) == set(Capabilities.model_fields)
    assert set(CAPABILITY_FAMILIES) <= set(CAPABILITY_NAMES)
    assert {"effort.max", "thinking.types.enabled", "max_tokens", "sampling"} <= set(
        CAPABILITY_NAMES
    )


def test_fallback_statuses_expand_5xx() -> None:
    assert _spec(fallback_on=[529]).fallback_on == frozenset({529})
    assert _spec(fallback_on=["5xx", 429]).fallback_on == frozenset({429, *range(500, 600)})


# -- immutability and hashing ---------------------------------------------------------------------


def test_policy_is_immutable_and_hashable(routing: Policy) -> None:
    with pytest.raises(ValidationError):
        routing.routes = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        routing.defaults.actions["effort"] = "adjust"  # type: ignore[index]
    twin = Policy.from_text(ROUTING, filename="elsewhere.yaml")
    assert twin == routing
    assert hash(twin) == hash(routing)
    assert len({routing, twin, Policy.default()}) == 2
    assert {spec: spec.name for spec in routing.route_specs}


def test_different_policies_are_unequal(routing: Policy) -> None:
    other = Policy.from_text(ROUTING.replace("team-a-*", "team-b-*"))
    assert other != routing
    assert other != "not a policy"


def test_repr_lists_route_names(routing: Policy) -> None:
    assert repr(routing) == "Policy(routes=['team-a-haiku', 'research', 'opus-or-mythos'])"


# -- shadowed routes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ({}, {"model": "x"}),
        ({"model": "*"}, {"model": "claude-*"}),
        ({"model": "claude-*"}, {"model": ["claude-haiku-*", "claude-opus-4-5"]}),
        ({"model": ["a", "b"]}, {"model": "b"}),
        ({"metadata": {"user_id": "t-*"}}, {"metadata": {"user_id": "t-1", "x": "y"}}),
        ({"headers": {"X-A": "1"}}, {"headers": {"x-a": "1"}, "model": "m"}),
    ],
)
def test_shadowed_routes_are_errors(earlier: dict[str, Any], later: dict[str, Any]) -> None:
    data = {"routes": [{"name": "first", "match": earlier}, {"name": "second", "match": later}]}
    with pytest.raises(PolicyError, match="route 'second' can never match: route 'first'"):
        Policy.from_dict(data)


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ({"model": "claude-haiku-*"}, {"model": "claude-*"}),
        ({"model": "claude-*"}, {}),
        ({"model": "a"}, {"model": ["a", "b"]}),
        ({"model": "claude-?aiku-*"}, {"model": "claude-haiku-*"}),  # not provable: allowed
        ({"metadata": {"user_id": "t-*"}}, {"model": "m"}),
        ({"model": "m", "headers": {"x": "1"}}, {"model": "m"}),
    ],
)
def test_reachable_routes_are_fine(earlier: dict[str, Any], later: dict[str, Any]) -> None:
    data = {"routes": [{"name": "first", "match": earlier}, {"name": "second", "match": later}]}
    assert len(Policy.from_dict(data).routes) == 2


_GLOB_TEXT = st.text(alphabet="ab-*?", min_size=1, max_size=6)
_WORDS = st.text(alphabet="ab-", max_size=8)


@given(wide=_GLOB_TEXT, narrow=_GLOB_TEXT, words=st.lists(_WORDS, max_size=30))
def test_glob_cover_is_never_wrong(wide: str, narrow: str, words: list[str]) -> None:
    # Soundness of the shadowing check: when it says `wide` covers `narrow`, no string
    # matched by `narrow` may escape `wide` (else a reachable route would be rejected).
    if _glob_covers(wide, narrow):
        for word in words:
            if fnmatch.fnmatchcase(word, narrow):
                assert fnmatch.fnmatchcase(word, wide)


# -- JSON Schema ---------------------------------------------------------------------------------


def _objects(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append(node)
        for value in node.values():
            found.extend(_objects(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_objects(value))
    return found


def test_json_schema_describes_the_file() -> None:
    schema = policy_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == {"$schema", "version", "defaults", "routes"}
    assert schema["properties"]["version"]["const"] == 1
    route = schema["$defs"]["Route"]
    assert route["required"] == ["name"]
    assert "first that matches wins" in route["description"]
    assert route["properties"]["candidates"]["description"].startswith("Models to use")
    actions = schema["$defs"]["Defaults"]["properties"]["actions"]
    assert set(actions["properties"]) == set(CAPABILITY_NAMES)
    assert actions["properties"]["effort"] == {
        "enum": ["auto", "reroute", "adjust", "strip", "reject"]
    }
    # Every object forbids unknown keys, so editors flag typos too.
    for node in _objects(schema):
        if "properties" in node:
            assert node["additionalProperties"] is False, node.get("title")


# -- registry checks -----------------------------------------------------------------------------

REGISTRY = Registry.from_models(
    [
        {"id": "claude-sonnet-5-5", "lifecycle": "active"},
        {"id": "claude-opus-5-5", "lifecycle": "active"},
        {"id": "claude-haiku-4-5-20251001", "lifecycle": "deprecated"},
        {"id": "claude-opus-4-1-20250805", "lifecycle": "retired"},
    ]
)


def test_registry_warnings_point_at_the_candidates() -> None:
    text = (
        "routes:\n"
        "  - name: ok\n"
        "    match: {model: claude-haiku-4-5}\n"
        "    candidates: [requested, claude-sonet-5-5, claude-opus-*]\n"
        "  - name: retired-only\n"
        "    match: {model: cluade-*}\n"
        "    candidates: [claude-opus-4-1, claude-opus-4-*]\n"
        "  - name: deprecated-not-allowed\n"
        "    candidates: [claude-haiku-4-5]\n"
        "    allow_deprecated: false\n"
    )
    policy = Policy.from_text(text, filename="p.yaml")
    assert [str(w) for w in registry_warnings(policy, REGISTRY)] == [
        "p.yaml:4:29: warning: candidate 'claude-sonet-5-5' matches no model in the registry; "
        "did you mean 'claude-sonnet-5-5'? (at routes[0].candidates[1])",
        "p.yaml:6:20: warning: no model in the registry matches 'cluade-*' "
        "(at routes[1].match.model[0])",
        "p.yaml:7:17: warning: route 'retired-only' has no usable candidate: every model it "
        "lists is unknown to the registry or retired or deprecated (at routes[1].candidates)",
        "p.yaml:9:17: warning: route 'deprecated-not-allowed' has no usable candidate: every "
        "model it lists is unknown to the registry or retired or deprecated "
        "(at routes[2].candidates)",
    ]


def test_no_registry_warnings_for_known_models() -> None:
    policy = Policy.from_dict(
        {
            "routes": [
                {"name": "a", "match": {"model": "claude-haiku-4-5"}, "candidates": ["claude-*"]}
            ]
        }
    )
    assert registry_warnings(policy, REGISTRY) == ()


def test_merge_keys_inherit_settings() -> None:
    policy = Policy.from_text((FIXTURES / "valid" / "anchors.yaml").read_text())
    assert [spec.on_unsupported for spec in policy.route_specs] == ["reroute", "reroute"]
    assert policy.match(None, metadata={"user_id": "b-1"}).name == "team-b"


def test_schema_key_does_not_change_equality() -> None:
    plain = Policy.from_text("version: 1\n")
    assert Policy.from_text("$schema: ./a.json\n") == plain
    assert hash(Policy.from_text("$schema: ./b.json\n")) == hash(plain)


def test_a_copy_with_changes_is_recompiled(routing: Policy) -> None:
    spec = routing.match("claude-mythos-5")
    assert spec.name == "opus-or-mythos"
    trimmed = routing.model_copy(update={"routes": routing.routes[:1]})
    assert trimmed.match("claude-mythos-5").name is None
    assert trimmed != routing
