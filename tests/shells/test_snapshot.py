"""Snapshot files: atomic save, clear load errors, start-up order, the embedded lineup."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from caproute import (
    Limits,
    ModelInfo,
    Registry,
    RegistrySource,
    SnapshotError,
    Support,
    embedded_registry,
    load_snapshot,
    save_snapshot,
)
from caproute._registry.snapshot import initial_registry, user_cache_path
from caproute.testing import make_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the user cache at a temporary directory (never the real home)."""
    xdg = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    return xdg / "caproute" / "registry.json"


def future_model() -> dict[str, Any]:
    """A model using keys the API might add later, top level and nested."""
    model = make_model("claude-future-9")
    model["teleport_window"] = {"seconds": 30}
    model["capabilities"]["effort"]["ultra"] = {"supported": True}
    model["capabilities"]["teleport"] = {"supported": False, "lanes": {"supported": True}}
    return model


def live_registry(*raw: dict[str, Any]) -> Registry:
    source = RegistrySource("live", fetched_at=1_795_000_000.0, location="https://api.test")
    return Registry.from_models(raw, source=source, aliases={"claude-future": "claude-future-9"})


# -- save / load ---------------------------------------------------------------------------


def test_round_trip_keeps_unknown_keys_aliases_and_fetch_time(tmp_path: Path) -> None:
    path = save_snapshot(live_registry(future_model()), tmp_path / "nested" / "snap.json")
    loaded = load_snapshot(path)

    assert loaded.source == RegistrySource(
        "snapshot", fetched_at=1_795_000_000.0, location=str(path)
    )
    assert loaded.supports("claude-future", "effort.ultra") is Support.SUPPORTED
    assert loaded.supports("claude-future-9", "teleport") is Support.UNSUPPORTED
    # below an explicit "supported: false" the API's own leaf still wins
    assert loaded.supports("claude-future-9", "teleport.lanes") is Support.SUPPORTED
    assert loaded.supports("claude-future-9", "teleport.warp") is Support.UNSUPPORTED
    assert loaded.supports("claude-future-9", "hyperspace") is Support.UNKNOWN
    info = loaded.get("claude-future")
    assert isinstance(info, ModelInfo)
    assert info.to_api_dict() == future_model()
    assert info.model_extra == {"teleport_window": {"seconds": 30}}


def test_save_is_atomic_and_leaves_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "snap.json"
    save_snapshot(live_registry(make_model("claude-a-1")), path)
    before = path.read_text()

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(SnapshotError, match=r"cannot write snapshot .*No space left on device"):
        save_snapshot(live_registry(make_model("claude-b-1")), path)
    assert path.read_text() == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["snap.json"]


def test_snapshot_document_format(tmp_path: Path) -> None:
    path = save_snapshot(live_registry(make_model("claude-a-1")), tmp_path / "s.json")
    document = json.loads(path.read_text())
    assert document["format"] == "caproute-registry/1"
    assert document["source"]["kind"] == "live"
    assert document["aliases"] == {"claude-future": "claude-future-9"}
    assert [m["id"] for m in document["models"]] == ["claude-a-1"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "snapshot file not found: "),
        ("{not json", ":1:2: snapshot is not valid JSON: Expecting property name"),
        ("[1, 2]", "is not a JSON object"),
        ('{"format": "other/1", "models": []}', "not a caproute registry snapshot"),
        ('{"format": "caproute-registry/1"}', "snapshot has no 'models' list"),
        (
            '{"format": "caproute-registry/1", "models": [{"display_name": "x"}]}',
            "invalid model entry models[0]: id: Field required",
        ),
        (
            '{"format": "caproute-registry/1", "models": [], "source": "live"}',
            "snapshot 'source' must be an object",
        ),
        (
            '{"format": "caproute-registry/1", "models": [], "aliases": ["a"]}',
            "snapshot 'aliases' must be an object",
        ),
    ],
)
def test_bad_snapshots_raise_a_clear_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_directory_is_not_a_snapshot(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="cannot read snapshot"):
        load_snapshot(tmp_path)


# -- start-up order ----------------------------------------------------------------------


def test_user_cache_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert user_cache_path() == tmp_path / "xdg-cache" / "caproute" / "registry.json"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # the spec says: ignore it
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache_path() == tmp_path / "home" / ".cache" / "caproute" / "registry.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert user_cache_path() == tmp_path / "home" / ".cache" / "caproute" / "registry.json"


def test_start_up_order_snapshot_then_cache_then_embedded(
    tmp_path: Path, isolated_cache: Path
) -> None:
    assert initial_registry() is embedded_registry()

    save_snapshot(live_registry(make_model("claude-cached-1")), isolated_cache)
    cached = initial_registry()
    assert cached.ids == ("claude-cached-1",)
    assert cached.source.kind == "cache"
    assert cached.source.location == str(isolated_cache)
    assert cached.source.fetched_at == 1_795_000_000.0
    assert initial_registry(use_cache=False) is embedded_registry()

    explicit = save_snapshot(live_registry(make_model("claude-file-1")), tmp_path / "x.json")
    assert initial_registry(explicit).ids == ("claude-file-1",)
    with pytest.raises(SnapshotError, match="not found"):
        initial_registry(tmp_path / "missing.json")


def test_a_corrupt_cache_file_is_skipped_with_a_warning(
    isolated_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    isolated_cache.parent.mkdir(parents=True)
    isolated_cache.write_text("{truncated")
    with caplog.at_level(logging.WARNING, logger="caproute.registry"):
        assert initial_registry() is embedded_registry()
    assert "ignoring the registry cache file" in caplog.text


# -- the embedded snapshot -----------------------------------------------------------------


def test_embedded_snapshot_is_stamped_and_loaded_once() -> None:
    registry = embedded_registry()
    assert registry is embedded_registry()
    assert registry.source.kind == "embedded"
    assert registry.source.describes == "2026-11-26"
    assert registry.source.fetched_at is None


def test_embedded_snapshot_states_the_documented_facts() -> None:
    r = embedded_registry()
    # Opus 5.5: adaptive thinking only, and it cannot be switched off.
    assert r.supports("claude-opus-5-5", "thinking.types.adaptive") is Support.SUPPORTED
    assert r.supports("claude-opus-5-5", "thinking.types.enabled") is Support.UNSUPPORTED
    assert r.supports("claude-opus-5-5", "thinking.types.disabled") is Support.UNSUPPORTED
    # Sonnet 5: manual thinking is a 400.
    assert r.supports("claude-sonnet-5", "thinking.types.enabled") is Support.UNSUPPORTED
    # Haiku 4.5: 200K / 64K, manual thinking, no effort; reachable by its alias.
    assert r.resolve("claude-haiku-4-5") == "claude-haiku-4-5-20251001"
    assert r.limits("claude-haiku-4-5") == Limits(200_000, 64_000)
    assert r.supports("claude-haiku-4-5", "thinking.types.enabled") is Support.SUPPORTED
    assert r.supports("claude-haiku-4-5", "effort.low") is Support.UNSUPPORTED
    # What the docs do not say stays unknown.
    assert r.supports("claude-mythos-5-2", "image_input") is Support.UNKNOWN
    assert r.limits("claude-mythos-5-2") == Limits(None, None)
    # Lifecycles as the SDK data states them.
    sonnet_4_5 = r.get("claude-sonnet-4-5")
    assert sonnet_4_5 is not None and sonnet_4_5.lifecycle == "deprecated"
    assert r.is_retired("claude-opus-4-1")
    assert {m.line for m in r} == {"fable", "mythos", "haiku", "sonnet", "opus"}


def test_embedded_snapshot_matches_its_generator() -> None:
    script = REPO / "scripts" / "make_embedded_snapshot.py"
    done = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_each_base_url_gets_its_own_cache_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    public = user_cache_path()
    assert user_cache_path("https://api.anthropic.com/") == public
    local = user_cache_path("http://127.0.0.1:8787")
    other = user_cache_path("http://127.0.0.1:9999")
    assert local.parent == public.parent == tmp_path / "caproute"
    assert len({public, local, other}) == 3
    assert local.name.startswith("registry-127.0.0.1_8787-")


def test_a_fetch_from_another_endpoint_never_replaces_the_public_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    gateway = Registry.from_models(
        [{"id": "claude-gateway-only", "type": "model"}],
        source=RegistrySource("live", location="http://gateway.invalid"),
    )
    save_snapshot(gateway, user_cache_path("http://gateway.invalid"))
    assert initial_registry() is embedded_registry()
    assert initial_registry(base_url="http://gateway.invalid").ids == ("claude-gateway-only",)
