"""The proxy's pure pieces: header rules, config validation, metrics exposition, file watching."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import Counter
from pathlib import Path

import pytest
from proxy_helpers import metric_value

from caproute import ConfigError, PolicyError
from caproute._core.decision import Decision
from caproute._proxy import ProxyConfig
from caproute._proxy._headers import (
    downstream_response_headers,
    presented_token,
    token_matches,
    upstream_request,
)
from caproute._proxy._metrics import MAX_MODEL_LABELS, ProxyMetrics
from caproute._proxy._reload import FileWatcher
from caproute._proxy._signals import sighup_handler

CALLER = [
    (b"host", b"localhost:8787"),
    (b"content-length", b"12"),
    (b"connection", b"keep-alive, x-hop"),
    (b"x-hop", b"1"),
    (b"keep-alive", b"timeout=5"),
    (b"transfer-encoding", b"chunked"),
    (b"te", b"trailers"),
    (b"trailer", b"x-sum"),
    (b"upgrade", b"h2c"),
    (b"proxy-authorization", b"Basic eA=="),
    (b"proxy-foo", b"1"),
    (b"x-api-key", b"caller-key"),
    (b"authorization", b"Bearer caller-token"),
    (b"anthropic-version", b"2023-06-01"),
    (b"anthropic-beta", b"a"),
    (b"anthropic-beta", b"b"),
]


def names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [name for name, _ in headers]


def test_pass_through_mode_keeps_end_to_end_headers_and_credentials() -> None:
    sent, _, _ = upstream_request(CALLER, api_key=None)

    assert sent == [
        (b"x-api-key", b"caller-key"),
        (b"authorization", b"Bearer caller-token"),
        (b"anthropic-version", b"2023-06-01"),
        (b"anthropic-beta", b"a"),
        (b"anthropic-beta", b"b"),
    ]


def test_own_key_mode_replaces_every_caller_credential() -> None:
    sent, _, _ = upstream_request(CALLER, api_key="proxy-key")

    assert (b"x-api-key", b"proxy-key") in sent
    assert b"authorization" not in names(sent)
    assert b"caller-key" not in [value for _, value in sent]
    assert names(sent).count(b"x-api-key") == 1


def test_headers_named_in_connection_are_dropped_wherever_they_come() -> None:
    sent, _, _ = upstream_request(
        [
            (b"x-secret", b"1"),  # before the Connection header naming it
            (b"Connection", b"X-Secret"),
            (b"connection", b"x-other"),  # a second Connection header counts too
            (b"x-other", b"2"),
            (b"x-keep", b"3"),
        ],
        api_key=None,
    )

    assert sent == [(b"x-keep", b"3")]


def test_the_callers_controls_are_read_in_the_same_pass_and_never_forwarded() -> None:
    caller = [(b"caproute-route", b" fast "), (b"x-a", b"1"), (b"caproute-bypass", b"Yes")]

    assert upstream_request(caller, api_key=None) == ([(b"x-a", b"1")], True, "fast")
    assert upstream_request([(b"caproute-bypass", b"0")], api_key="k")[1:] == (False, None)


def test_server_flavour_prefers_httptools_and_uvloop_and_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from caproute._proxy import _server

    installed = {
        name: importlib.util.find_spec(name) is not None for name in ("httptools", "uvloop")
    }
    assert _server.server_flavour() == (
        "httptools" if installed["httptools"] else "h11",
        "uvloop" if installed["uvloop"] else "asyncio",
    )
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    assert _server.server_flavour() == ("h11", "asyncio")
    config = _server.uvicorn_config(ProxyConfig(), app=object())
    assert (config.http.func.__name__, config.loop) == ("LimitedH11", "asyncio")


def test_values_with_control_characters_are_dropped() -> None:
    sent, _, _ = upstream_request(
        [(b"x-a", b"ok"), (b"x-b", b"bad\r\nx-injected: 1"), (b"x-c", b"nul\x00")], api_key=None
    )

    assert sent == [(b"x-a", b"ok")]


def test_response_hop_by_hop_headers_are_dropped() -> None:
    upstream = [
        (b"Content-Type", b"text/event-stream"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Connection", b"keep-alive, x-internal"),
        (b"X-Internal", b"1"),
        (b"Request-Id", b"req_1"),
    ]

    assert downstream_response_headers(upstream) == [
        (b"content-type", b"text/event-stream"),
        (b"request-id", b"req_1"),
    ]


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ([(b"x-api-key", b"tok")], b"tok"),
        ([(b"authorization", b"Bearer tok")], b"tok"),
        ([(b"authorization", b"bearer  tok ")], b"tok"),
        ([(b"authorization", b"Basic dG9r")], None),
        ([(b"authorization", b"Bearer ")], None),
        ([], None),
    ],
)
def test_presented_token(headers: list[tuple[bytes, bytes]], token: bytes | None) -> None:
    assert presented_token(headers) == token


def test_token_comparison() -> None:
    assert token_matches(b"secret", b"secret")
    assert not token_matches(b"secreT", b"secret")
    assert not token_matches(None, b"secret")


# -- configuration ---------------------------------------------------------------------------


def test_config_repr_never_shows_secrets() -> None:
    config = ProxyConfig(api_key="sk-ant-very-secret", require_token="local-secret")

    assert "very-secret" not in repr(config)
    assert "local-secret" not in repr(config)


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"api_key": "k"}, "needs a local token"),
        ({"require_token": "t"}, "own-key mode"),
        ({"upstream": "ftp://example.com"}, "http(s) URL"),
        ({"upstream": "https://user:pw@example.com"}, "must not carry credentials"),
        ({"upstream": "ftp://user:pw@example.com"}, "must not carry credentials"),
        ({"upstream": "https://example.com/?x=1"}, "query"),
        ({"max_body_bytes": 0}, "positive"),
        ({"body_timeout": 0}, "positive"),
        ({"port": 70000}, "port"),
    ],
)
def test_config_rejects_unsafe_or_invalid_settings(
    options: dict[str, object], complaint: str
) -> None:
    with pytest.raises(
        ConfigError, match=complaint.replace("(", r"\(").replace(")", r"\)")
    ) as caught:
        ProxyConfig(**options)  # type: ignore[arg-type]

    assert "pw" not in str(caught.value)


# -- metrics ---------------------------------------------------------------------------------


def test_exposition_is_well_formed_and_bounds_model_labels() -> None:
    metrics = ProxyMetrics()
    # A shared lineup larger than the label budget (names outside it are `other`).
    lineup = {"claude-a", "claude-b", *(f"m-{index}" for index in range(MAX_MODEL_LABELS + 50))}
    metrics.lineup = lambda: lineup
    decision = Decision("rerouted", requested_model="claude-a", model="claude-b")
    metrics.record_request("rerouted", decision, 200)
    metrics.record_request("rerouted", decision, 200)
    metrics.record_upstream_error(529)
    metrics.record_tokens("claude-b", {"input": 10, "output": 3})
    for index in range(MAX_MODEL_LABELS + 50):
        metrics.record_request("forwarded", Decision("unchanged", f"m-{index}", f"m-{index}"), 200)

    text = metrics.render().decode()

    assert text.endswith("\n")
    assert metric_value(text, 'caproute_proxy_requests_total{outcome="rerouted"}') == 2
    assert metric_value(text, 'caproute_proxy_requests_total{requested_model="claude-a"}') == 2
    assert metric_value(text, "caproute_proxy_reroutes_total") == 2
    assert metric_value(text, 'caproute_proxy_upstream_errors_total{status="529"}') == 1
    assert metric_value(text, 'caproute_proxy_tokens_total{model="claude-b",kind="input"}') == 10
    models = {
        line.split('requested_model="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("caproute_proxy_requests_total{")
    }
    assert len(models) <= MAX_MODEL_LABELS + 1
    assert "other" in models
    families = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(families) == len(set(families))
    assert all(name.startswith("caproute_proxy_") for name in families)


# -- file watching ---------------------------------------------------------------------------


def load_text(path: Path) -> str:
    text = path.read_text()
    if text.startswith("bad"):
        raise PolicyError("no good", file=str(path), line=1, column=1)
    return text


def test_watcher_applies_changes_and_rejects_bad_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text("one")
    applied: list[str] = []
    reloads: Counter[str] = Counter()
    watcher = FileWatcher(
        file,
        what="policy",
        load=load_text,
        apply=applied.append,
        on_result=lambda result: reloads.update([result]),
    )
    assert watcher.load_initial() == "one"

    assert watcher.check() is False  # unchanged
    file.write_text("two!")
    assert watcher.check() is True
    file.write_text("bad file")
    with caplog.at_level(logging.ERROR, logger="caproute.proxy"):
        assert watcher.check() is True
    os.remove(file)
    assert watcher.check() is False

    assert applied == ["two!"]
    assert reloads == Counter({"ok": 1, "error": 1})
    assert watcher.status.last_error == f"{file}:1:1: no good"
    assert f"{file}:1:1: no good" in caplog.text


def test_sighup_calls_the_reload_callback() -> None:
    calls: list[str] = []

    async def main() -> bool:
        with sighup_handler(lambda: calls.append("hup")) as installed:
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(100):
                if calls:
                    break
                await asyncio.sleep(0.001)
        return installed

    assert asyncio.run(main()) is True
    assert calls == ["hup"]
    assert signal.getsignal(signal.SIGHUP) in (signal.SIG_DFL, None)


def test_usage_meter_reads_gzip_and_deflate_and_skips_other_codings() -> None:
    import gzip
    import json
    import zlib

    from caproute._proxy._relay import MAX_JSON, UsageMeter

    answer = json.dumps({"usage": {"input_tokens": 3, "output_tokens": 4}}).encode()

    def metered(encoding: bytes, body: bytes, step: int = 5) -> dict[str, int]:
        meter = UsageMeter(b"application/json", encoding=encoding)
        for start in range(0, len(body), step):
            meter.feed(body[start : start + step])
        return meter.finish()

    assert metered(b"gzip", gzip.compress(answer)) == {"input": 3, "output": 4}
    assert metered(b"deflate", zlib.compress(answer)) == {"input": 3, "output": 4}
    assert metered(b"identity", answer) == {"input": 3, "output": 4}
    assert metered(b"br", answer) == {}  # not read here
    assert metered(b"gzip", b"not gzip at all") == {}  # a broken body counts nothing
    # A bomb: far more than MAX_JSON once inflated, never held (the meter stops reading).
    bomb = gzip.compress(b" " * (8 * MAX_JSON) + answer)
    assert metered(b"gzip", bomb, step=len(bomb)) == {}
