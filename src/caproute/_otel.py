"""Decisions on the current OpenTelemetry span, when the application uses OpenTelemetry.

Agent frameworks trace through OpenTelemetry (pydantic-ai and Logfire natively,
LangSmith through its OTel exporter): a model call runs inside their span. Adding the
routing decision to that span puts it where a developer already looks, beside the
framework's own attributes, in any OTel backend.

caproute never imports OpenTelemetry. It acts only when ``opentelemetry.trace`` is
already in ``sys.modules`` (the application, Logfire or a framework imported it),
so ``import caproute`` stays light and a process without OTel pays one dictionary
lookup per decision. With the OTel API but no SDK configured, the current span is
the API's non-recording span and nothing is set either.

Which span: the one current when the request is routed. With anthropic 2.x's own
tracing on (a global tracer provider, or the client's ``open_telemetry`` option),
that is the SDK's span of the API call, a child of the framework's; otherwise the
framework's (or the application's) span. A non-recording current span (e.g. the
SDK's, with tracing configured only on a local provider) gets nothing.

Attributes (strings, set on the span current when the request is routed; a later
hop of the same call overwrites them, so the span shows the decision that was
sent): ``caproute.outcome``, ``caproute.model``, ``caproute.requested_model``,
``caproute.changes`` (``output_config.effort: max → high; ...``, ``none`` when
nothing changed), plus ``caproute.reason`` when the request was refused. Never a
key, never message content.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ._core.decision import Decision

__all__ = ["TRACE_MODULE", "annotate_current_span"]

TRACE_MODULE: Final = "opentelemetry.trace"
"""Imported by whoever uses OpenTelemetry; its presence is the signal to act."""


def annotate_current_span(decision: Decision) -> None:
    """Set the decision's attributes on the current span, if OTel is in use and recording."""
    trace = sys.modules.get(TRACE_MODULE)
    if trace is None:
        return
    span = trace.get_current_span()
    if not span.is_recording():
        return
    attributes = {
        "caproute.outcome": decision.outcome,
        "caproute.model": decision.model or "",
        "caproute.requested_model": decision.requested_model or "",
        "caproute.changes": "; ".join(str(change) for change in decision.changes) or "none",
    }
    if decision.rejected and decision.reason:
        attributes["caproute.reason"] = decision.reason
    span.set_attributes(attributes)
