"""The registry's descriptions and learned retirements, exactly: mutmut found the age
rounding, the JSON keys of a source and which retirement a reason quotes free to
change."""

from __future__ import annotations

import pytest
from catalogue import REGISTRY

from caproute import LearnedFact, RegistrySource


@pytest.mark.parametrize(
    ("age", "shown"),
    [
        (119, "119s"),
        (120, "2min"),
        (7_199, "120min"),
        (7_200, "2h"),
        (171_010, "48h"),  # 47.503 hours
        (172_800, "2d"),
        (216_001, "3d"),  # 2.50001 days
    ],
)
def test_a_sources_age_reads_in_the_nearest_unit(age: float, shown: str) -> None:
    source = RegistrySource("live", fetched_at=1_000.0, location="https://api.example")
    assert source.describe(now=1_000.0 + age) == f"live (https://api.example, {shown} old)"


def test_a_source_as_json() -> None:
    source = RegistrySource("embedded", fetched_at=5.0, location="pkg", describes="2026-11-01")
    assert source.to_dict() == {
        "kind": "embedded",
        "fetched_at": 5.0,
        "location": "pkg",
        "describes": "2026-11-01",
    }


def test_a_learned_retirement_quotes_its_own_reason() -> None:
    facts = [
        LearnedFact("t-full", "lifecycle", "retired", 10.0, 99.0, "404 from t-full"),
        LearnedFact("t-small", "effort.max", False, 10.0, 99.0, "a 400 from t-small"),
        LearnedFact("t-small", "lifecycle", "retired", 10.0, 99.0, "404 from t-small"),
    ]
    registry = REGISTRY.with_learned(facts)
    assert registry.unavailable_reason("t-small") == "retired (learned: 404 from t-small)"
    assert registry.unavailable_reason("t-full") == "retired (learned: 404 from t-full)"


@pytest.mark.parametrize("unlisted", [{"t-full": 5}, {5: "gone"}, ["t-full"]])
def test_a_snapshots_unlisted_models_must_map_ids_to_reasons(unlisted: object) -> None:
    from caproute import RegistryError

    document = {**REGISTRY.to_json(), "unlisted": unlisted}
    with pytest.raises(RegistryError, match="^snapshot 'unlisted' must map model ids to reasons$"):
        type(REGISTRY).from_json(document)


def test_a_repeated_model_id_names_both_places() -> None:
    from caproute import RegistryError

    document = REGISTRY.to_json()
    document = {**document, "models": [*document["models"], document["models"][0]]}
    with pytest.raises(RegistryError) as raised:
        type(REGISTRY).from_json(document)
    assert str(raised.value) == (
        "invalid model entry models[12] (t-retired): id: repeated (first at models[0])"
    )


def test_an_unknown_model_states_nothing() -> None:
    assert REGISTRY.stated("t-nope", "effort.max") is None


def _entry_error(change: dict[str, object], drop: str | None = None) -> str:
    from caproute import RegistryError

    document = REGISTRY.to_json()
    entry = {k: v for k, v in {**document["models"][1], **change}.items() if k != drop}
    with pytest.raises(RegistryError) as raised:
        type(REGISTRY).from_json({**document, "models": [entry]})
    return str(raised.value)


def test_an_invalid_model_entry_is_named_with_its_id_and_the_field_at_fault() -> None:
    assert _entry_error({"max_tokens": "x"}) == (
        "invalid model entry models[0] (t-full): max_tokens: Input should be a valid integer"
    )
    nested = {"capabilities": {"effort": {"supported": "maybe"}}}
    assert _entry_error(nested) == (
        "invalid model entry models[0] (t-full): capabilities.effort.supported: Input should "
        "be a valid boolean"
    )
    assert _entry_error({}, drop="id") == "invalid model entry models[0]: id: Field required"
    assert _entry_error({"id": 5}) == (
        "invalid model entry models[0]: id: Input should be a valid string"
    )
