"""What a `Decision` says about itself, word for word: the one-line summary (log lines,
the ``caproute-*`` headers' reader, the CLI) and the multi-line explanation
(``caproute explain``).

Mutation testing found both free to change: every existing test checked a fragment.
These pin whole outputs, for each shape a decision takes.
"""

from __future__ import annotations

import copy
import pickle

import pytest

from caproute import MISSING, Candidate, Change, Decision

EFFORT = Change("output_config.effort", "max", "high", "adjust", "claude-b lacks effort max")
DROPPED = Change("top_k", 5, MISSING, "strip", "thinking is on")
ADDED = Change("thinking.budget_tokens", MISSING, 1024, "adjust", "enabled thinking needs one")
MOVED = Change("model", "claude-a", "claude-b", "reroute", "claude-a lacks image input")


@pytest.mark.parametrize(
    ("decision", "summary"),
    [
        (Decision("rejected", "claude-a", None, reason="no model reads PDFs"),
         "rejected: no model reads PDFs"),
        (Decision("rejected", "claude-a", None), "rejected: no reason given"),
        (Decision("passthrough", None, None, reason="not JSON"), "passthrough: not JSON"),
        (Decision("passthrough", "x", "x"), "passthrough: no reason given"),
        (Decision("unchanged", "claude-a", "claude-a"), "unchanged claude-a"),
        (Decision("unchanged", None, None), "unchanged"),
        (Decision("adjusted", "claude-a", "claude-a", changes=(EFFORT, DROPPED)),
         "adjusted claude-a; output_config.effort: max → high; top_k: 5 → (absent)"),
        (Decision("rerouted", "claude-a", "claude-b", changes=(MOVED, ADDED)),
         "rerouted claude-a → claude-b; model: claude-a → claude-b; "
         "thinking.budget_tokens: (absent) → 1024"),
        (
            Decision(
                "adjusted",
                None,
                None,
                items=(
                    ("r1", Decision("unchanged", "a", "a")),
                    ("r2", Decision("adjusted", "a", "a", changes=(EFFORT,))),
                    ("r3", Decision("unchanged", "b", "b")),
                    ("r4", Decision("rejected", "b", None, reason="no")),
                ),
            ),
            "adjusted (1 adjusted, 1 rejected, 2 unchanged)",
        ),
    ],
)  # fmt: skip
def test_summary(decision: Decision, summary: str) -> None:
    assert decision.summary() == summary


@pytest.mark.parametrize(
    ("length", "shown"),
    [
        (120, "v" * 120),
        (121, "v" * 120 + "... (121 chars)"),
        (1234, "v" * 120 + "... (1,234 chars)"),
    ],
)
def test_a_long_value_is_cut_after_120_characters(length: int, shown: str) -> None:
    change = Change("system", "v" * length, MISSING, "strip", "too long")
    assert str(change) == f"system: {shown} → (absent)"
    assert change.to_dict()["before"] == "v" * length  # the record keeps it whole


def test_a_structured_value_is_shown_as_compact_sorted_json() -> None:
    change = Change("tool_choice", {"type": "any", "a": [1, 2]}, {"type": "auto"}, "adjust", "r")
    assert str(change) == 'tool_choice: {"a":[1,2],"type":"any"} → {"type":"auto"}'


def test_explain_every_line() -> None:
    decision = Decision(
        "rerouted",
        "claude-a",
        "claude-b",
        needs=("effort.max", "image_input"),
        candidates=(
            Candidate("claude-a", False, "lacks image_input"),
            Candidate("claude-b", True),
        ),
        changes=(MOVED, DROPPED),
        reason="claude-a lacks image input",
        notes=("registry is a snapshot",),
        route="vision",
        registry_source="live",
        registry_age_s=42.4,
    )
    assert decision.explain().splitlines() == [
        "outcome:    rerouted",
        "requested:  claude-a",
        "chosen:     claude-b",
        "route:      vision",
        "needs:      effort.max, image_input",
        "registry:   live, 42s old",
        "reason:     claude-a lacks image input",
        "candidates:",
        "  ✗ claude-a: lacks image_input",
        "  ✓ claude-b",
        "changes:",
        "  model: claude-a → claude-b  (reroute: claude-a lacks image input)",
        "  top_k: 5 → (absent)  (strip: thinking is on)",
        "note:       registry is a snapshot",
    ]


def test_explain_a_bare_decision() -> None:
    assert Decision("passthrough", None, None).explain().splitlines() == [
        "outcome:    passthrough",
        "requested:  (none)",
        "chosen:     (none)",
        "needs:      (nothing special)",
        "registry:   unknown",
    ]


def test_explain_a_batch_lists_its_items() -> None:
    decision = Decision(
        "adjusted",
        None,
        None,
        items=(
            ("r1", Decision("unchanged", "a", "a")),
            ("r2", Decision("rejected", "b", None, reason="no PDFs")),
        ),
    )
    assert decision.explain().splitlines()[-2:] == [
        "[r1] unchanged a",
        "[r2] rejected: no PDFs",
    ]


def test_extra_is_read_only_by_every_means() -> None:
    decision = Decision("unchanged", "a", "a")
    extra = decision.extra
    attempts = [
        lambda: extra.__setitem__("k", 1),  # type: ignore[index]
        lambda: extra.update(k=1),  # type: ignore[attr-defined]
        lambda: extra.setdefault("k", 1),  # type: ignore[attr-defined]
        lambda: extra.pop("k"),  # type: ignore[attr-defined]
        lambda: extra.clear(),  # type: ignore[attr-defined]
    ]
    for attempt in attempts:
        with pytest.raises(TypeError, match=r"^Decision.extra is read-only; build a new"):
            attempt()
    assert dict(extra) == {}


def test_missing_survives_pickling_and_copying_as_itself() -> None:
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    assert copy.deepcopy(MISSING) is MISSING
    assert repr(MISSING) == "MISSING"
    change = pickle.loads(pickle.dumps(DROPPED))
    assert change.after is MISSING


def test_to_dict_holds_every_field() -> None:
    decision = Decision(
        "rerouted",
        "claude-a",
        "claude-b",
        needs=("image_input",),
        candidates=(Candidate("claude-a", False, "lacks image_input"), Candidate("claude-b", True)),
        changes=(MOVED, ADDED),
        reason="moved",
        notes=("n",),
        route="vision",
        registry_source="live",
        registry_age_s=3.0,
        items=(("r1", Decision("unchanged", "a", "a")),),
        extra={"attempt": 2},
    )
    assert decision.to_dict() == {
        "outcome": "rerouted",
        "requested_model": "claude-a",
        "model": "claude-b",
        "needs": ["image_input"],
        "candidates": [
            {"model": "claude-a", "chosen": False, "reason": "lacks image_input"},
            {"model": "claude-b", "chosen": True, "reason": None},
        ],
        "changes": [
            {
                "path": "model",
                "before": "claude-a",
                "after": "claude-b",
                "added": False,
                "removed": False,
                "action": "reroute",
                "reason": "claude-a lacks image input",
            },
            {
                "path": "thinking.budget_tokens",
                "before": None,
                "after": 1024,
                "added": True,
                "removed": False,
                "action": "adjust",
                "reason": "enabled thinking needs one",
            },
        ],
        "reason": "moved",
        "notes": ["n"],
        "route": "vision",
        "registry": {"source": "live", "age_s": 3.0},
        "items": [
            {
                "custom_id": "r1",
                **Decision("unchanged", "a", "a").to_dict(),
            }
        ],
        "extra": {"attempt": 2},
    }


def test_to_dict_of_a_plain_decision_has_no_items_or_extra() -> None:
    assert Decision("unchanged", "a", "a").to_dict() == {
        "outcome": "unchanged",
        "requested_model": "a",
        "model": "a",
        "needs": [],
        "candidates": [],
        "changes": [],
        "reason": None,
        "notes": [],
        "route": None,
        "registry": {"source": "unknown", "age_s": None},
    }
