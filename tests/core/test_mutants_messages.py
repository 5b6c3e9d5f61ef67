"""Bad input gets a clear error with a location, word for word.

Mutation testing found these messages free to change (a test matched a fragment, or
none looked): a policy's YAML and status errors, a stored fact's errors, why a body
was passed through, and the policy's JSON schema header. Each is what a user reads
when something is wrong, so each is pinned whole.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

import caproute
from caproute import LearnedFact, Policy, PolicyError, RegistryError
from caproute._core.policy import policy_json_schema
from caproute._core.yaml_text import check_model_text
from caproute.testing import make_model

REGISTRY = caproute.Registry.from_models([make_model("claude-a-1")])


@pytest.mark.parametrize(
    ("text", "error", "where"),
    [
        (
            "version: 1\nroutes: [a",
            "invalid YAML: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence)",
            (2, 11),
        ),
        ("a: b: c", "invalid YAML: mapping values are not allowed here", (1, 5)),
        (
            "\t- x",
            "invalid YAML: found character '\\t' that cannot start any token "
            "(while scanning for the next token); indent with spaces, not tabs",
            (1, 1),
        ),
        (
            "version: 1\x07",
            "invalid YAML: unacceptable character #x0007: special characters are not "
            'allowed\n  in "<unicode string>", position 10',
            (None, None),
        ),
    ],
)
def test_yaml_errors(text: str, error: str, where: tuple[int | None, int | None]) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_text(text, filename="p.yaml")
    assert (caught.value.message, caught.value.file) == (error, "p.yaml")
    assert (caught.value.line, caught.value.column) == where
    position = "".join(f":{n}" for n in where if n is not None)
    assert str(caught.value) == f"p.yaml{position}: {error}"


@pytest.mark.parametrize("status", [400, 429, 599, "5xx"])
def test_fallback_statuses_accepted(status: Any) -> None:
    Policy.from_dict({"version": 1, "routes": [{"name": "r", "fallback_on": [status]}]})


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        (399, "int 399"),
        (600, "int 600"),
        (True, "bool True"),
        ("6xx", "str '6xx'"),
        ("4xx", "str '4xx'"),
        ("429", "str '429'"),
    ],
)
def test_fallback_statuses_refused(status: Any, shown: str) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_dict({"version": 1, "routes": [{"name": "r", "fallback_on": [status]}]})
    assert str(caught.value) == (
        f"<policy>: expected an HTTP status from 400 to 599 or '5xx', got {shown} "
        "(at routes[0].fallback_on[0])"
    )


def test_a_policy_error_from_a_dict_names_the_file_given() -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_dict({"version": True}, filename="team.yaml")
    assert str(caught.value) == "team.yaml: expected an integer, got bool True (at version)"


FACT = {"model": "m", "key": "effort.max", "value": False, "learned_at": 1.0, "expires_at": 2.0}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"reason": 5}, "learned[3].reason: expected a string"),
        ({"learned_at": "x"}, "learned[3].learned_at: expected a Unix time"),
        ({"expires_at": None}, "learned[3].expires_at: expected a Unix time"),
        ({"learned_at": True}, "learned[3].learned_at: expected a Unix time"),
    ],
)
def test_a_damaged_stored_fact_is_named(change: dict[str, Any], error: str) -> None:
    with pytest.raises(RegistryError) as caught:
        LearnedFact.from_dict({**FACT, **change}, "learned[3]")
    assert str(caught.value) == error


def test_a_stored_fact_without_a_reason_reads_as_an_empty_one() -> None:
    fact = LearnedFact.from_dict(FACT, "learned[0]")
    assert fact == LearnedFact("m", "effort.max", False, 1.0, 2.0, "")
    assert LearnedFact.from_dict(fact.to_dict(), "x") == fact


@pytest.mark.parametrize(
    ("body", "kind"),
    [(True, "boolean"), (1, "number"), (1.5, "number"), ("x", "string"), (None, "null"),
     ([1], "list"), (b"x", "bytes")],
)  # fmt: skip
def test_a_body_that_is_not_an_object_is_passed_through_saying_what_it_is(
    body: Any, kind: str
) -> None:
    decision = caproute.route(body, registry=REGISTRY).decision
    assert decision.outcome == "passthrough"
    assert decision.reason == f"the body is not a JSON object (it is a {kind})"


def test_the_policy_schema_is_a_draft_2020_12_document_with_its_own_id() -> None:
    schema = policy_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://caproute.invalid/policy.schema.json"
    assert schema["title"] == "caproute routing policy"
    assert list(schema)[:2] == ["$schema", "$id"]
    # By alias: the key users write is `$schema`, and defaults are what validation reads.
    assert "$schema" in schema["properties"]


class _Conf(BaseModel):
    """A config model like the proxy's: strict, no extra keys."""

    model_config = ConfigDict(extra="forbid", strict=True)
    port: int = 1
    name: str = "x"


def _even_port(conf: _Conf) -> list[tuple[tuple[str, ...], str]]:
    return [(("port",), "port must be even")] if conf.port % 2 else []


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        ("- 1", ["c.yaml:1:1: a config must be a mapping, got a list"]),
        ("port: 3", ["c.yaml:1:7: port must be even (at port)"]),
        (
            "port: x\nnme: y",
            [
                "c.yaml:1:7: expected an integer, got str 'x' (at port)",
                "c.yaml:2:1: unknown key 'nme'; did you mean 'name'? (at nme)",
            ],
        ),
        (
            "a: &a [*a]",
            ["c.yaml:1:8: alias *a refers to a node that contains it"],
        ),
        ("a: " + "[" * 5000 + "]" * 5000, ["c.yaml:1:67: the config nests deeper than 64 levels"]),
        ("port: 2\nport: 4", ["c.yaml:2:1: duplicate key 'port' (first on line 1) (at port)"]),
        ("", ["c.yaml:1:1: the config is empty"]),
    ],
)
def test_any_yaml_model_gets_the_policy_diagnostics(text: str, errors: list[str]) -> None:
    """`check_model_text` (the proxy's config file uses it): positions, did-you-mean,
    semantic checks located like pydantic's, and no exception but `PolicyError`s."""
    value, found = check_model_text(
        text, _Conf, filename="c.yaml", what="config", semantic=_even_port
    )
    assert value is None
    assert [str(e) for e in found] == errors


def test_a_valid_yaml_model_is_returned() -> None:
    value, found = check_model_text(
        "port: 2\nname: y", _Conf, filename="c.yaml", what="config", semantic=_even_port
    )
    assert (value, found) == (_Conf(port=2, name="y"), ())
    assert check_model_text("port: 3", _Conf, filename="c.yaml", what="config")[0] == _Conf(port=3)
