"""Pass-through callers: bad keys don't cost good ones their registry; the cache dir is bounded.

Issue 17 item 5: with the Models API slowed to 1 s and a flood of invalid keys, a new
real caller was routed on the shared registry after 4.3 s instead of its own after
1.05 s (its pending entry was evicted with the flood's), and every invalid key kept
costing Models API requests. Item 2: the per-caller cache directory grew to 4,687 files
for 5,000 keys.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from pathlib import Path

import httpx2
import pytest
from reliability_helpers import HI, proxy_for, wait_until

from caproute._proxy._callers import Credential, hmac_key
from caproute.testing import FakeAnthropic
from running_proxy import metric_value

REAL = "sk-ant-api03-the-real-caller-0123456789"
REPEATED = [f"sk-ant-api03-wrong-{n:03d}" for n in range(24)]
ABANDONED = [f"sk-ant-api03-gave-up-{n:03d}" for n in range(24)]
BODY = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": HI}
VERSION = {"anthropic-version": "2023-06-01"}
DENIED = 'caproute_proxy_registry_fetches_total{result="denied"}'


def models_reads(fake: FakeAnthropic, key: str | None = None) -> int:
    return sum(
        r.path == "/v1/models" and (key is None or r.headers.get("x-api-key") == key)
        for r in fake.requests
    )


def test_a_flood_of_bad_keys_leaves_a_new_caller_its_own_registry() -> None:
    # The Models API answers after 1 s. Eight clients keep sending 24 wrong keys,
    # waiting for each answer; eight more keep sending 24 others and give up after
    # 50 ms. Once every one of them was refused, a real caller arrives, the flood still
    # running. (New keys arriving faster than their first fetches end can fill every
    # place: a newcomer is then routed on the shared registry at once; not tested here.)
    with FakeAnthropic(api_key=REAL) as fake:
        fake.faults.add("/v1/models", delay=1.0, times=None)
        with proxy_for(fake, max_registries=16, first_fetch_timeout=4.0) as proxy:
            stop = threading.Event()
            sent = itertools.count()  # bounded: 4,000 requests in all, whatever happens
            answered: list[int] = []
            abandoned = itertools.cycle(ABANDONED)

            def patient() -> None:
                keys = itertools.cycle(REPEATED)
                with httpx2.Client(base_url=proxy.url, timeout=30) as http:
                    while not stop.is_set() and next(sent) < 4_000:
                        headers = {"x-api-key": next(keys), **VERSION}
                        status = http.post("/v1/messages", json=BODY, headers=headers).status_code
                        answered.append(status)

            def impatient() -> None:
                with httpx2.Client(base_url=proxy.url, timeout=0.05) as http:
                    while not stop.is_set() and next(sent) < 4_000:
                        headers = {"x-api-key": next(abandoned), **VERSION}
                        with contextlib.suppress(httpx2.TimeoutException):
                            http.post("/v1/messages", json=BODY, headers=headers)

            def refused() -> float:
                # Read while requests are in flight (`proxy.metric` waits for none).
                return metric_value(proxy.app.metrics.render().decode(), DENIED)

            threads = [threading.Thread(target=patient) for _ in range(8)]
            threads += [threading.Thread(target=impatient) for _ in range(8)]
            for thread in threads:
                thread.start()
            try:
                # The repeated keys have all been refused once (on the code before this
                # may never happen: then once the flood has long been going).
                wait_until(lambda: refused() >= len(REPEATED) or len(answered) > 1_000, timeout=90)
                with httpx2.Client(base_url=proxy.url, timeout=30) as http:
                    answer = http.post(
                        "/v1/messages", json=BODY, headers={"x-api-key": REAL, **VERSION}
                    )
                flooded = next(sent)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(60)

    assert answer.status_code == 200
    assert answer.headers["caproute-registry"] == "caller", answer.headers
    assert flooded > 200  # the flood was running while the caller arrived
    assert set(answered) == {401}  # the API's answer to a wrong key, relayed
    # At most one Models API request per wrong key, however often it came back (none
    # for a key that only ever met a full map).
    assert max(models_reads(fake, key) for key in REPEATED + ABANDONED) == 1
    assert models_reads(fake, REAL) == 1


def cache_file(cache: Path, key: str) -> Path:
    digest = Credential(key, bearer=False).digest(hmac_key(cache))
    return cache / f"registry-{digest[:32]}.json"


def test_the_caller_cache_directory_keeps_the_most_recently_used_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPROUTE_CALLER_CACHE_MAX_FILES", "3")
    keys = [f"sk-ant-api03-cached-{n}" for n in range(5)]
    cache = tmp_path / "callers"

    def ask(proxy_url: str, key: str) -> None:
        with httpx2.Client(base_url=proxy_url, timeout=30) as http:
            answer = http.post("/v1/messages", json=BODY, headers={"x-api-key": key, **VERSION})
        assert answer.headers["caproute-registry"] in ("caller",), answer.headers

    with FakeAnthropic(api_key=keys[0], keys=dict.fromkeys(keys[1:])) as fake:
        with proxy_for(fake, registry_cache_dir=cache) as proxy:
            for key in keys[:4]:
                ask(proxy.url, key)
                wait_until(lambda k=key: cache_file(cache, k).is_file())
                time.sleep(0.02)  # distinct modification times
        # The fourth file pushed out the first, the least recently used.
        assert sorted(p.name for p in cache.glob("registry-*.json")) == sorted(
            cache_file(cache, k).name for k in keys[1:4]
        )

        with proxy_for(fake, registry_cache_dir=cache) as proxy:
            ask(proxy.url, keys[1])  # read from its file: now the most recently used
            time.sleep(0.02)
            ask(proxy.url, keys[4])
            wait_until(lambda: cache_file(cache, keys[4]).is_file())
        reads = models_reads(fake, keys[1])

    assert reads == 1  # the restarted proxy used keys[1]'s cache file
    assert sorted(p.name for p in cache.glob("registry-*.json")) == sorted(
        cache_file(cache, k).name for k in (keys[1], keys[3], keys[4])
    )
