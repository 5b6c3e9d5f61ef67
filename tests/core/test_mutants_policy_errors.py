"""What a policy's validation says, exactly: pydantic error types (what a caller of
`Policy.model_validate` branches on), messages and locations, glob checks at their
edges, and route shadowing. mutmut found each of these free to change."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from caproute import Policy, PolicyError
from caproute._core.policy_check import check_policy_text
from caproute._core.yaml_text import check_model_text


def routes(*globs: str) -> dict[str, Any]:
    return {
        "version": 1,
        "routes": [
            {"name": f"r{i}", "match": {"model": glob}, "candidates": ["requested"]}
            for i, glob in enumerate(globs)
        ],
    }


@pytest.mark.parametrize(
    ("data", "kind", "message"),
    [
        ({"version": "1"}, "int_type", "expected an integer, got str '1'"),
        (
            {"version": 2},
            "bad_version",
            "unsupported policy version 2; this caproute reads version 1",
        ),
        (routes("a[b"), "bad_glob", "bad glob 'a[b': unclosed '[' at character 2"),
        (
            {
                "version": 1,
                "routes": [
                    {"name": "r", "match": {"headers": {"bad name": "a"}}, "candidates": ["x"]}
                ],
            },
            "bad_header_name",
            "'bad name' is not a valid HTTP header name",
        ),
        (
            {"version": 1, "defaults": {"allow_deprecated": "sometimes"}},
            "bad_deprecated",
            "expected true, false or 'requested', got str 'sometimes'",
        ),
        (
            {"version": 1, "defaults": {"fallback_on": [200]}},
            "bad_status",
            "expected an HTTP status from 400 to 599 or '5xx', got int 200",
        ),
        (
            {"version": 1, "defaults": {"actions": {"no_such_cap": "strip"}}},
            "unknown_capability",
            "unknown capability 'no_such_cap'",
        ),
    ],
)
def test_validation_errors_have_a_type_and_a_message(
    data: dict[str, Any], kind: str, message: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        Policy.model_validate(data)
    [error] = raised.value.errors()
    assert (error["type"], error["msg"]) == (kind, message)


def test_a_glob_that_is_not_a_string_is_a_globs_type_error() -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        Policy.model_validate(routes(5))  # type: ignore[arg-type]
    assert raised.value.errors()[0]["type"] == "globs_type"


def test_allow_deprecated_takes_requested() -> None:
    policy = Policy.model_validate({"version": 1, "defaults": {"allow_deprecated": "requested"}})
    assert policy.defaults.allow_deprecated == "requested"


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        ({"version": 1, 5: "x"}, "<policy>: Keys should be strings (at [5])"),
        (
            {"version": 1, "defaults": {"actions": {"no_such_cap": "strip"}}},
            "<policy>: unknown capability 'no_such_cap' (at defaults.actions.no_such_cap)",
        ),
        (
            {"version": 1, "defaults": {"actions": {5: "strip"}}},
            '<policy>: expected a string, got int 5; quote it to mean the text: "5" '
            "(at defaults.actions[5])",
        ),
        (
            {"version": 1, "routes": [{"name": "r", "candidates": "x"}]},
            "<policy>: expected a list, got str 'x'; write a single entry as a list: [x] "
            "(at routes[0].candidates)",
        ),
        (
            routes(5),  # type: ignore[arg-type]
            "<policy>: expected a glob (a string) or a list of globs, got int 5; quote it to "
            'mean the text: "5" (at routes[0].match.model)',
        ),
        (
            {"version": 1, "routes": [{"name": "a", "candidates": ["x"]}, {"name": "b"}]},
            "<policy>: route 'b' can never match: route 'a' (routes[0]) comes first and "
            "matches every request (at routes[1])",
        ),
    ],
)
def test_policy_errors_read_like_a_compiler_diagnostic(data: dict[str, Any], shown: str) -> None:
    with pytest.raises(PolicyError) as raised:
        Policy.from_dict(data)
    assert str(raised.value) == shown


def test_the_file_name_is_where_the_error_is() -> None:
    with pytest.raises(PolicyError) as raised:
        Policy.from_dict({"version": 2}, filename="p.json")
    assert raised.value.file == "p.json"
    assert str(raised.value).startswith("p.json: unsupported policy version 2")
    with pytest.raises(PolicyError) as raised:
        Policy.from_text("version: 2")
    assert str(raised.value).startswith("<policy>:1:10: unsupported policy version 2")


def test_too_deep_a_text_names_the_file_and_what_it_is() -> None:
    nested = "version: 1\nx: " + "[" * 200 + "]" * 200
    policy, errors = check_policy_text(nested, filename="deep.yaml")
    assert policy is None
    assert [str(e) for e in errors] == ["deep.yaml:2:67: the policy nests deeper than 64 levels"]
    found, errors = check_model_text(nested, Policy, filename="m.yaml", what="model file")
    assert found is None
    assert [str(e) for e in errors] == ["m.yaml:2:67: the model file nests deeper than 64 levels"]


@pytest.mark.parametrize(
    ("glob", "problem"),
    [
        ("m-[3]-[5]", None),  # two classes: each closes at its own `]`
        ("m[a[]", None),  # a `[` inside a class is a member
        ("m[!- ]", None),  # `!` negates: it is not the low end of a range
        ("m[X-A]", "range 'X-A' is reversed and matches nothing"),
        ("m[a][", "unclosed '[' at character 5"),
    ],
)
def test_glob_checks_at_their_edges(glob: str, problem: str | None) -> None:
    if problem is None:
        Policy.model_validate(routes(glob))
        return
    with pytest.raises(pydantic.ValidationError) as raised:
        Policy.model_validate(routes(glob))
    assert raised.value.errors()[0]["msg"] == f"bad glob {glob!r}: {problem}"


@pytest.mark.parametrize(
    ("first", "later", "shadowed"),
    [
        ("claude-[ab]", "claude-[ab]", True),  # the same glob
        ("claude-*", "claude-x[ab]", True),  # a prefix glob over a longer pattern
        ("claude-*", "claudex[ab]", False),  # not the same prefix
        ("*", "claude-[ab]", True),
    ],
)
def test_a_route_another_covers_can_never_match(first: str, later: str, shadowed: bool) -> None:
    if not shadowed:
        Policy.from_dict(routes(first, later))
        return
    with pytest.raises(PolicyError, match="route 'r1' can never match"):
        Policy.from_dict(routes(first, later))


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (
            {"version": 1, "routes": [{"name": "r", "candidates": [["x"]]}]},
            "expected a string, got a list (at routes[0].candidates[0])",
        ),
        (
            {"version": 1, "routes": [{"name": "r", "candidates": [True]}]},
            "expected a string, got bool True; YAML reads an unquoted yes, no, on, off, true "
            "or false as a boolean: quote the text (at routes[0].candidates[0])",
        ),
        (
            {"version": 1, "routes": [{"name": "r", "candidates": 5}]},
            "expected a list, got int 5; write a single entry as a list: [5] "
            "(at routes[0].candidates)",
        ),
        (
            {"version": 1, "defaults": {"on_unsupported": "strp"}},
            "expected one of auto, reroute, adjust, strip, reject; got 'strp'; did you mean "
            "'strip'? (at defaults.on_unsupported)",
        ),
        (
            {"version": 1, "defaults": {"on_unsupported": 5}},
            "expected one of auto, reroute, adjust, strip, reject; got 5 "
            "(at defaults.on_unsupported)",
        ),
        (
            {"version": 1, "defaults": {"fallback_on": [True]}},
            "expected an HTTP status from 400 to 599 or '5xx', got bool True "
            "(at defaults.fallback_on[0])",
        ),
    ],
)
def test_type_errors_say_what_was_found_and_how_to_write_it(
    data: dict[str, Any], shown: str
) -> None:
    with pytest.raises(PolicyError) as raised:
        Policy.from_dict(data)
    assert str(raised.value) == f"<policy>: {shown}"
