"""Issue 17, item 4: no part of a credential is written, whatever its shape.

Gateways and cloud platforms issue keys that don't start with ``sk-ant-``, and
caproute's local tokens have no fixed shape at all. Before the fix only ``sk-ant-``
tokens were masked, so a WARNING read ``invalid x-api-key: gateway-P8PLAINBAD-qqq…``
(30 of 49 characters). Credentials are now masked by position (the value after
``x-api-key``, ``authorization``, ``Bearer``, a token's name), and the own-key proxy
masks any 8-character run of its own key in error bodies it relays.

The proxy runs as a real ``caproute serve`` subprocess at ``--log-level debug``; the
upstream (the fake API) quotes a prefix of the key it was sent in its errors, as the
API does, and everything the process wrote is searched for any 8 characters of any
credential in use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from caproute._core.secrets import redact
from caproute.testing import FakeAnthropic
from running_proxy import serve_process

GATEWAY = "gateway-P8PLAINBAD-" + "q" * 30  # 49 characters, the shape
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ0ZW5hbnQtYiIsImF1ZCI6ImFwaSJ9."
    "U2lnbmF0dXJlT2ZUaGVJc3N1ZXJfX19fX19fX19fX19fX19f"
)
LONG = "".join(chr(ord("A") + (i * 7) % 26) for i in range(200))  # a 200-character key
LOCAL_TOKEN = "local-" + "Z3" * 20  # a caproute local token
RUN = 8
BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}


def leaks(text: str, secret: str) -> list[str]:
    """Every run of `RUN` characters of `secret` found in `text`."""
    found = {
        secret[i : i + RUN] for i in range(len(secret) - RUN + 1) if secret[i : i + RUN] in text
    }
    return sorted(found)


def assert_nothing_of(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert leaks(text, secret) == [], f"part of {secret[:4]}... written: {text[-2000:]}"


@contextmanager
def serve(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, Path]]:
    """`caproute serve --log-level debug` as a subprocess; its URL and its output file."""
    log = tmp_path / f"serve-{len(list(tmp_path.glob('serve-*')))}.log"
    with serve_process("--log-level", "debug", *args, log=log, env=env) as (url, process):
        assert process.poll() is None, log.read_text()
        yield url, log


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"api_key": GATEWAY, "keys": {JWT: None, LONG: None}}


def test_pass_through_logs_no_part_of_any_callers_credential(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    callers = [
        ({"x-api-key": GATEWAY}, GATEWAY),
        ({"authorization": f"Bearer {JWT}"}, JWT),
        ({"x-api-key": LONG}, LONG),
    ]
    with serve(tmp_path, "--upstream", fake.url) as (url, log):
        for headers, key in callers:
            # The caller's first routed request fetches its registry with its key; the
            # Models API refuses, quoting a prefix of the key (a 400: not retried, logged
            # as a WARNING), then a Messages refusal quotes it again.
            fake.faults.add("/v1/models", status=400, message=f"invalid x-api-key: {key[:30]}…")
            fake.faults.add(
                "/v1/messages", status=400, message=f"malformed request, key {key[:24]}… given"
            )
            answer = httpx2.post(
                f"{url}/v1/messages",
                json=BODY,
                headers={**headers, "anthropic-version": "2023-06-01"},
                timeout=30,
            )
            assert answer.status_code == 400
            fake.faults.clear()
            ok = httpx2.post(
                f"{url}/v1/messages",
                json=BODY,
                headers={**headers, "anthropic-version": "2023-06-01"},
                timeout=30,
            )
            assert ok.status_code == 200, ok.text
        # A credential in the request path and a query string, too.
        httpx2.get(f"{url}/v1/models/x-api-key:{GATEWAY}", headers={"x-api-key": GATEWAY})
    text = log.read_text()
    assert "fetch failed" in text  # the WARNING the issue found is there, masked
    assert "invalid x-api-key: ***" in text
    assert_nothing_of(text, GATEWAY, JWT, LONG)


def test_own_key_mode_relays_and_logs_no_part_of_its_key_or_token(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    env = {"RELIABILITY_UPSTREAM_KEY": GATEWAY, "RELIABILITY_LOCAL_TOKEN": LOCAL_TOKEN}
    args = (
        "--upstream",
        fake.url,
        "--api-key-env",
        "RELIABILITY_UPSTREAM_KEY",
        "--require-token-env",
        "RELIABILITY_LOCAL_TOKEN",
        "--log-format",
        "json",
    )
    caller = {"authorization": f"Bearer {LOCAL_TOKEN}", "anthropic-version": "2023-06-01"}
    with serve(tmp_path, *args, env=env) as (url, log):
        bodies = []
        for message in (
            f"invalid x-api-key: {GATEWAY[:30]}…",  # by position
            f"this key ({GATEWAY[6:40]}) is not allowed",  # no name in front of it
        ):
            fake.faults.add("/v1/messages", status=401, message=message)
            answer = httpx2.post(f"{url}/v1/messages", json=BODY, headers=caller, timeout=30)
            assert answer.status_code == 401
            bodies.append(answer.text)
        # A wrong local token: refused, and not written anywhere either.
        wrong = "wrong-" + LOCAL_TOKEN[6:]
        refused = httpx2.post(
            f"{url}/v1/messages",
            json=BODY,
            headers={"x-api-key": wrong, "anthropic-version": "2023-06-01"},
            timeout=30,
        )
        assert refused.status_code == 401
    assert_nothing_of("\n".join(bodies), GATEWAY, LOCAL_TOKEN)
    assert "invalid x-api-key: ***" in bodies[0]
    assert_nothing_of(log.read_text() + refused.text, GATEWAY, LOCAL_TOKEN)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"invalid x-api-key: {GATEWAY[:30]}…", "invalid x-api-key: ***"),
        (f"Authorization: Bearer {JWT}", "Authorization: Bearer ***"),
        (f"('authorization', 'Bearer {JWT}')", "('authorization', 'Bearer ***')"),
        (f"(b'x-api-key', b'{LONG}')", "(b'x-api-key', b'***')"),
        (f'{{"x-api-key": "{GATEWAY}"}}', '{"x-api-key": "***"}'),
        (f"ANTHROPIC_AUTH_TOKEN={JWT} caproute", "ANTHROPIC_AUTH_TOKEN=*** caproute"),
        (f"require_token={LOCAL_TOKEN}", "require_token=***"),
        (f"bearer {LONG}", "bearer ***"),
        ("invalid x-api-key: sk-ant-api03-SECRE…", "invalid x-api-key: sk-ant-***"),
        # Not credentials: names that only look alike, and prose.
        ("max_tokens: 1024, budget_tokens=512", "max_tokens: 1024, budget_tokens=512"),
        ("--api-key-env NAME; api_key_env: NAME", "--api-key-env NAME; api_key_env: NAME"),
        ("a valid bearer token is required", "a valid bearer token is required"),
        ("invalid x-api-key", "invalid x-api-key"),
    ],
)
def test_credentials_are_masked_by_position(text: str, expected: str) -> None:
    assert redact(text) == expected
