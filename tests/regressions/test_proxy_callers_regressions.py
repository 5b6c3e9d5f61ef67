"""Issue 22, bug 7: the per-caller digest computed without the process key.

In pass-through mode the proxy tells callers apart by a keyed hash of their
credential; with a disk cache that digest names the caller's cache file. A plain hash
of the credential (no key) would let anyone holding a cache file name test guesses of
a key offline, and link files across machines. The observable contract: the same
credential gets the same name under one hash key (a restart finds its file), and an
unrelated name under another (a cache directory with its own key).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import anthropic
import pytest

from caproute._proxy import ProxyConfig
from caproute.testing import FakeAnthropic
from running_proxy import RunningProxy, wait_until

KEY = "sk-ant-api03-regressions-caller-0123456789"


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"api_key": KEY}


def cache_name_for(fake: FakeAnthropic, cache: Path) -> str:
    """Serve one routed request with `cache`; the name of the caller's cache file."""
    config = ProxyConfig(upstream=fake.url, registry_cache_dir=cache, body_timeout=5.0)
    with (
        RunningProxy(config) as proxy,
        anthropic.Anthropic(base_url=proxy.url, api_key=KEY, max_retries=0) as client,
    ):
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
        wait_until(lambda: any(cache.glob("registry-*.json")))
    [file] = cache.glob("registry-*.json")
    return file.name


def test_the_cache_name_of_a_caller_depends_on_the_hash_key(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    """Bug 7: a digest without the process key names a credential's file the same
    everywhere; with the key, two cache directories (two keys) name it differently,
    and the name is no plain hash of the credential."""
    first = cache_name_for(fake, tmp_path / "one")
    again = cache_name_for(fake, tmp_path / "one")  # a restart: same key file, same name
    other = cache_name_for(fake, tmp_path / "two")

    assert first == again
    assert first != other
    digest = first.removeprefix("registry-").removesuffix(".json")
    plain = {
        hashlib.new(name, KEY.encode()).hexdigest()
        for name in ("sha256", "sha512", "blake2b", "blake2s", "sha1", "md5")
    }
    assert not any(h.startswith(digest) for h in plain)
    assert KEY not in first
