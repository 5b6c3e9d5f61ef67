"""Where a policy file's problems are reported (line, column, path) for keys, merged
mappings and unusual key names, and which header and metadata matches shadow others:
mutmut found these free to change."""

from __future__ import annotations

import pytest

from caproute._core.policy_check import check_policy_text


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (
            "version: 1\ndefaults:\n  actions:\n    no_such_cap: strip\n",
            ["p.yaml:4:5: unknown capability 'no_such_cap' (at defaults.actions.no_such_cap)"],
        ),
        (
            "version: 1\ndefaults:\n  actions:\n    5: strip\n",
            [
                'p.yaml:4:5: expected a string, got int 5; quote it to mean the text: "5" '
                "(at defaults.actions[5])"
            ],
        ),
        (
            "version: 1\nbase: &b\n  on_unsupported: strip\ndefaults:\n  <<: *b\n  unknwn: x\n",
            [
                "p.yaml:2:1: unknown key 'base' (at base)",
                "p.yaml:6:3: unknown key 'unknwn' in defaults; did you mean 'unknown'? "
                "(at defaults.unknwn)",
            ],
        ),
        (
            "version: 1\ndefaults:\n  <<: {on_unsupported: strip}\n  bogus: 1\n",
            ["p.yaml:4:3: unknown key 'bogus' in defaults (at defaults.bogus)"],
        ),
        (
            "version: 1\ndefaults:\n  <<: [{on_unsupported: strip}, {bogus2: 1}]\n  bogus: 1\n",
            [
                "p.yaml:3:3: unknown key 'bogus2' in defaults (at defaults.bogus2)",
                "p.yaml:4:3: unknown key 'bogus' in defaults (at defaults.bogus)",
            ],
        ),
        (
            "version: 1\nroutes:\n  - name: a\n    match: {model: 'x'}\n    candidates: [x]\n"
            "  - name: b\n    match: {Model: 'y'}\n",
            [
                "p.yaml:7:13: unknown key 'Model' in match; did you mean 'model'? "
                "(at routes[1].match.Model)"
            ],
        ),
        (
            "version: 1\nroutes:\n  - name: a-b\n    candidates: [x]\n    $weird: 1\n",
            ["p.yaml:5:5: unknown key '$weird' in route (at routes[0].$weird)"],
        ),
        (
            "version: 1\nroutes:\n  - name: a\n    candidates: [x]\n    Weird-Key: 1\n",
            ["p.yaml:5:5: unknown key 'Weird-Key' in route (at routes[0].Weird-Key)"],
        ),
        (
            "version: 1\ndefaults: {on_unsuported: strip}\nzzz: 1\n",
            [
                "p.yaml:2:12: unknown key 'on_unsuported' in defaults; did you mean "
                "'on_unsupported'? (at defaults.on_unsuported)",
                "p.yaml:3:1: unknown key 'zzz' (at zzz)",
            ],
        ),
    ],
)
def test_problems_are_reported_where_they_are(text: str, problems: list[str]) -> None:
    assert [str(e) for e in check_policy_text(text, filename="p.yaml")[1]] == problems


def routes_matching(kind: str, first: str, later: str) -> str:
    return (
        "version: 1\nroutes:\n"
        f"  - name: a\n    match:\n      {kind}: {{{first}: a}}\n    candidates: [x]\n"
        f"  - name: b\n    match:\n      {kind}: {{{later}: a}}\n    candidates: [y]\n"
    )


def test_header_names_match_in_any_case_metadata_keys_exactly() -> None:
    shadowed = check_policy_text(routes_matching("headers", "X-Team", "x-team"), filename="p.yaml")
    assert [str(e) for e in shadowed[1]] == [
        "p.yaml:9:7: route 'b' can never match: route 'a' (routes[0]) comes first and "
        "matches every request it would (at routes[1].match)"
    ]
    distinct = check_policy_text(routes_matching("metadata", "Team", "team"), filename="p.yaml")
    assert distinct[1] == ()
