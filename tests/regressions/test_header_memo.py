"""Issue 22, bug 5: the ``caproute-*`` response headers of one decision reused for another.

The shells build a decision's headers once per
``(outcome, model, requested model)`` and reuse them for decisions without changes.
Leaving the requested model out of that memo's key sent one request's
``caproute-requested-model`` with another's response. Today a decision that names two
different models always carries a ``model`` change (and so bypasses the memo), which
is why no end-to-end test could see it; the property below holds the memo to its
contract for every decision, so a decision that breaks that pattern tomorrow (or a
field added to the headers) can't be served stale headers.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from caproute import Change, Decision
from caproute._runtime.drive import decision_headers

MODELS = st.sampled_from([None, "claude-a-2", "claude-b-1", "claude-c-1"])
CHANGES = st.sampled_from(
    [
        (),
        (Change("max_tokens", 64_000, 32_000, "clamp", "limit"),),
        (Change("output_config.effort", "max", "high", "downgrade", "no max"),),
    ]
)
DECISIONS = st.builds(
    Decision,
    outcome=st.sampled_from(["unchanged", "adjusted", "rerouted", "rejected", "passthrough"]),
    requested_model=MODELS,
    model=MODELS,
    changes=CHANGES,
)


def memoised(decision: Decision) -> dict[str, str] | None:
    return dict(decision_headers(decision))


@settings(max_examples=200, deadline=None)
@given(st.lists(DECISIONS, min_size=2, max_size=12))
def test_every_decision_gets_its_own_headers(decisions: list[Decision]) -> None:
    """Bug 5: whatever came before, a decision's memoised headers are its own
    (`Decision.header_values`), never those memoised for an earlier decision."""
    for decision in decisions:
        assert memoised(decision) == decision.header_values()


def test_the_requested_model_is_part_of_the_memo() -> None:
    """Bug 5, the concrete case: same outcome and model, another requested model."""
    first = Decision("rerouted", "claude-a-2", "claude-c-1")
    second = Decision("rerouted", "claude-b-1", "claude-c-1")
    assert memoised(first) == first.header_values()

    headers = memoised(second)

    assert headers is not None
    assert headers["caproute-requested-model"] == "claude-b-1"
