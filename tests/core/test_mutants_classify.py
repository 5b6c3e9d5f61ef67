"""What `classify` says about a refusal, in full: its kind, its reason (what the logs
and the decision show), the fact, and the error code kept. mutmut found the reasons
and the code of each early answer free to change."""

from __future__ import annotations

from typing import Any

import pytest

from caproute._core.learning import Attribution, classify

HI = [{"role": "user", "content": "hi"}]
BODY = {"model": "claude-x", "max_tokens": 4000, "messages": HI, "output_config": {"effort": "max"}}
ABOUT = "a refusal from claude-x about"
NOTHING = "nothing learned about claude-x"


@pytest.mark.parametrize(
    ("message", "body", "options", "expected"),
    [
        (
            "x",
            BODY,
            {"error_code": "organization_url_fetch_disabled"},
            (
                "organization",
                f"{ABOUT} the organization or account (error code "
                f"organization_url_fetch_disabled): {NOTHING}",
                None,
                "organization_url_fetch_disabled",
                "url_sources",
            ),
        ),
        (
            "x",
            BODY,
            {"error_type": "billing_error", "error_code": "some_new_code"},
            (
                "organization",
                f"{ABOUT} the organization or account (error type billing_error): {NOTHING}",
                None,
                "some_new_code",
                None,
            ),
        ),
        (
            "a message",
            BODY,
            {"error_type": "api_error", "error_code": "c"},
            (
                "unknown",
                f"{ABOUT} nothing caproute can attribute (no message to read): {NOTHING}",
                None,
                "c",
                None,
            ),
        ),
        (
            "",
            BODY,
            {"error_code": "c"},
            (
                "unknown",
                f"{ABOUT} nothing caproute can attribute (no message to read): {NOTHING}",
                None,
                "c",
                None,
            ),
        ),
        (
            "x",
            {"model": "m"},
            {"error_code": "c"},
            (
                "shape",
                f"{ABOUT} the request's shape (any model refuses it) (not a Messages body): "
                f"{NOTHING}",
                None,
                "c",
                None,
            ),
        ),
        (
            "image exceeds 5 MB",
            BODY,
            {"error_code": "c"},
            (
                "payload",
                f"{ABOUT} the size or count of the content (it says 'image exceeds'): {NOTHING}",
                None,
                "c",
                None,
            ),
        ),
        (
            "something odd",
            BODY,
            {"error_code": "c"},
            (
                "unknown",
                f"{ABOUT} nothing caproute can attribute (no parameter it names): {NOTHING}",
                None,
                "c",
                None,
            ),
        ),
        (
            "output_config.effort 'max' is not supported on this model.",
            BODY,
            {"error_code": "c"},
            (
                "model_capability",
                "a 400 from claude-x named effort.max",
                Attribution("effort.max", False, "a 400 from claude-x named effort.max"),
                "c",
                None,
            ),
        ),
        (
            "max_tokens: 4000 > 1000, the maximum",
            BODY,
            {},
            (
                "model_parameter",
                "a 400 from claude-x put max_tokens at 1000",
                Attribution("max_tokens", 1000, "a 400 from claude-x put max_tokens at 1000"),
                None,
                None,
            ),
        ),
        # an error code that is empty or not a string is no code
        (
            "something odd",
            BODY,
            {"error_code": ""},
            (
                "unknown",
                f"{ABOUT} nothing caproute can attribute (no parameter it names): {NOTHING}",
                None,
                None,
                None,
            ),
        ),
        (
            "something odd",
            BODY,
            {"error_code": 5},
            (
                "unknown",
                f"{ABOUT} nothing caproute can attribute (no parameter it names): {NOTHING}",
                None,
                None,
                None,
            ),
        ),
    ],
)
def test_classify_says_what_a_refusal_is_about(
    message: str, body: dict[str, Any], options: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    refusal = classify(message, body, "claude-x", **options)
    found = (
        refusal.kind.value,
        refusal.reason,
        refusal.fact,
        refusal.error_code,
        refusal.account_feature,
    )
    assert found == expected
