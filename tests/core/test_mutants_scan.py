"""`detect`'s input-size estimate and content reading for blocks outside the hot
message loop (system blocks, nested blocks, documents, tool definitions): mutmut
found each one's contribution free to change.

Every body here starts with two tool definitions (``PRIOR``: 60 characters and 200
tokens), so a block that *replaces* the running count instead of adding to it, or
subtracts, gives another estimate.
"""

from __future__ import annotations

from typing import Any

import pytest

import caproute
from caproute._core.features import PDF_TOKENS_PER_PAGE
from caproute._core.request_needs import NOT_A_SCALAR

PRIOR_TOOLS = [
    {"name": "n" * 8, "description": "d" * 40, "input_schema": {}},
    {"name": "m" * 12, "input_schema": {}},
]
"""Two tool definitions: 8 + 40 + 12 = 60 characters, 2 x 100 tokens."""
PRIOR_CHARS, PRIOR_TOKENS = 60, 200


def estimate(body: dict[str, Any]) -> int:
    tokens = caproute.detect({"model": "m", "max_tokens": 5, "messages": [], **body}).input_tokens
    assert type(tokens) is int
    return tokens


def with_system(*blocks: dict[str, Any]) -> int:
    return estimate({"tools": PRIOR_TOOLS, "system": list(blocks)})


def expected(chars: int = 0, tokens: int = 0) -> int:
    return (PRIOR_CHARS + chars) // 4 + PRIOR_TOKENS + tokens


def test_tool_definitions_count_names_descriptions_and_a_flat_cost() -> None:
    assert estimate({"tools": PRIOR_TOOLS}) == 60 // 4 + 200
    # A definition that is not an object is skipped, and the ones after it still count.
    assert estimate({"tools": ["junk", *PRIOR_TOOLS]}) == 60 // 4 + 200
    assert estimate({"tools": [{"name": "n" * 400}]}) == 100 + 100
    assert estimate({"tools": [{"description": "d" * 400}]}) == 100 + 100
    assert estimate({"tools": []}) == 0


@pytest.mark.parametrize(
    ("block", "chars", "tokens"),
    [
        ({"type": "text", "text": "x" * 400}, 400, 0),
        ({"type": "image", "source": {"type": "url", "url": "u"}}, 0, 1600),
        ({"type": "thinking", "thinking": "x" * 400, "signature": "s"}, 400, 0),
        ({"type": "redacted_thinking", "thinking": "x" * 400}, 400, 0),
        ({"type": "tool_use", "id": "t", "name": "n", "input": {"a": "x" * 400, "b": 3}}, 400, 20),
        ({"type": "tool_result", "tool_use_id": "t", "content": "x" * 400}, 400, 0),
        ({"type": "mystery"}, 0, 10),
        (
            {"type": "document", "source": {"type": "text", "data": "x" * 400}},
            400,
            0,
        ),
        ({"type": "document", "source": {"type": "url", "url": "u"}}, 0, PDF_TOKENS_PER_PAGE),
    ],
)
def test_each_block_kind_adds_to_the_estimate(
    block: dict[str, Any], chars: int, tokens: int
) -> None:
    assert with_system(block) == expected(chars, tokens)
    # and two of them count twice
    assert with_system(block, block) == expected(2 * chars, 2 * tokens)


def test_a_nested_tool_use_counts_as_one() -> None:
    use = {"type": "tool_use", "id": "t", "name": "n", "input": {"a": "x" * 400}}
    result = {"type": "tool_result", "tool_use_id": "t", "content": [use]}
    assert with_system(result) == expected(400, 20)


def pdf(data: str, source_type: str = "base64") -> dict[str, Any]:
    source = {"type": source_type, "media_type": "application/pdf", "data": data}
    if source_type == "url":
        source["url"] = "https://example.com/a.pdf"
    return {"type": "document", "source": source}


@pytest.mark.parametrize(
    ("length", "pages"),
    [
        (0, 1),  # an empty PDF is still a page
        (4, 1),
        (66_666, 1),  # 49 999 bytes
        (66_667, 1),  # 50 000.25 bytes, rounded down to 50 000: exactly one page
        (66_668, 2),  # 50 001 bytes
        (100_000, 2),  # 75 000 bytes: one and a half pages count as two
        (200_000, 3),
    ],
)
def test_a_base64_pdf_counts_whole_pages_of_its_decoded_size(length: int, pages: int) -> None:
    assert with_system(pdf("x" * length)) == expected(tokens=pages * PDF_TOKENS_PER_PAGE)


def test_a_pdf_by_url_counts_one_page_whatever_it_carries() -> None:
    assert with_system(pdf("x" * 200_000, "url")) == expected(tokens=PDF_TOKENS_PER_PAGE)


def test_assistant_documents_are_all_listed() -> None:
    doc = pdf("x")
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "assistant", "content": [doc, doc]}],
    }
    assert caproute.detect(body).assistant_documents == (
        ("messages", 0, "content", 0),
        ("messages", 0, "content", 1),
    )


CITED = {"type": "text", "text": "t", "citations": [{"type": "char_location"}]}


def search_result() -> dict[str, Any]:
    return {"type": "search_result", "source": "s", "title": "t", "content": [CITED]}


def citations_in(role: str, block: dict[str, Any]) -> tuple[Any, ...]:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": role, "content": [block]}]}
    return caproute.detect(body).user_text_citations


def test_search_result_text_is_the_user_turns_own_only_in_a_user_turn() -> None:
    assert citations_in("user", search_result()) == (("messages", 0, "content", 0, "content", 0),)
    assert citations_in("assistant", search_result()) == ()
    # nested in a tool result: a user turn's tool result still counts, an assistant's not
    nested = {"type": "tool_result", "tool_use_id": "t", "content": [search_result()]}
    assert len(citations_in("user", nested)) == 1
    assert citations_in("assistant", nested) == ()


def test_a_content_document_reads_its_blocks_in_the_turns_role() -> None:
    doc = {
        "type": "document",
        "source": {"type": "content", "content": [search_result()]},
    }
    assert citations_in("user", doc) == (
        ("messages", 0, "content", 0, "source", "content", 0, "content", 0),
    )
    assert citations_in("assistant", doc) == ()


def test_nested_blocks_are_followed_64_levels_deep_and_no_deeper() -> None:
    def nest(levels: int) -> dict[str, Any]:
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": "t", "content": "x" * 400}
        for _ in range(levels):
            block = {"type": "tool_result", "tool_use_id": "t", "content": [block]}
        return block

    def size(levels: int) -> int:
        message = {"role": "user", "content": [nest(levels)]}
        return estimate({"messages": [message]})

    # The outer block sits at a path of 4 keys; each level adds 2: the 64th level's
    # string is read, the 65th's is not.
    assert size(64) == 4 + 100
    assert size(65) == 4


def test_context_management_edits_without_a_string_type_need_nothing() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [],
        "context_management": {"edits": [{"type": 5}, {"kind": "x"}, {"type": "clear_x"}]},
    }
    assert caproute.detect(body).paths == ("context_management.clear_x",)


def test_sampling_values_are_kept_when_scalar() -> None:
    def params(value: Any) -> Any:
        body = {"model": "m", "max_tokens": 5, "messages": [], "temperature": value}
        return caproute.detect(body).params.sampling_value("temperature")

    assert params(None) is None
    assert params(0.5) == 0.5
    assert params("hot") == "hot"
    assert params([1]) == NOT_A_SCALAR
    assert params({"a": 1}) == NOT_A_SCALAR


def test_where_is_empty_for_a_capability_not_needed() -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [], "output_format": {"type": "json"}}
    needs = caproute.detect(body)
    assert needs.where("structured_outputs") == "output_format"
    assert needs.where("pdf_input") == ""
