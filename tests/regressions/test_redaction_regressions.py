"""Keys never reach a decision hook: every field of a `Decision` that can hold text is
checked and masked (mutmut found `decision_has_secret` and `redact_decision` free to
skip fields: the logging filter masked the log lines anyway, so no test noticed that
the *decision* handed to a hook still held the key)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from caproute import MISSING, Candidate, Change, Decision, LiveRouter, Registry
from caproute._core.secrets import decision_has_secret, redact, redact_decision
from caproute._logs import RedactingFilter, protect, protect_uvicorn, redacting_streams
from caproute.testing import make_model

KEY = "sk-ant-api03-SECRETsecret123"
MASKED = "sk-ant-***"


def test_a_key_sent_as_the_model_never_reaches_a_hook() -> None:
    seen: list[Decision] = []
    router = LiveRouter(Registry.from_models([make_model("claude-a-2")]), on_decision=seen.append)
    body = {"model": KEY, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    router.route(body)

    [decision] = seen
    assert KEY not in repr(decision)
    assert decision.requested_model == MASKED


PLAIN = Decision("unchanged", "claude-a", "claude-a", needs=("effort.max",), route="r")


@pytest.mark.parametrize(
    "fields",
    [
        {"requested_model": KEY, "model": "claude-a"},
        {"requested_model": "claude-a", "model": KEY},
        {"needs": ("effort.max", f"x.{KEY}")},
        {"route": f"route-{KEY}"},
        {"extra": {"cause": f"401 {KEY}"}},
        {"reason": f"bad {KEY}"},
        {"notes": (f"note {KEY}",)},
        {"changes": (Change("model", KEY, "claude-a", "reroute", "r"),)},
        {"items": (("r1", Decision("unchanged", KEY, KEY)),)},
        {"candidates": (Candidate(KEY, True),), "reason": "x"},
    ],
)
def test_a_key_anywhere_in_a_decision_is_found_and_masked(fields: dict[str, Any]) -> None:
    fields = dict(fields)  # the parameter is shared between runs: never pop from it
    decision = Decision(
        fields.pop("outcome", "unchanged"),
        fields.pop("requested_model", "claude-a"),
        fields.pop("model", "claude-a"),
        **fields,
    )
    assert decision_has_secret(decision)
    masked = redact_decision(decision)
    assert KEY not in repr(masked)
    assert MASKED in repr(masked)


def test_a_decision_without_a_key_is_left_as_it_is() -> None:
    assert not decision_has_secret(PLAIN)
    assert redact_decision(PLAIN) is PLAIN
    changed = Decision("adjusted", "a", "a", changes=(Change("top_k", 5, MISSING, "strip", "r"),))
    assert not decision_has_secret(changed)
    assert redact_decision(changed) is changed


def holding(text: str, resolved: str) -> Decision:
    """A decision with `text` in every text field (and `resolved` as the model sent)."""
    return Decision(
        "rerouted",
        text,
        resolved,
        needs=(text,),
        candidates=(Candidate(text, False, f"why {text}"), Candidate("claude-b", True)),
        changes=(
            Change(f"tools[0].{text}", {text: [text, 1]}, (text, True), "strip", f"lacks {text}"),
        ),
        reason=f"r {text}",
        notes=(f"n {text}",),
        route=text,
        registry_source=f"live ({text})",
        registry_age_s=5.0,
        items=((text, Decision("unchanged", text, text)),),
        extra={"k": [text], "n": 3},
    )


def test_every_text_field_is_masked_and_nothing_else_changes() -> None:
    # The key runs to the end of its token: `KEY-b` is masked whole.
    assert redact_decision(holding(KEY, f"{KEY}-b")) == holding(MASKED, MASKED)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"invalid x-api-key: {KEY}", f"invalid x-api-key: {MASKED}"),
        ("SK-ANT-API03-abc def", f"{MASKED} def"),
        (f'"{KEY}",({KEY})', f'"{MASKED}",({MASKED})'),
        ("no key here", "no key here"),
    ],
)
def test_redact_masks_each_token_to_its_end(text: str, shown: str) -> None:
    assert redact(text) == shown


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, Collect]]:
    logger = logging.getLogger("tests.regressions.redaction")
    handler = Collect()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    protect(logger)
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)
        logger.filters.clear()


def test_a_log_record_is_masked_in_its_message_and_traceback(
    logged: tuple[logging.Logger, Collect],
) -> None:
    logger, handler = logged
    logger.info("refused: %s", f"invalid x-api-key: {KEY}")
    try:
        raise ValueError(f"bad key {KEY}")
    except ValueError:
        logger.exception("failed")
    logger.info("nothing secret %s", "here")
    decision = Decision("unchanged", KEY, KEY)
    logger.info("d", extra={"caproute_decision": decision})

    first, failure, plain, with_decision = handler.records
    assert (first.msg, first.args) == (f"refused: invalid x-api-key: {MASKED}", None)
    assert first.getMessage() == f"refused: invalid x-api-key: {MASKED}"
    assert failure.exc_info is None  # dropped: a formatter can't re-render the key
    assert failure.exc_text is not None
    assert f"ValueError: bad key {MASKED}" in failure.exc_text
    assert KEY not in failure.exc_text
    assert (plain.msg, plain.args) == ("nothing secret %s", ("here",))
    assert with_decision.caproute_decision.requested_model == MASKED


def test_a_traceback_without_a_key_is_kept_whole(logged: tuple[logging.Logger, Collect]) -> None:
    logger, handler = logged
    try:
        raise ValueError("plain")
    except ValueError:
        logger.exception("failed")
    [record] = handler.records
    assert record.exc_info is not None
    assert record.exc_text is not None
    assert record.exc_text.endswith("ValueError: plain")


def test_protect_adds_one_filter_once() -> None:
    logger = logging.getLogger("tests.regressions.protect-once")
    try:
        assert protect(protect(logger)) is logger
        assert sum(isinstance(f, RedactingFilter) for f in logger.filters) == 1
    finally:
        logger.filters.clear()


def test_uvicorn_loggers_can_be_protected() -> None:
    protect_uvicorn()
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, RedactingFilter) for f in filters) == 1


def test_cli_output_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    with redacting_streams():
        print(f"key {KEY}")
        sys.stderr.writelines([f"a {KEY}\n", "b\n"])
        assert sys.stdout.write("x") == 1
        encoding = sys.stdout.encoding  # other attributes are the stream's own
    out, err = capsys.readouterr()
    assert out == f"key {MASKED}\nx"
    assert err == f"a {MASKED}\nb\n"
    assert encoding == sys.stdout.encoding


@pytest.mark.parametrize(
    "decision",
    [
        Decision("passthrough", None, None),
        Decision("passthrough", "claude-a", None),
        Decision("unchanged", None, "claude-a"),
    ],
)
def test_a_decision_without_models_is_checked_too(decision: Decision) -> None:
    assert not decision_has_secret(decision)
    assert redact_decision(decision) is decision
