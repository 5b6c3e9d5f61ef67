"""The bounds on a policy (or model) file's text: size in UTF-8 bytes at the limit and
one over, the hint naming the setting, nesting too deep for the parser's own stack,
node counts. mutmut found each message and boundary free to change."""

from __future__ import annotations

import pytest

from caproute import Policy
from caproute._core.policy_check import check_policy_text
from caproute._core.yaml_text import TextLimits, check_model_text


def problems(text: str, limits: TextLimits, filename: str = "p.yaml") -> list[str]:
    return [str(e) for e in check_policy_text(text, filename=filename, limits=limits)[1]]


@pytest.mark.parametrize(
    ("text", "max_bytes", "shown"),
    [
        ("version: 1\n", 11, None),  # exactly at the limit
        ("version: 1\n", 10, "the policy is 11 bytes, over the limit of 10"),
        ("version: 1\n#é", 14, None),  # 13 characters, 14 bytes
        ("version: 1\n#é", 13, "the policy is 14 bytes, over the limit of 13"),
        ("version: 1\n" + "#" * 100, 50, "the policy is 111 bytes, over the limit of 50"),
    ],
)
def test_the_size_limit_counts_utf8_bytes(text: str, max_bytes: int, shown: str | None) -> None:
    found = problems(text, TextLimits(max_bytes=max_bytes))
    assert found == ([] if shown is None else [f"p.yaml:1:1: {shown}"])


def test_the_size_error_names_the_setting_and_what_the_file_is() -> None:
    limits = TextLimits(max_bytes=10, setting="CAPROUTE_POLICY_MAX_")
    assert problems("version: 1\n", limits, "s.yaml") == [
        "s.yaml:1:1: the policy is 11 bytes, over the limit of 10; set "
        "CAPROUTE_POLICY_MAX_BYTES to change the limit"
    ]
    found = check_model_text(
        "version: 1\n", Policy, filename="m.yaml", what="model file", limits=limits
    )
    assert [str(e) for e in found[1]] == [
        "m.yaml:1:1: the model file is 11 bytes, over the limit of 10; set "
        "CAPROUTE_POLICY_MAX_BYTES to change the limit"
    ]


def test_nesting_deeper_than_the_parser_can_follow_is_an_error_not_a_crash() -> None:
    deep = "[" * 2000 + "]" * 2000
    limits = TextLimits(max_depth=10**6, max_nodes=10**7)
    assert problems(deep, limits, "d.yaml") == [
        "d.yaml:1:1: the policy is nested too deeply or an alias refers to itself"
    ]
    found = check_model_text(deep, Policy, filename="m.yaml", what="model file", limits=limits)
    assert [str(e) for e in found[1]] == [
        "m.yaml:1:1: the model file is nested too deeply or an alias refers to itself"
    ]


def test_the_node_limit_says_where_it_was_crossed() -> None:
    assert problems("version: 1\nx: [1, 2, 3, 4, 5]\n", TextLimits(max_nodes=5)) == [
        "p.yaml:2:5: the policy has more than 5 nodes (keys, values and list items)"
    ]


def first_problem(text: str, **limits: object) -> str | None:
    found = problems(text, TextLimits(**limits))  # type: ignore[arg-type]
    return found[0] if found else None


def test_nodes_are_counted_up_to_the_limit_inclusive() -> None:
    assert first_problem("version: 1\n", max_nodes=3) is None  # a mapping, a key, a value
    assert first_problem("version: 1\n", max_nodes=2) == (
        "p.yaml:1:10: the policy has more than 2 nodes (keys, values and list items)"
    )


ALIASES = "a: &a [1, 2, 3]\nb: *a\nc: *a\n"
"""16 nodes: the mapping, three keys, the list of 3 (4 nodes), and each alias repeats 4."""


@pytest.mark.parametrize(
    ("max_nodes", "shown"),
    [
        (10, "p.yaml:2:4: aliases expand the policy to more than 10 nodes (*a repeats 4)"),
        (11, "p.yaml:3:1: the policy has more than 11 nodes (keys, values and list items)"),
        (15, "p.yaml:3:4: aliases expand the policy to more than 15 nodes (*a repeats 4)"),
        (16, None),
    ],
)
def test_an_alias_counts_every_node_it_repeats(max_nodes: int, shown: str | None) -> None:
    found = first_problem(ALIASES, max_nodes=max_nodes)
    if shown is None:
        assert found is None or "nodes" not in found
    else:
        assert found == shown


def test_the_limits_name_their_settings() -> None:
    setting = "CAPROUTE_POLICY_MAX_"
    assert first_problem(ALIASES, max_nodes=9, setting=setting) == (
        "p.yaml:2:4: aliases expand the policy to more than 9 nodes (*a repeats 4); set "
        "CAPROUTE_POLICY_MAX_NODES to change the limit"
    )
    assert first_problem("a: {b: {c: {d: 1}}}\n", max_depth=3, setting=setting) == (
        "p.yaml:1:9: the policy nests deeper than 3 levels; set CAPROUTE_POLICY_MAX_DEPTH to "
        "change the limit"
    )


def test_depth_is_counted_per_branch() -> None:
    assert first_problem("a: {b: {c: 1}}\n", max_depth=3) == (
        "p.yaml:1:9: the policy nests deeper than 3 levels"
    )
    # a shallow branch first does not use up the depth of the next one, nor hide it
    assert first_problem("a: [1]\nb: {c: {d: 1}}\n", max_depth=3) == (
        "p.yaml:2:9: the policy nests deeper than 3 levels"
    )
    assert first_problem("a: {b: {c: 1}}\n", max_depth=4) == "p.yaml:1:1: unknown key 'a' (at a)"
