"""Pass-through mode: every caller is routed on the lineup its own key can see.

The fake serves a catalogue caproute has never seen (nothing in the embedded snapshot
names these models) and gives two keys different views of it, as organizations and
workspaces do. Each caller's registry must be read with its own key, from the
upstream only, and no key may end up in the proxy's memory, logs, metrics or files.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import logging
import os
import stat
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from proxy_helpers import RunningProxy, close_sdk_clients, wait_until

from caproute._proxy import ProxyConfig
from caproute.testing import FakeAnthropic, make_model

KEY_A = "sk-ant-api03-caller-AAAA-0123456789-secret"
KEY_B = "sk-ant-api03-caller-BBBB-9876543210-secret"
KEY_C = "sk-ant-api03-caller-CCCC-cannot-list-models"
KEYS = (KEY_A, KEY_B, KEY_C)

SMALL = "claude-novel-small-1"  # reads no PDFs
BIG = "claude-novel-big-1"  # reads PDFs; only caller A's organization sees it
OTHER = "claude-novel-other-1"  # reads PDFs; only caller B's workspace sees it

PDF = base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()
READ_THIS = [
    {
        "role": "user",
        "content": [
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
            },
            {"type": "text", "text": "Summarise."},
        ],
    }
]


@pytest.fixture(scope="module")
def novel() -> Iterator[FakeAnthropic]:
    models = [
        make_model(BIG, line="novel"),
        make_model(OTHER, line="novel"),
        make_model(SMALL, unsupported=["pdf_input"], line="novel"),
    ]
    with FakeAnthropic(
        models=models,
        api_key=KEY_A,
        keys={KEY_B: [SMALL, OTHER], KEY_C: None},
        models_forbidden=[KEY_C],
    ) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh(novel: FakeAnthropic) -> Iterator[None]:
    novel.reset()
    yield
    close_sdk_clients()


def serve(fake: FakeAnthropic, **options: Any) -> RunningProxy:
    options.setdefault("body_timeout", 5.0)
    return RunningProxy(ProxyConfig(upstream=fake.url, **options)).start()


def client(proxy: RunningProxy, key: str, *, bearer: bool = False) -> anthropic.Anthropic:
    if bearer:  # what SDK 2.x sends for ANTHROPIC_AUTH_TOKEN
        return anthropic.Anthropic(base_url=proxy.url, auth_token=key, max_retries=0)
    return anthropic.Anthropic(base_url=proxy.url, api_key=key, max_retries=0)


def read_pdf(proxy: RunningProxy, key: str, **options: Any) -> Any:
    with client(proxy, key, **options) as sdk:
        return sdk.messages.with_raw_response.create(model=SMALL, max_tokens=64, messages=READ_THIS)


def listings(fake: FakeAnthropic) -> list[str]:
    """Which credential read ``GET /v1/models``, in order."""
    found = []
    for request in fake.requests:
        if request.path == "/v1/models":
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
            found.append(request.headers.get("x-api-key") or bearer)
    return found


def test_only_the_live_catalogue_makes_the_request_routable(novel: FakeAnthropic) -> None:
    proxy = serve(novel)
    try:
        answer = read_pdf(proxy, KEY_A)
    finally:
        proxy.stop()

    assert answer.status_code == 200
    assert answer.headers["caproute-outcome"] == "rerouted"
    assert answer.headers["caproute-model"] == BIG
    assert answer.headers["caproute-registry"] == "caller"
    assert listings(novel) == [KEY_A]  # read with the caller's own key, once


def test_the_embedded_lineup_alone_would_not_route_it(novel: FakeAnthropic) -> None:
    # The control experiment: the same request, routed on the offline lineup only
    # (own-key mode with a Models API whose list never answers), is refused by the API:
    # the small model, looked up on its own (`GET /v1/models/{id}`), lacks PDFs, and the
    # offline lineup's alternatives are models this API doesn't serve.
    novel.faults.add("/v1/models", status=500, x_should_retry=False, times=None)
    proxy = serve(novel, api_key=KEY_A, require_token="local-token")
    try:
        with pytest.raises((anthropic.BadRequestError, anthropic.NotFoundError)):
            read_pdf(proxy, "local-token")
    finally:
        proxy.stop()


def test_two_callers_get_registries_read_with_their_own_keys(novel: FakeAnthropic) -> None:
    proxy = serve(novel)
    try:
        a = read_pdf(proxy, KEY_A)
        b = read_pdf(proxy, KEY_B)
        again = read_pdf(proxy, KEY_A)
    finally:
        proxy.stop()

    assert (a.status_code, b.status_code, again.status_code) == (200, 200, 200)
    assert a.headers["caproute-model"] == BIG
    assert b.headers["caproute-model"] == OTHER  # B's workspace can't see BIG
    assert again.headers["caproute-model"] == BIG
    assert listings(novel) == [KEY_A, KEY_B]  # one fetch per caller, each its own key
    hosts = {r.headers["host"] for r in novel.requests}
    assert hosts == {novel.url.removeprefix("http://")}  # the upstream and nothing else


def test_a_bearer_credential_reads_the_models_api_as_a_bearer(novel: FakeAnthropic) -> None:
    proxy = serve(novel)
    try:
        answer = read_pdf(proxy, KEY_B, bearer=True)
    finally:
        proxy.stop()

    assert answer.headers["caproute-model"] == OTHER
    listing = [r for r in novel.requests if r.path == "/v1/models"]
    assert [r.headers.get("authorization") for r in listing] == [f"Bearer {KEY_B}"]
    assert "x-api-key" not in listing[0].headers


def test_a_key_that_cannot_list_models_is_routed_on_the_shared_registry(
    novel: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = serve(novel)
    try:
        with caplog.at_level(logging.INFO, logger="caproute"):
            with client(proxy, KEY_C) as sdk:
                answer = sdk.messages.with_raw_response.create(
                    model=BIG, max_tokens=16, messages=[{"role": "user", "content": "hi"}]
                )
            wait_until(lambda: any(r.name == "caproute.access" for r in caplog.records))
        health = httpx.get(f"{proxy.url}/caproute/health").json()
    finally:
        proxy.stop()

    assert answer.status_code == 200
    assert answer.headers["caproute-registry"].startswith("shared (this credential cannot list")
    assert "403" in answer.headers["caproute-registry"]
    access = [r for r in caplog.records if r.name == "caproute.access"]
    assert "registry=" in access[-1].getMessage()
    assert health["callers"]["denied"] == 1


def test_a_new_callers_wait_for_its_first_fetch_is_bounded(novel: FakeAnthropic) -> None:
    novel.faults.add("/v1/models", delay=2.0)
    proxy = serve(novel, first_fetch_timeout=0.3)
    hello = [{"role": "user", "content": "hi"}]
    try:
        with client(proxy, KEY_A) as sdk:
            started = time.monotonic()
            first = sdk.messages.with_raw_response.create(model=SMALL, max_tokens=8, messages=hello)
            waited = time.monotonic() - started
            wait_until(lambda: listings(novel) == [KEY_A], timeout=5)
            entries = proxy.app.callers.entries() if proxy.app.callers else []
            wait_until(lambda: entries[0].source == "caller", timeout=5)
        second = read_pdf(proxy, KEY_A)
    finally:
        proxy.stop()

    assert waited < 1.5  # not the Models API's 2 s
    assert first.status_code == 200
    assert first.headers["caproute-registry"] == "shared (first fetch pending)"
    assert second.headers["caproute-registry"] == "caller"
    assert second.headers["caproute-model"] == BIG


def test_registries_are_bounded_least_recently_used_first(novel: FakeAnthropic) -> None:
    proxy = serve(novel, max_registries=2)
    try:
        for key in (KEY_A, KEY_B, KEY_C, KEY_A):
            with client(proxy, key) as sdk:
                sdk.messages.create(
                    model=SMALL, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
                )
        assert proxy.app.callers is not None
        held = len(proxy.app.callers)
    finally:
        proxy.stop()

    assert held == 2
    assert listings(novel) == [KEY_A, KEY_B, KEY_C, KEY_A]  # A was evicted by C, read again


def test_wrong_keys_do_not_push_live_callers_out(novel: FakeAnthropic) -> None:
    # Each wrong key is a caller whose fetch the API refuses (401); with the map full,
    # making room for the next one must not drop a caller that has its own registry, or
    # a burst of bad keys would make every real caller wait for its lineup again.
    proxy = serve(novel, max_registries=2)
    hello = [{"role": "user", "content": "hi"}]
    wrong = [f"sk-ant-api03-wrong-{n}" for n in range(3)]
    try:
        for key in (KEY_A, KEY_B, *wrong, KEY_A, KEY_B):
            # (the wrong keys' requests get the API's 401)
            with client(proxy, key) as sdk, contextlib.suppress(anthropic.AuthenticationError):
                sdk.messages.create(model=SMALL, max_tokens=8, messages=hello)
        held = proxy.app.callers.entries() if proxy.app.callers else []
    finally:
        proxy.stop()

    # The first wrong key, not yet known to be wrong, takes the least recently used
    # place (A's); every later one takes the place of the wrong key before it. So A is
    # read once more, B never (before: both, and one place lost per wrong key).
    assert listings(novel) == [KEY_A, KEY_B, *wrong, KEY_A]
    assert len(held) == 2
    assert sorted(entry.source for entry in held) == ["caller", "caller"]


def test_a_new_caller_never_cancels_a_first_fetch_under_way(
    novel: FakeAnthropic,
) -> None:
    # A waits for its first fetch; B arrives at a full map. A's fetch is not cancelled
    # to make room (issue 17 item 5: a flood of new keys did that to real callers): A
    # gets its own registry, B is routed on the shared one this time.
    novel.faults.add("/v1/models", delay=1.0, times=2)
    proxy = serve(novel, max_registries=1, first_fetch_timeout=3.0)
    hello = [{"role": "user", "content": "hi"}]
    answers: dict[str, Any] = {}

    def ask(key: str) -> None:
        with client(proxy, key) as sdk:
            answers[key] = sdk.messages.with_raw_response.create(
                model=SMALL, max_tokens=8, messages=hello
            )

    try:
        first = threading.Thread(target=ask, args=(KEY_A,))
        first.start()
        wait_until(lambda: listings(novel) == [KEY_A])
        ask(KEY_B)
        first.join(10)
    finally:
        proxy.stop()

    assert answers[KEY_A].status_code == 200
    assert answers[KEY_A].headers["caproute-registry"] == "caller"
    assert answers[KEY_B].status_code == 200
    assert answers[KEY_B].headers["caproute-registry"].startswith("shared (every place is held")
    assert listings(novel) == [KEY_A]  # B's fetch waits for a free place


def test_a_response_driven_refresh_uses_the_callers_key(novel: FakeAnthropic) -> None:
    proxy = serve(novel)
    try:
        with client(proxy, KEY_B) as sdk:
            sdk.messages.create(
                model=OTHER, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
            )
            # The lineup changes under the proxy: B's registry still says OTHER reads PDFs.
            novel.update_model(OTHER, unsupported=["pdf_input"])
            with pytest.raises(anthropic.BadRequestError):  # no model B sees reads PDFs now
                sdk.messages.create(model=OTHER, max_tokens=8, messages=READ_THIS)
            # Learning from that 400 asks for a refresh, made with B's key.
            wait_until(lambda: len(listings(novel)) == 2)
    finally:
        proxy.stop()

    assert listings(novel) == [KEY_B, KEY_B]


def test_cache_files_are_private_and_found_again_after_a_restart(
    novel: FakeAnthropic, tmp_path: Path
) -> None:
    cache = tmp_path / "registries"
    first = serve(novel, registry_cache_dir=cache)
    try:
        read_pdf(first, KEY_A)
        wait_until(lambda: len(list(cache.glob("registry-*.json"))) == 1)
    finally:
        first.stop()
    second = serve(novel, registry_cache_dir=cache)
    try:
        answer = read_pdf(second, KEY_A)
    finally:
        second.stop()

    assert answer.headers["caproute-model"] == BIG
    assert listings(novel) == [KEY_A]  # the restarted proxy routed on the cached registry
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    for file in cache.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        assert not any(key.encode() in file.read_bytes() for key in KEYS)


def test_pass_through_reads_no_credential_from_its_environment(
    novel: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeAnthropic() as elsewhere:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-the-proxy-environment")
        monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "token-from-the-proxy-environment")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", elsewhere.url)
        proxy = serve(novel)
        try:
            read_pdf(proxy, KEY_A)
            httpx.get(f"{proxy.url}/caproute/health")
        finally:
            proxy.stop()
        assert elsewhere.requests == []
    sent = " ".join(str(sorted(r.headers.items())) for r in novel.requests)
    assert "from-the-proxy-environment" not in sent


def _reachable_texts(root: object, limit: int = 500_000) -> Iterator[str | bytes]:
    """Every str/bytes reachable from `root` through references (a bounded walk).

    Modules are not entered (a function's globals lead to every module, this test's
    own constants included); a function contributes its closure and defaults. Nor is
    the logging machinery: pytest's capture handler keeps every record (with the
    exceptions logged, and their frames); what logs contain is checked on its own.
    """
    seen: set[int] = set()
    stack = [root]
    while stack and len(seen) < limit:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (str, bytes, bytearray)):
            yield bytes(item) if isinstance(item, bytearray) else item
        elif isinstance(item, types.FunctionType):
            cells = [cell.cell_contents for cell in item.__closure__ or () if _filled(cell)]
            stack.extend(
                [*cells, *(item.__defaults__ or ()), *(item.__kwdefaults__ or {}).values()]
            )
        elif isinstance(item, types.MethodType):
            stack.append(item.__self__)
        elif not isinstance(item, _NOT_ENTERED):
            stack.extend(gc.get_referents(item))


_NOT_ENTERED = (
    type,
    types.ModuleType,
    types.BuiltinFunctionType,
    logging.Logger,
    logging.Manager,
    logging.Handler,
)


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - raises ValueError when empty
    except ValueError:
        return False
    return True


def test_no_key_in_memory_logs_metrics_or_files(
    novel: FakeAnthropic, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "registries"
    proxy = serve(novel, registry_cache_dir=cache, log_format="json")
    try:
        with caplog.at_level(logging.DEBUG):
            for key in (KEY_A, KEY_B):
                read_pdf(proxy, key)
            with pytest.raises(anthropic.BadRequestError):  # C has no lineup of its own
                read_pdf(proxy, KEY_C)
            wait_until(lambda: proxy.app.metrics.in_flight == 0)
            pages = [
                httpx.get(f"{proxy.url}/caproute/{page}").text
                for page in ("health", "registry", "metrics")
            ]
        wait_until(lambda: all(e._flight is None for e in proxy.app.callers.entries()))  # type: ignore[union-attr]
        gc.collect()
        leaked = [
            text
            for text in _reachable_texts(proxy.app)
            if any((key if isinstance(text, str) else key.encode()) in text for key in KEYS)
        ]
    finally:
        proxy.stop()

    logged = "\n".join(record.getMessage() + str(record.__dict__) for record in caplog.records)
    files = b"".join(path.read_bytes() for path in cache.rglob("*") if path.is_file())
    for key in KEYS:
        assert key not in logged
        assert key not in "".join(pages)
        assert key.encode() not in files
    assert leaked == []
    assert os.listdir(cache)  # the cache was written


def _no_max_effort(path: Path) -> bool:
    """The cache file at `path` says `BIG` takes no ``effort: max`` (by a fact or a record)."""
    from caproute import Support
    from caproute._registry.snapshot import load_snapshot

    return load_snapshot(path).supports(BIG, "effort.max") is Support.UNSUPPORTED


def test_what_a_caller_learns_is_saved_with_its_cache_and_kept_after_a_restart(
    novel: FakeAnthropic, tmp_path: Path
) -> None:
    cache = tmp_path / "registries"
    request = {
        "model": BIG,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        "extra_body": {"output_config": {"effort": "max"}},
    }
    first = serve(novel, registry_cache_dir=cache)
    try:
        with client(first, KEY_A) as sdk:
            sdk.messages.create(model=BIG, max_tokens=8, messages=READ_THIS)  # data landed
            novel.update_model(BIG, unsupported=["effort.max"])  # the API changed since
            sdk.messages.create(**request)  # refused once, learned, resent adjusted
        # The cache file ends up saying so: as the learned fact, or (when the refresh the
        # refusal started lands after it) as the changed record, which ends the fact.
        wait_until(lambda: any(_no_max_effort(p) for p in cache.glob("registry-*.json")))
    finally:
        first.stop()
    mark = len(novel.requests)
    second = serve(novel, registry_cache_dir=cache)
    try:
        with client(second, KEY_A) as sdk:
            sdk.messages.create(**request)
    finally:
        second.stop()
    efforts = [
        r.body.get("output_config") for r in novel.requests[mark:] if r.path == "/v1/messages"
    ]
    assert efforts == [{"effort": "xhigh"}]  # right the first time after the restart


def test_requests_that_are_not_routed_fetch_no_registry(novel: FakeAnthropic) -> None:
    # Listing models or reading a batch is passed through: it needs no lineup, so a new
    # caller's first such request neither waits for one nor starts a fetch.
    novel.faults.add("/v1/models", delay=1.0, times=None)  # a slow list (only the list)
    proxy = serve(novel)
    try:
        started = time.monotonic()
        listing = httpx.get(
            f"{proxy.url}/v1/models/{SMALL}",
            headers={"x-api-key": KEY_A, "anthropic-version": "2023-06-01"},
        )
        took = time.monotonic() - started
        held = len(proxy.app.callers) if proxy.app.callers is not None else -1
    finally:
        proxy.stop()

    assert listing.status_code == 200
    assert listing.json()["id"] == SMALL
    assert "caproute-registry" not in listing.headers
    assert listings(novel) == []  # no GET /v1/models made by the proxy
    assert held == 0
    assert took < 0.8  # no wait for the slow list
