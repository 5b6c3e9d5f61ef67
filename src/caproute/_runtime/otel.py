"""Decisions on OpenTelemetry spans, when the application uses OpenTelemetry.

Agent frameworks trace through OpenTelemetry (pydantic-ai and Logfire natively,
LangSmith through its OTel exporter): a model call runs inside their span. Adding the
routing decision there puts it where a developer already looks, in any OTel backend.

caproute never imports OpenTelemetry. It acts only when ``opentelemetry.trace`` is
already in ``sys.modules`` (the application, Logfire, a framework or anthropic 2.x
imported it), so ``import caproute`` stays light. With the OTel API but no SDK
configured, the current span is the API's non-recording span and nothing is set.

Which span: the one current when the request is routed (the framework's or the
application's), with two exceptions where caproute records nothing:

* the current span is the anthropic SDK's own span of the API call (anthropic 2.x
  traces each call, instrumentation scope ``com.anthropic.sdk.python``). Writing
  ``caproute.*`` into it would change another library's instrumentation (its
  attributes follow the GenAI semantic conventions, and the SDK owns them), and a
  span of caproute's own beside it would change the trace the SDK produces (the SDK's
  own tests count its spans: checked with its suite, docs/sdk.md). The span that
  isn't the SDK's, the caller's, is not reachable from there (OpenTelemetry gives a
  span's parent as a context, not a span). The decision stays on the response headers,
  the hooks and the log;
* the client was built with ``open_telemetry=False`` (its traces off): the caller
  asked that client not to trace, and `wrap` passes that on (`client_tracing`).

Reporting never breaks a request: any error from OpenTelemetry (a broken provider, a
patched ``get_current_span`` that raises) is logged at DEBUG and the request goes on.

Attributes (strings; a later hop of the same call overwrites them on the current span,
so it shows the decision that was sent): ``caproute.outcome``, ``caproute.model``,
``caproute.requested_model``, ``caproute.changes`` (``output_config.effort: max →
high; ...``, ``none`` when nothing changed), plus ``caproute.reason`` when the request
was refused. Never a key, never message content.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import TYPE_CHECKING, Any, Final, NamedTuple

if TYPE_CHECKING:
    from .._core.decision import Decision

__all__ = ["TRACE_MODULE", "ClientTracing", "annotate_current_span", "client_tracing"]

TRACE_MODULE: Final = "opentelemetry.trace"
"""Imported by whoever uses OpenTelemetry; its presence is the signal to act."""

_SDK_SCOPE: Final = "com.anthropic.sdk"
"""The anthropic SDK's instrumentation scope (``com.anthropic.sdk.python[.platform]``)."""

_logger = logging.getLogger("caproute")


class ClientTracing(NamedTuple):
    """What the client being served says about tracing (its ``open_telemetry`` option)."""

    enabled: bool
    """False for a client built with ``open_telemetry=False``: annotate nothing."""


client_tracing: contextvars.ContextVar[ClientTracing | None] = contextvars.ContextVar(
    "caproute_client_tracing", default=None
)
"""Set by a shell around a call it routes for a client `wrap` knows (None: defaults)."""


def annotate_current_span(decision: Decision) -> None:
    """Put the decision on the current span (see the module docstring); never raises."""
    trace = sys.modules.get(TRACE_MODULE)
    if trace is None:
        return
    tracing = client_tracing.get()
    if tracing is not None and not tracing.enabled:
        return
    try:
        _annotate(trace, decision)
    except Exception:
        _logger.debug("caproute: could not annotate the OpenTelemetry span", exc_info=True)


def _annotate(trace: Any, decision: Decision) -> None:
    span = trace.get_current_span()
    if not span.is_recording():
        return
    scope = getattr(span, "instrumentation_scope", None)
    if str(getattr(scope, "name", "")).startswith(_SDK_SCOPE):
        return  # the SDK's span: not caproute's to write into (module docstring)
    attributes = {
        "caproute.outcome": decision.outcome,
        "caproute.model": decision.model or "",
        "caproute.requested_model": decision.requested_model or "",
        "caproute.changes": "; ".join(str(change) for change in decision.changes) or "none",
    }
    if decision.rejected and decision.reason:
        attributes["caproute.reason"] = decision.reason
    span.set_attributes(attributes)
