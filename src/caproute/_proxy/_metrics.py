"""Prometheus counters for the proxy, with a hand-written text exposition.

The proxy needs a handful of counters and one histogram; the text format (version
0.0.4) is a few lines of code, so no client library is pulled in. Everything runs on
the server's single event loop, so plain integers need no lock.

What is counted (names are stable, they end up in dashboards):

* ``caproute_proxy_requests_total{outcome}``: every request the proxy answered.
  ``outcome`` is the routing `Decision.outcome` for Messages requests, ``forwarded``
  for requests that are not routed (models, files, ...), ``local`` for requests the
  proxy answered itself (health, metrics, 401/408/413) and ``failed`` when the
  upstream could not be reached.
* ``caproute_proxy_reroutes_total``: requests sent to another model.
* ``caproute_proxy_adjustments_total``: requests whose parameters were edited
  (with or without a reroute).
* ``caproute_proxy_refusals_total``: requests the policy refused locally (400).
* ``caproute_proxy_upstream_errors_total{status}``: upstream answers >= 400 by status,
  plus ``unreachable`` / ``timeout`` when no answer came.
* ``caproute_proxy_client_disconnects_total``: callers that left mid-response.
* ``caproute_proxy_policy_reloads_total{result}`` and
  ``caproute_proxy_snapshot_reloads_total{result}``: ``ok`` / ``error``.
* ``caproute_proxy_in_flight``: requests being served now (gauge).
* ``caproute_proxy_response_seconds``: time from request start to the response
  headers being sent (for a stream: time to first byte), as a histogram.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

from .._core.decision import Decision

LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Upper bounds in seconds: from proxy overhead (ms) to long non-streaming calls."""


class Histogram:
    """A cumulative Prometheus histogram with fixed buckets."""

    def __init__(self, buckets: Iterable[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * len(self.bounds)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Record one observation (seconds)."""
        self.total += 1
        self.sum += value
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[index] += 1
                break

    def render(self, name: str) -> list[str]:
        """Exposition lines: cumulative ``_bucket``s, ``+Inf``, ``_sum`` and ``_count``."""
        lines: list[str] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            lines.append(f'{name}_bucket{{le="{_number(bound)}"}} {running}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.total}')
        lines.append(f"{name}_sum {_number(self.sum)}")
        lines.append(f"{name}_count {self.total}")
        return lines


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _escape(label_value: str) -> str:
    return label_value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, kind: str, help_text: str, samples: list[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def _labelled(name: str, label: str, counts: Counter[str]) -> list[str]:
    return [f'{name}{{{label}="{_escape(key)}"}} {counts[key]}' for key in sorted(counts)]


class ProxyMetrics:
    """The proxy's counters; `render()` returns the Prometheus text exposition."""

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.upstream_errors: Counter[str] = Counter()
        self.policy_reloads: Counter[str] = Counter()
        self.snapshot_reloads: Counter[str] = Counter()
        self.reroutes = 0
        self.adjustments = 0
        self.refusals = 0
        self.client_disconnects = 0
        self.in_flight = 0
        self.latency = Histogram()

    def record_decision(self, decision: Decision) -> None:
        """Count what the router did to one Messages request."""
        if decision.outcome == "rerouted":
            self.reroutes += 1
        if decision.outcome == "rejected":
            self.refusals += 1
        if any(change.action != "reroute" for change in decision.changes):
            self.adjustments += 1

    def record_upstream_error(self, status: int | str) -> None:
        """Count an upstream error status (>= 400), or ``unreachable`` / ``timeout``."""
        self.upstream_errors[str(status)] += 1

    def render(self) -> str:
        """The whole exposition, newline-terminated as the format requires."""
        lines = [
            *_family(
                "caproute_proxy_requests_total",
                "counter",
                "Requests answered, by routing outcome.",
                _labelled("caproute_proxy_requests_total", "outcome", self.requests),
            ),
            *self._counter(
                "caproute_proxy_reroutes_total", "Requests sent to another model.", self.reroutes
            ),
            *self._counter(
                "caproute_proxy_adjustments_total",
                "Requests whose parameters were edited.",
                self.adjustments,
            ),
            *self._counter(
                "caproute_proxy_refusals_total",
                "Requests refused by the routing policy.",
                self.refusals,
            ),
            *_family(
                "caproute_proxy_upstream_errors_total",
                "counter",
                "Upstream error answers by HTTP status (or unreachable/timeout).",
                _labelled("caproute_proxy_upstream_errors_total", "status", self.upstream_errors),
            ),
            *self._counter(
                "caproute_proxy_client_disconnects_total",
                "Callers that disconnected before the response ended.",
                self.client_disconnects,
            ),
            *_family(
                "caproute_proxy_policy_reloads_total",
                "counter",
                "Policy file reloads by result.",
                _labelled("caproute_proxy_policy_reloads_total", "result", self.policy_reloads),
            ),
            *_family(
                "caproute_proxy_snapshot_reloads_total",
                "counter",
                "Registry snapshot file reloads by result.",
                _labelled("caproute_proxy_snapshot_reloads_total", "result", self.snapshot_reloads),
            ),
            *_family(
                "caproute_proxy_in_flight",
                "gauge",
                "Requests being served.",
                [f"caproute_proxy_in_flight {self.in_flight}"],
            ),
            *_family(
                "caproute_proxy_response_seconds",
                "histogram",
                "Time until the response headers were sent.",
                self.latency.render("caproute_proxy_response_seconds"),
            ),
        ]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _counter(name: str, help_text: str, value: int) -> list[str]:
        return _family(name, "counter", help_text, [f"{name} {value}"])
