"""`classify` reads a refused body as the endpoint it was sent to.

A ``count_tokens`` body carries no ``max_tokens`` (the endpoint takes none): its
refusals teach the same facts as a Messages body's, and are not "not a Messages body".
"""

from __future__ import annotations

from caproute._core.learning import RefusalKind, classify

COUNT = {
    "model": "claude-x",
    "messages": [{"role": "user", "content": "hi"}],
    "output_config": {"effort": "max"},
}
MESSAGE = "output_config.effort 'max' is not supported on this model."


def test_a_count_tokens_refusal_teaches_the_fact_a_messages_one_would() -> None:
    refusal = classify(MESSAGE, COUNT, "claude-x", endpoint="count_tokens")
    assert refusal.kind is RefusalKind.MODEL_CAPABILITY
    assert refusal.fact is not None and (refusal.fact.key, refusal.fact.value) == (
        "effort.max",
        False,
    )
    same = classify(MESSAGE, {**COUNT, "max_tokens": 64}, "claude-x")
    assert same.fact == refusal.fact


def test_the_same_body_sent_to_messages_lacks_max_tokens_and_teaches_nothing() -> None:
    refusal = classify(MESSAGE, COUNT, "claude-x")
    assert refusal.kind is RefusalKind.SHAPE and refusal.fact is None
