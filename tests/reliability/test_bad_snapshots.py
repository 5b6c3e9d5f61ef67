"""Item 3: a snapshot or cache file with wrong types or impossible values never breaks routing.

Before the fix a snapshot that was valid JSON with one wrong type (a string
``fetched_at``) loaded fine and then made every routed request raise ``TypeError``; a
hot reload of such a file in the proxy was counted ``ok`` and turned every Messages
request and ``/caproute/health`` into a 500. Now the file is validated completely at
load time: an explicit snapshot is refused with the file and the JSON path at fault, a
bad user cache file is skipped with a warning, a bad hot reload is refused and counted.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from reliability_helpers import API_KEY, HI, replace_and_see_refused, snapshot_proxy

import caproute
from caproute import SnapshotError, embedded_registry, load_snapshot
from caproute._registry.snapshot import initial_registry, user_cache_path
from caproute.testing import FakeAnthropic

Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    """An edit that sets the value at a dotted path (``models.0.max_tokens``)."""

    def edit(document: dict[str, Any]) -> None:
        node: Any = document
        *parents, last = path.split(".")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def snapshot_document() -> dict[str, Any]:
    """A valid snapshot document: the embedded lineup, as a live fetch would save it."""
    document = embedded_registry().to_json()
    document["source"].update(kind="live", fetched_at=1_795_000_000.0, location="https://x")
    return document


def _model_field(index: int, field: str) -> str:
    """How an error names a field of a model: ``models[0] (its id): max_tokens``."""
    return rf"models\[{index}\]( \([^)]*\))?: {re.escape(field)}:"


# (edit, a pattern for the JSON path the error must name)
BAD_VALUES: dict[str, tuple[Edit, str]] = {
    "fetched_at is a string": (_set("source.fetched_at", "yesterday"), "source.fetched_at"),
    "fetched_at is negative": (_set("source.fetched_at", -5.0), "source.fetched_at"),
    "fetched_at is a boolean": (_set("source.fetched_at", True), "source.fetched_at"),
    "kind is unknown": (_set("source.kind", "telepathy"), "source.kind"),
    "location is a number": (_set("source.location", 7), "source.location"),
    "max_tokens is 0": (_set("models.0.max_tokens", 0), _model_field(0, "max_tokens")),
    "max_tokens is negative": (_set("models.2.max_tokens", -1), _model_field(2, "max_tokens")),
    "max_tokens is a string": (_set("models.0.max_tokens", "8192"), _model_field(0, "max_tokens")),
    "max_tokens is a float": (_set("models.0.max_tokens", 8192.0), _model_field(0, "max_tokens")),
    "max_input_tokens is 0": (
        _set("models.0.max_input_tokens", 0),
        _model_field(0, "max_input_tokens"),
    ),
    "max_input_tokens is negative": (
        _set("models.3.max_input_tokens", -200_000),
        _model_field(3, "max_input_tokens"),
    ),
    "supported is a string": (
        _set("models.0.capabilities.batch.supported", "yes"),
        _model_field(0, "capabilities.batch.supported"),
    ),
    "supported is a number": (
        _set("models.0.capabilities.effort.low.supported", 1),
        _model_field(0, "capabilities.effort.low.supported"),
    ),
    "capabilities is a list": (_set("models.0.capabilities", []), _model_field(0, "capabilities")),
    "id is empty": (_set("models.1.id", ""), _model_field(1, "id")),
    "id is a number": (_set("models.1.id", 42), _model_field(1, "id")),
    "id is repeated": (_set("models.1.id", "claude-fable-5-2"), _model_field(1, "id")),
    "lifecycle is a list": (_set("models.0.lifecycle", ["active"]), _model_field(0, "lifecycle")),
    "created_at is not a date": (
        _set("models.0.created_at", "soon"),
        _model_field(0, "created_at"),
    ),
    "models is an object": (_set("models", {}), "models"),
    "a model is a string": (_set("models.0", "claude"), r"models\[0\]"),
    "an alias target is a number": (
        _set("aliases.claude-haiku-4-5", 5),
        "aliases.claude-haiku-4-5",
    ),
    "aliases is a list": (_set("aliases", []), "aliases"),
    "source is a string": (_set("source", "live"), "source"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_an_explicit_snapshot_with_a_bad_value_is_refused_naming_file_and_path(
    case: str, tmp_path: Path
) -> None:
    edit, where = BAD_VALUES[case]
    document = snapshot_document()
    edit(document)
    file = tmp_path / "snap.json"
    file.write_text(json.dumps(document))

    with pytest.raises(SnapshotError) as caught:
        load_snapshot(file)

    message = str(caught.value)
    assert str(file) in message
    assert re.search(where, message), message


def test_the_string_fetched_at_of_the_report_no_longer_breaks_routing(tmp_path: Path) -> None:
    # The exact probe: valid JSON, a string fetched_at. It used to load and then fail
    # every request with TypeError (float minus str in the registry age).
    document = snapshot_document()
    document["source"]["fetched_at"] = "2026-11-26T00:00:00Z"
    file = tmp_path / "snap.json"
    file.write_text(json.dumps(document))

    with pytest.raises(SnapshotError, match=r"source\.fetched_at"):
        load_snapshot(file)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_in_a_snapshot_are_refused(token: str, tmp_path: Path) -> None:
    text = json.dumps(snapshot_document()).replace(
        '"fetched_at": 1795000000.0', f'"fetched_at": {token}'
    )
    assert token in text
    file = tmp_path / "snap.json"
    file.write_text(text)

    with pytest.raises(SnapshotError, match=str(file)):
        load_snapshot(file)


def test_a_deeply_nested_snapshot_is_an_error_not_a_crash(tmp_path: Path) -> None:
    file = tmp_path / "snap.json"
    file.write_text(
        '{"format": "caproute-registry/1", "models": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )

    with pytest.raises(SnapshotError, match="nested too deeply"):
        load_snapshot(file)


def test_valid_snapshots_still_load_unchanged(tmp_path: Path) -> None:
    # Unknown keys (top level and nested), nulls and integral limits stay accepted.
    document = snapshot_document()
    document["models"][0]["teleport_window"] = {"seconds": "thirty"}
    document["models"][0]["capabilities"]["teleport"] = {"supported": "maybe"}
    document["models"][1]["max_tokens"] = None
    file = tmp_path / "snap.json"
    file.write_text(json.dumps(document))

    registry = load_snapshot(file)

    assert len(registry) == len(document["models"])
    assert registry.source.fetched_at == 1_795_000_000.0
    assert registry.limits(document["models"][0]["id"]).max_tokens == 128_000


# -- the user cache file -------------------------------------------------------------------


@pytest.mark.parametrize("case", ["fetched_at is a string", "max_tokens is 0", "id is repeated"])
def test_a_bad_user_cache_file_is_skipped_with_a_warning(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    edit, where = BAD_VALUES[case]
    document = snapshot_document()
    edit(document)
    cache = user_cache_path()
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps(document))

    with caplog.at_level(logging.WARNING, logger="caproute"):
        registry = initial_registry()

    assert registry.source.kind == "embedded"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(cache) in w and re.search(where, w) for w in warnings), warnings
    # ...and the router built on it routes.
    result = caproute.LiveRouter(registry).route(
        {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": HI}
    )
    assert result.decision.outcome == "unchanged"


# -- the proxy's hot reload ----------------------------------------------------------------


def test_a_bad_snapshot_reload_is_refused_counted_and_the_old_data_kept(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    with snapshot_proxy(fake, tmp_path) as (proxy, snapshot):
        before = proxy.app.router.registry
        document = snapshot_document()
        document["source"]["fetched_at"] = "yesterday"
        staging = tmp_path / "staging.json"
        staging.write_text(json.dumps(document))
        replace_and_see_refused(proxy, snapshot, staging)

        assert proxy.metric('caproute_proxy_snapshot_reloads_total{result="ok"}') == 0
        assert proxy.app.router.registry is before

        with httpx2.Client(base_url=proxy.url, headers={"x-api-key": API_KEY}) as http:
            health = http.get("/caproute/health")
            message = http.post(
                "/v1/messages",
                json={"model": "claude-haiku-4-5", "max_tokens": 16, "messages": HI},
                headers={"anthropic-version": "2023-06-01"},
            )
        assert health.status_code == 200
        assert health.json()["registry"]["models"] == len(before)
        assert message.status_code == 200
        assert message.headers["caproute-outcome"] == "unchanged"
