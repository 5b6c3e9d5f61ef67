"""Copy-on-write patches: only the containers on an edited path are copied."""

from __future__ import annotations

import copy
from typing import Any

from catalogue import IMAGE, PDF, body, user

from caproute import MISSING
from caproute._core.rewrite import apply_edits


def _sample() -> dict[str, Any]:
    return body(
        output_config={"effort": "max", "format": {"type": "json_schema", "schema": {}}},
        tools=[{"name": f"t{i}", "input_schema": {}, "strict": True} for i in range(4)],
        messages=[user(IMAGE, PDF), user({"type": "text", "text": "more"})],
    )


def test_set_nested_value_copies_only_the_path() -> None:
    original = _sample()
    snapshot = copy.deepcopy(original)
    out = apply_edits(original, [(("output_config", "effort"), "high")])
    assert out["output_config"] == {"effort": "high", "format": original["output_config"]["format"]}
    assert out is not original and out["output_config"] is not original["output_config"]
    assert out["messages"] is original["messages"]
    assert out["tools"] is original["tools"]
    assert original == snapshot


def test_removals_and_additions() -> None:
    original = _sample()
    out = apply_edits(
        original,
        [
            (("output_config", "format"), MISSING),
            (("thinking",), {"type": "adaptive"}),
            (("absent_key",), MISSING),  # removing what isn't there is a no-op
        ],
    )
    assert out["output_config"] == {"effort": "max"}
    assert out["thinking"] == {"type": "adaptive"}
    assert "absent_key" not in out


def test_list_removals_use_original_indices_in_any_order() -> None:
    original = _sample()
    out = apply_edits(
        original,
        [
            (("tools", 1), MISSING),
            (("tools", 3, "strict"), MISSING),
            (("tools", 2), MISSING),
            (("tools", 0, "strict"), MISSING),
        ],
    )
    assert [t["name"] for t in out["tools"]] == ["t0", "t3"]
    assert "strict" not in out["tools"][0] and "strict" not in out["tools"][1]
    assert original["tools"][3]["strict"] is True and len(original["tools"]) == 4


def test_content_blocks_stay_the_same_objects() -> None:
    original = _sample()
    out = apply_edits(original, [(("messages", 0, "content", 1, "citations"), MISSING)])
    first, second = out["messages"][0]["content"]
    assert first is original["messages"][0]["content"][0]
    assert second is not original["messages"][0]["content"][1]
    assert second["source"] is original["messages"][0]["content"][1]["source"]
    assert out["messages"][1] is original["messages"][1]


def test_a_container_is_copied_once_for_many_edits() -> None:
    original = _sample()
    out = apply_edits(
        original,
        [(("tools", 0, "strict"), MISSING), (("tools", 1, "strict"), MISSING)],
    )
    assert out["tools"] is not original["tools"]
    assert out["tools"][2] is original["tools"][2]
    assert [("strict" in t) for t in out["tools"]] == [False, False, True, True]
