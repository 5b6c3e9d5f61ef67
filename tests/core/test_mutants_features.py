"""The input-size estimate `detect` makes (what the context-window check reads), per
content block kind: mutmut found each block's contribution free to change."""

from __future__ import annotations

from typing import Any

import pytest

import caproute


def estimate(blocks: list[dict[str, Any]], role: str = "user") -> int:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": role, "content": blocks}]}
    return caproute.detect(body).input_tokens


def text(n: int) -> dict[str, Any]:
    return {"type": "text", "text": "x" * n}


def test_text_counts_by_length_and_adds_up() -> None:
    one, two, long = estimate([text(400)]), estimate([text(400), text(400)]), estimate([text(800)])
    assert (one, two, long) == (104, 204, 204)
    assert estimate([text(0)]) == 4


@pytest.mark.parametrize(
    ("block", "short", "long"),
    [
        ("thinking", 104, 1004),
        ("tool_use", 124, 1024),
        ("tool_result", 104, 1004),
        ("search_result", 104, 1004),
    ],
)
def test_each_block_kind_counts_its_own_text(block: str, short: int, long: int) -> None:
    def make(n: int) -> dict[str, Any]:
        if block == "thinking":
            return {"type": "thinking", "thinking": "x" * n, "signature": "s"}
        if block == "tool_use":
            return {"type": "tool_use", "id": "t", "name": "n", "input": {"a": "x" * n}}
        if block == "tool_result":
            return {"type": "tool_result", "tool_use_id": "t", "content": [text(n)]}
        return {"type": "search_result", "source": "s", "title": "t", "content": [text(n)]}

    role = "assistant" if block in ("thinking", "tool_use") else "user"
    assert (estimate([make(400)], role), estimate([make(4000)], role)) == (short, long)


def test_an_image_counts_as_a_fixed_size() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
    }
    assert estimate([image]) == 1604
    assert estimate([image, image]) == 3204
