"""A fake Anthropic API for tests: a real HTTP server on 127.0.0.1 that validates like the API.

Use it to test routing offline: a request the real API would reject (a PDF sent to a
model without ``pdf_input``, ``temperature`` under API version 2026-10-21, a
``budget_tokens`` not below ``max_tokens``...) is rejected here too, with the API's
status, error body and a message naming the offending JSON path.

Quick start::

    from caproute.testing import FakeAnthropic, make_model

    models = [
        make_model("claude-big-2", max_tokens=128_000),
        make_model("claude-small-1", unsupported=["image_input", "effort.max"]),
    ]
    with FakeAnthropic(models=models, api_key="test-key") as fake:
        fake.url                           # "http://127.0.0.1:53127"
        client = fake.client()             # anthropic.Anthropic(base_url=fake.url, ...)
        client.messages.create(model="claude-small-1", max_tokens=100,
                               messages=[{"role": "user", "content": "hi"}])
        fake.requests[-1].model            # "claude-small-1"
        fake.count("/v1/messages")         # 1

Endpoints: ``GET /v1/models`` (``limit`` 1..1000, ``after_id``, ``before_id``,
``lifecycle[]``; default active+deprecated; ``beta=true`` ignored),
``GET /v1/models/{id_or_alias}``, ``POST /v1/messages`` (JSON or SSE with
``"stream": true``), ``POST /v1/messages/count_tokens``, and Message Batches
(``POST/GET /v1/messages/batches``, ``GET .../{id}``, ``POST .../{id}/cancel``,
``GET .../{id}/results`` (JSONL), ``DELETE .../{id}``). A batch ends the first time it
is retrieved after its processing time (default 0); cancel it before that and every
unprocessed item comes back ``canceled``. Invalid batch items come back as ``errored``
result lines, as in the API; ``fake.batches.configure(processing_s=2, errored=0.1,
expired=0.05, seed=7)`` adds processing time and a deterministic share of errored
and expired results. Every request
needs an ``anthropic-version`` header (``2023-06-01`` or ``2026-10-21``).

Catalogue: ``models=`` takes Models API dicts, newest first; `make_model` builds one
that supports everything except the dotted paths in ``unsupported=``. Default: the
models of caproute's embedded registry snapshot (or a small built-in lineup).
Aliases: ``aliases={"claude-x": "claude-x-20250101"}``, and dated ids always answer
to their undated alias. Change it while running::

    fake.set_models([...])
    fake.update_model("claude-small-1", unsupported=["pdf_input"], max_tokens=4096)
    fake.update_model("claude-small-1", capabilities={"batch": {"supported": False}})
    fake.retire("claude-small-1")          # unlisted by default; inference → 404
    fake.overload("claude-big-2")          # every /v1/messages call → 529 until...
    fake.clear_overload("claude-big-2")

Faults (per-path FIFO, consumed one per request; a path ending in ``*`` is a
prefix)::

    fake.faults.add("/v1/models", status=429, headers={"retry-after": "2"}, times=1)
    fake.faults.add("/v1/models", status=500, x_should_retry=False)
    fake.faults.add("/v1/models", delay=0.5)            # slow, then a normal answer
    fake.faults.add("/v1/models", malformed=True)       # 200 with invalid JSON
    fake.faults.add("/v1/models", truncated=True)       # connection dropped mid-body
    fake.faults.add("/v1/messages", truncated=True)     # SSE stream cut halfway
    fake.faults.add("/v1/messages", stream_error="overloaded_error")  # SSE error event
    fake.faults.add("/v1/models*", status=503, times=None)  # until fake.faults.clear()

Standing refusals (API-side behaviour that starts mid-run; `Refusals`)::

    fake.refusals.disable_url_fetch("sk-b")   # URL sources off for sk-b's organization
    fake.refusals.refuse_parameter("claude-x", "temperature")  # "...deprecated for this model."
    fake.faults.add("/v1/messages", status=400, error_code="image_dimensions_too_large",
                    details={"max_side_length_pixels": 8000, "paths": ["messages.0.content.0"]})

Payload limits are checked as the API checks them: a base64 image over 5 MB, more
than 100 images and documents in one request.

Keys: ``FakeAnthropic(api_key="sk-a", keys={"sk-b": ["claude-x"]},
models_forbidden=["sk-b"])`` accepts a second key that sees (and may use) only
``claude-x``, as organizations and workspaces see different lineups, and whose
``GET /v1/models`` is a 403.

Introspection: ``fake.requests`` (`RecordedRequest`: method, path, query, lower-cased
headers, parsed JSON body, requested model), ``fake.count(prefix)``; ``fake.reset()``
restores the state after construction (catalogue included). ``fake.stream_delay``
sets the pause between SSE events (none before the first), for time-to-first-byte
tests. ``fake.headers()`` gives auth + version headers for hand-made requests.

pytest: add ``pytest_plugins = ["caproute.testing.pytest_plugin"]`` to a conftest for
a ``fake_anthropic`` fixture: one fake per test module, reset for each test, built
from the ``fake_anthropic_options`` fixture (default catalogue, ``api_key="test-key"``;
override it for another lineup). Starting and stopping take a few milliseconds.
Closing removes the registry cache file caproute keeps for the fake's URL (a routed
client that fetched its lineup wrote it), so fakes on random ports leave nothing behind.

Not imported by ``import caproute``; importing this package pulls in uvicorn but not
the anthropic SDK (``fake.client()`` imports it when called).
"""

from __future__ import annotations

from ._app import RecordedRequest
from ._catalogue import builtin_models, make_model
from ._faults import PARAMETER_REFUSALS, URL_FETCH_DISABLED, Fault, FaultQueue, Refusals
from ._lineups import GeneratedLineup, random_lineup, random_request, verdict
from ._replies import call_tools
from ._server import FakeAnthropic

__all__ = [
    "PARAMETER_REFUSALS",
    "URL_FETCH_DISABLED",
    "FakeAnthropic",
    "Fault",
    "FaultQueue",
    "GeneratedLineup",
    "RecordedRequest",
    "Refusals",
    "builtin_models",
    "call_tools",
    "make_model",
    "random_lineup",
    "random_request",
    "verdict",
]
