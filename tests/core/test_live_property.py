"""The promise, as a property over lineups and requests nobody wrote by hand.

`caproute.testing.random_lineup` draws two views of a lineup: the *truth*, which the
fake's validator (written independently of the core) checks requests against as the
API would, and what the Models API *lists* (optional leaves a model lacks left out,
some models in an older API version's shape, retired models left out). caproute reads
the list laid over an older snapshot that still listed the retired models (kept,
unlisted), with the API's 404 for each of them learned: their retirement confirmed.

The property: a request routed against what caproute reads is accepted by the truth on
the first attempt whenever caproute chose on stated data (no gamble on an unknown),
and it is never refused while some model could take it unchanged with everything it
uses stated. Gambles happen only when nothing is known to work; they are counted so
the test can't pass vacuously. hypothesis drives the generator's `random.Random`.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caproute._core.engine import PolicyEngine
from caproute._core.features import detect
from caproute._core.registry import Registry, Support
from caproute._core.registry_source import RegistrySource
from caproute.testing import GeneratedLineup, random_lineup, random_request, verdict

OUTCOMES: Counter[str] = Counter()


def registry_of(lineup: GeneratedLineup) -> Registry:
    """What caproute reads: the live list over an older snapshot listing every model,
    with the retirements the API confirmed (its 404 for each model the list leaves
    out: a list's omission alone takes no model away)."""
    older = Registry.from_models([{**m, "lifecycle": "active"} for m in lineup.truth])
    live = Registry.from_models(lineup.listed, source=RegistrySource("live", fetched_at=1.0))
    merged = older.updated_by(live, dropped="not listed any more")
    listed = {m["id"] for m in lineup.listed}
    confirmed = [  # every model the list leaves out (an empty list included) got a 404
        merged.new_fact(model_id, "lifecycle", "retired", reason="a 404", now=2.0)
        for model_id in lineup.ids
        if model_id not in listed
    ]
    return merged.with_learned(confirmed)


def servable_as_sent(
    lineup: GeneratedLineup, registry: Registry, body: dict[str, Any], version: str
) -> bool:
    """Some model caproute may use takes `body` unchanged, with everything it uses stated."""
    needs = detect(body).paths
    for model_id in lineup.ids:
        lifecycle = registry.lifecycle(model_id)
        if lifecycle == "retired" or (lifecycle == "deprecated" and model_id != body["model"]):
            continue
        stated = all(registry.supports(model_id, p) is not Support.UNKNOWN for p in needs)
        if stated and verdict(lineup, {**body, "model": model_id}, version) is None:
            return True
    return False


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False))
def test_routed_requests_are_accepted_first_time_or_refused_with_reason(
    rng: random.Random,
) -> None:
    lineup = random_lineup(rng)
    registry = registry_of(lineup)
    body, version = random_request(rng, lineup.ids)
    routed = PolicyEngine(registry).route(body, api_version=version)
    decision = routed.decision
    if decision.rejected:
        OUTCOMES["refused"] += 1
        assert decision.reason
        assert not servable_as_sent(lineup, registry, body, version), decision.explain()
        return
    if any("doesn't state" in note for note in decision.notes):
        OUTCOMES["gambled"] += 1
        return  # an unknown was bet on because nothing known works: learning takes over
    OUTCOMES[f"sent {decision.outcome}"] += 1
    refusal = verdict(lineup, routed.body, version)
    assert refusal is None, f"{refusal and refusal.message}\n{decision.explain()}"


def test_the_property_saw_every_kind_of_outcome() -> None:
    # Runs after the property (same module, file order): it must not pass vacuously.
    assert OUTCOMES["refused"] > 0
    assert OUTCOMES["sent unchanged"] > 0
    assert OUTCOMES["sent adjusted"] + OUTCOMES["sent rerouted"] > 20
