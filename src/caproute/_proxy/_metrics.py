"""The proxy's Prometheus metrics, with `prometheus-client` (the ``proxy`` extra).

Each `ProxyMetrics` has its own ``CollectorRegistry`` (tests build many apps in one
process). With ``--workers N`` every worker is a process of its own: `serve_proxy`
then points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the workers
start, each worker writes its values there, and ``/caproute/metrics`` (whichever
worker answers it) reports the sum over all workers (`multiprocess_dir`). Gauges
are summed over live workers. Without workers the values live in memory.

What is counted (names are stable, they end up in dashboards):

* ``caproute_proxy_requests_total{outcome, requested_model, model, status}``: every
  request answered. ``outcome`` is the routing `Decision.outcome` for Messages
  requests, ``forwarded`` for requests that are not routed (models, files...),
  ``bypassed`` (``caproute-bypass``), ``local`` for answers the proxy wrote itself
  (health, metrics, 401/408/413/431) and ``failed`` when the upstream could not be
  reached; ``status`` the HTTP status sent. ``requested_model`` is what the caller
  asked for, ``model`` what it was sent to (empty when none). Only names of the
  shared lineup (`ProxyMetrics.lineup`: the proxy's own registry, the embedded or
  ``--snapshot`` lineup in pass-through mode, the own key's in own-key mode) become
  label values; any other name is counted as ``other``. So the page shows no model
  only some caller's key can see (anyone who may read it may see the shared lineup
  at ``/caproute/registry`` anyway), and caller-chosen names can neither grow the
  label set nor crowd real models out. At most `MAX_MODEL_LABELS` distinct names are
  used per process (a lineup is far smaller).
* ``caproute_proxy_tokens_total{model, kind}``: tokens the upstream reported in
  answers' ``usage`` (streams included): ``input``, ``output``, ``cache_read``,
  ``cache_creation``.
* ``caproute_proxy_reroutes_total``, ``caproute_proxy_adjustments_total``,
  ``caproute_proxy_refusals_total``: what routing did.
* ``caproute_proxy_upstream_errors_total{status}``: upstream answers >= 400, plus
  ``unreachable`` / ``timeout`` when no answer came.
* ``caproute_proxy_client_disconnects_total``: callers that left mid-response.
* ``caproute_proxy_limit_rejections_total{limit}``: requests and connections refused
  by a resource limit (``header_bytes``, ``header_count``, ``header_timeout``,
  ``connections``, ``body_bytes``, ``body_timeout``, ``json_values``).
* ``caproute_proxy_registry_fetches_total{result}``: caller registry fetches
  (pass-through mode): ``ok``, ``denied`` (401/403), ``error``.
* ``caproute_proxy_policy_reloads_total{result}``,
  ``caproute_proxy_snapshot_reloads_total{result}``: ``ok`` / ``error``.
* ``caproute_proxy_in_flight`` (gauge), ``caproute_proxy_caller_registries`` (gauge).
* ``caproute_proxy_response_seconds``: time from request start to the response
  headers (for a stream: time to first byte), a histogram.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Container
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from .._core.decision import Decision
    from ._exchange import Exchange

LATENCY_BUCKETS: Final = (
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

MAX_MODEL_LABELS: Final = 200
"""Distinct model names used as label values per process; others become ``other``."""
OTHER: Final = "other"
"""The label value of every model name outside the shared lineup."""
_MAX_REJECTED: Final = 4096
"""Names remembered as outside the lineup (a cache: cleared when full or the lineup changes)."""

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


class _ModelLabels:
    """Label values for model names: a name of the shared lineup, else ``other``.

    Callers choose model names, and a name only one caller's key can see must not be
    shown to every reader of the metrics. A name admitted once keeps its label (a
    series must not change its name); at most `limit` are admitted. Names found
    outside the lineup are remembered until the lineup object changes (a reload, an
    own-key refresh), so junk names cost one dict lookup each.
    """

    def __init__(self, limit: int) -> None:
        self._seen: set[str] = set()
        self._limit = limit
        self._rejected: set[str] = set()
        self._rejected_for: object = None

    def __call__(self, value: str | None, lineup_of: Callable[[], Container[str]] | None) -> str:
        if not value:
            return ""
        if value in self._seen:
            return value
        lineup = lineup_of() if lineup_of is not None else None
        if lineup is not self._rejected_for or len(self._rejected) >= _MAX_REJECTED:
            self._rejected = set()
            self._rejected_for = lineup
        if value in self._rejected:
            return OTHER
        if lineup is None or value not in lineup or len(self._seen) >= self._limit:
            self._rejected.add(value)
            return OTHER
        self._seen.add(value)
        return value


_COUNTERS: Final = (
    (
        "requests",
        "caproute_proxy_requests",
        "Requests answered, by routing outcome, models and status.",
        ("outcome", "requested_model", "model", "status"),
    ),
    (
        "tokens",
        "caproute_proxy_tokens",
        "Tokens the upstream reported in answers' usage, by model and kind.",
        ("model", "kind"),
    ),
    ("reroutes", "caproute_proxy_reroutes", "Requests sent to another model.", ()),
    ("adjustments", "caproute_proxy_adjustments", "Requests whose parameters were edited.", ()),
    ("refusals", "caproute_proxy_refusals", "Requests refused by the routing policy.", ()),
    (
        "upstream_errors",
        "caproute_proxy_upstream_errors",
        "Upstream error answers by HTTP status (or unreachable/timeout).",
        ("status",),
    ),
    (
        "client_disconnects",
        "caproute_proxy_client_disconnects",
        "Callers that disconnected before the response ended.",
        (),
    ),
    (
        "limit_rejections",
        "caproute_proxy_limit_rejections",
        "Requests and connections refused by a resource limit.",
        ("limit",),
    ),
    (
        "registry_fetches",
        "caproute_proxy_registry_fetches",
        "Caller registry fetches (pass-through mode) by result.",
        ("result",),
    ),
    (
        "policy_reloads",
        "caproute_proxy_policy_reloads",
        "Policy file reloads by result.",
        ("result",),
    ),
    (
        "snapshot_reloads",
        "caproute_proxy_snapshot_reloads",
        "Registry snapshot file reloads by result.",
        ("result",),
    ),
)
"""The counters: ``(attribute, metric name, help, label names)``."""


class ProxyMetrics:
    """The proxy's metrics; `render()` gives the Prometheus text exposition."""

    requests: Counter
    tokens: Counter
    reroutes: Counter
    adjustments: Counter
    refusals: Counter
    upstream_errors: Counter
    client_disconnects: Counter
    limit_rejections: Counter
    registry_fetches: Counter
    policy_reloads: Counter
    snapshot_reloads: Counter

    CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
    """Text format 0.0.4: what every Prometheus version (and other scrapers) reads."""

    def __init__(self, *, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir or os.environ.get(MULTIPROC_ENV) or None
        registry = self.registry = CollectorRegistry()
        for attribute, name, documentation, labels in _COUNTERS:
            setattr(self, attribute, Counter(name, documentation, labels, registry=registry))
        self.in_flight_gauge = Gauge(
            "caproute_proxy_in_flight",
            "Requests being served.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.caller_registries = Gauge(
            "caproute_proxy_caller_registries",
            "Caller registries held (pass-through mode).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.latency = Histogram(
            "caproute_proxy_response_seconds",
            "Time until the response headers were sent.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = 0
        """Requests being served by this process (what tests and health read)."""
        self.lineup: Callable[[], Container[str]] | None = None
        """The shared lineup in force (`ProxyApp` sets it to its own router's registry);
        model names outside it are labelled ``other`` (all of them while unset)."""
        self._model_label = _ModelLabels(MAX_MODEL_LABELS)
        # Labelled children by label values: `labels()` validates and locks on every
        # call (~3 µs); a dict lookup is enough once a combination has been seen. The
        # label values are bounded (see `MAX_MODEL_LABELS`), so these dicts are too.
        self._request_children: dict[tuple[str, str, str, str], Any] = {}
        self._token_children: dict[tuple[str, str], Any] = {}

    # -- recording ---------------------------------------------------------------------------

    def started(self) -> None:
        """A request began."""
        self.in_flight += 1
        self.in_flight_gauge.inc()

    def ended(self, exchange: Exchange) -> None:
        """A request ended: count what it did (`exchange`, settled)."""
        self.in_flight -= 1
        self.in_flight_gauge.dec()
        status = exchange.status
        models = (exchange.requested_model, exchange.sent_model)
        self.record_request(exchange.outcome, exchange.decision, status, models)
        if status >= 400 and exchange.outcome not in ("local", "failed", "rejected"):
            self.record_upstream_error(status)
        if exchange.client_left:
            self.client_disconnects.inc()
        if exchange.headers_sent_at is not None:
            self.latency.observe(exchange.headers_sent_at - exchange.started)
        if exchange.tokens:
            self.record_tokens(exchange.sent_model, exchange.tokens)

    def record_request(
        self,
        outcome: str,
        decision: Decision | None,
        status: int,
        models: tuple[str | None, str | None] | None = None,
    ) -> None:
        """Count one answered request.

        Args:
            outcome: How it ended (the decision's outcome, ``forwarded``, ``local``...).
            decision: The routing decision, if one came back.
            status: The HTTP status sent.
            models: ``(requested, sent to)``, default the decision's.
        """
        if models is None:
            models = (decision.requested_model, decision.model) if decision else (None, None)
        requested = self._model_label(models[0], self.lineup)
        model = self._model_label(models[1], self.lineup)
        values = (outcome, requested, model, str(status or ""))
        child = self._request_children.get(values)
        if child is None:
            child = self._request_children[values] = self.requests.labels(*values)
        child.inc()
        if decision is not None:
            if decision.outcome == "rerouted":
                self.reroutes.inc()
            if decision.outcome == "rejected":
                self.refusals.inc()
            if any(change.action != "reroute" for change in decision.changes):
                self.adjustments.inc()

    def record_tokens(self, model: str | None, tokens: dict[str, int]) -> None:
        """Count the tokens one answer reported."""
        name = self._model_label(model, self.lineup) or "unknown"
        for kind, count in tokens.items():
            if count:
                child = self._token_children.get((name, kind))
                if child is None:
                    child = self._token_children[name, kind] = self.tokens.labels(name, kind)
                child.inc(count)

    def record_upstream_error(self, status: int | str) -> None:
        """Count an upstream error status (>= 400), or ``unreachable`` / ``timeout``."""
        self.upstream_errors.labels(str(status)).inc()

    def record_limit(self, limit: str) -> None:
        """Count a refusal by a resource limit."""
        self.limit_rejections.labels(limit).inc()

    # -- exposition --------------------------------------------------------------------------

    def render(self) -> bytes:
        """The text exposition: this process's values, or every worker's summed."""
        if self.multiprocess_dir:
            from prometheus_client import multiprocess

            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
                combined, path=self.multiprocess_dir
            )
            return generate_latest(combined)
        return generate_latest(self.registry)
