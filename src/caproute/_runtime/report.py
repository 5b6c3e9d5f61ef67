"""Reporting routing decisions: to the ``on_decision`` hooks, the ``caproute`` logger
and the current OpenTelemetry span (when the app uses OpenTelemetry).

Log records: INFO for reroutes, adjustments and rejections, DEBUG otherwise; each
carries the decision's one-line summary and the `Decision` itself as
``record.caproute_decision``; never a key (any ``sk-ant-`` token is masked first),
never message content.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final, TypeAlias

from .._core.decision import Decision
from .._core.secrets import decision_has_secret, redact_decision
from .otel import annotate_current_span

__all__ = ["DecisionHook", "as_hooks", "report_decision"]

DecisionHook: TypeAlias = Callable[[Decision], object]
"""Called with every `Decision` (in the request's thread or task; keep it quick)."""

_LOUD_OUTCOMES: Final = frozenset({"adjusted", "rerouted", "rejected"})


def as_hooks(on_decision: DecisionHook | Sequence[DecisionHook] | None) -> tuple[DecisionHook, ...]:
    """One hook, several, or none, as a tuple."""
    if on_decision is None:
        return ()
    if callable(on_decision):
        return (on_decision,)
    return tuple(on_decision)


def report_decision(
    decision: Decision, hooks: Sequence[DecisionHook], logger: logging.Logger
) -> None:
    """Send `decision` to `hooks` and `logger`; a hook that raises is logged and skipped."""
    if decision_has_secret(decision):  # a key in a `model` field, say
        decision = redact_decision(decision)
    for hook in hooks:
        try:
            hook(decision)
        except Exception:
            logger.exception("caproute: on_decision hook %r failed", hook)
    annotate_current_span(decision)  # only when the app already uses OpenTelemetry
    level = logging.INFO if decision.outcome in _LOUD_OUTCOMES else logging.DEBUG
    # isEnabledFor first: the summary is only formatted when someone will read it.
    if logger.isEnabledFor(level):
        logger.log(level, "caproute: %s", decision.summary(), extra={"caproute_decision": decision})
