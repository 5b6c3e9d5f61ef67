"""Attribution edges mutmut found untested: the limit read from a max_tokens refusal,
the two-way tie rule on the smallest bodies, index paths written ``[0]``, and a
family-level refusal of a parameter family caproute knows no values of."""

from __future__ import annotations

from typing import Any

from caproute._core.learning import Attribution, attribute, classify

HI = [{"role": "user", "content": "hi"}]


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-x", "max_tokens": 4000, "messages": HI, **fields}


WEB_SEARCH = body(tools=[{"type": "web_search_20260318", "name": "web_search"}])


def test_a_max_tokens_limit_is_the_largest_positive_number_below_the_one_sent() -> None:
    assert attribute("max_tokens: 4000 > 1, the maximum for this model", body(), "m") == (
        Attribution("max_tokens", 1, "a 400 from m put max_tokens at 1")
    )
    assert attribute("max_tokens must be at most 0 here", body(), "m") is None
    # a max_tokens that is not an integer was not what the limit refused
    for sent in ("5000", True, 5000.0):
        refused = attribute("max_tokens: 5000 > 3000, the maximum", body(max_tokens=sent), "m")
        assert refused is None


def test_two_parameters_named_equally_teach_nothing_even_alone_in_a_body() -> None:
    # A count_tokens body takes no max_tokens: these two are its only parameters.
    counted = {"model": "x", "messages": HI, "temperature": 0.5, "top_k": 3}
    both = "`temperature` and `top_k` are deprecated for this model."
    assert classify(both, counted, "m", endpoint="count_tokens").fact is None
    assert attribute(both, {**counted, "max_tokens": 5}, "m") is None
    one = classify(
        "`temperature` is deprecated for this model.", counted, "m", endpoint="count_tokens"
    )
    assert one.fact == Attribution(
        "parameters.temperature", False, "a 400 from m refused temperature"
    )


def test_a_body_with_nothing_to_blame_teaches_nothing() -> None:
    assert attribute("anything at all is not supported", {}, "m") is None


def test_an_index_written_in_brackets_locates_the_tool() -> None:
    expected = Attribution(
        "server_tools.web_search", False, "a 400 from m named server_tools.web_search"
    )
    assert attribute("tools[0]: not supported on this model", WEB_SEARCH, "m") == expected
    assert attribute("tools.0: not supported on this model", WEB_SEARCH, "m") == expected


def test_a_family_named_without_its_member_refuses_the_family() -> None:
    # `server_tools` has no list of known values: the family itself is learned refused
    assert attribute("server tools are not supported on this model", WEB_SEARCH, "m") == (
        Attribution("server_tools", False, "a 400 from m named server_tools")
    )
