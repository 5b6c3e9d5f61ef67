"""The wire helpers the drivers share (caproute._runtime.drive): replies and headers.

Endpoints, beta values and API error bodies are the core's (`caproute._core.wire`),
tested in tests/core/test_wire_conventions.py.

The response-driven flow itself is pure and tested in tests/core/test_flow.py; the
drivers that run it are exercised end to end by the transport, middleware and proxy
tests.
"""

from __future__ import annotations

from caproute._core.decision import Change, Decision
from caproute._runtime.drive import Reply, decision_headers, reply_for


def test_replies_for_a_status_are_shared_and_equal_to_new_ones() -> None:
    assert reply_for(200) is reply_for(200)
    assert reply_for(529) == Reply(529)


def test_decision_headers_are_header_values_memoised_only_without_changes() -> None:
    decision = Decision("unchanged", "a-1", "a-1")
    assert decision_headers(decision) == decision.header_values()
    assert decision_headers(decision) is decision_headers(Decision("unchanged", "a-1", "a-1"))
    change = Change("metadata.note", "café", "thé", "adjust", "why")
    changed = Decision("adjusted", "a-1", "a-1", changes=(change,))
    assert decision_headers(changed) == changed.header_values()
    assert decision_headers(changed) is not decision_headers(changed)
