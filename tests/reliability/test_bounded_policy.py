"""Policy files are read under limits (size, nodes, depth), whatever reads them.

Issue 17 item 1: a 391-byte policy of nested YAML anchors took 29.6 s and 2.9 GB before
its `PolicyError` (the proxy's hot reload of it, 2.9 GB that stayed), a 21.8 MB policy
of 200k routes did not finish checking in 300 s, and `caproute check` on a 100,000-deep
YAML printed ``caproute: RecursionError``. Every reader (`caproute check`,
`wrap(policy=...)`, `caproute serve` and its hot reload) goes through one loader, which
refuses these before validating anything, with ``file:line:column``, the limit and the
variable that changes it.

Also the first-hour item: a policy candidate that matches no model is reported when
`wrap()` loads the policy, in `caproute check`'s words.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import anthropic
import httpx2
import pytest
from reliability_helpers import API_KEY, HI, proxy_for, wait_until

import caproute
from caproute import PolicyError
from caproute._core.policy import Policy
from caproute.testing import FakeAnthropic

EXAMPLES = Path(__file__).parents[2] / "examples" / "policies"


def alias_bomb(levels: int) -> str:
    """A valid-looking policy whose last anchor stands for 9**levels strings: each
    level is a list of nine aliases of the one before."""
    lines = [
        "version: 1",
        "routes:",
        "  - name: r",
        "    match:",
        "      metadata:",
        '        a: &a ["x","x","x","x","x","x","x","x","x"]',
    ]
    previous = "a"
    for name in "bcdefgh"[: levels - 1]:
        lines.append(f"        {name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
        previous = name
    return "\n".join(lines) + "\n"


def many_routes(count: int) -> str:
    routes = "".join(
        f"  - name: r{i}\n    match:\n      model: claude-x-{i}\n"
        f"    candidates: [claude-haiku-4-5, requested]\n"
        for i in range(count)
    )
    return "version: 1\nroutes:\n" + routes


def deep(levels: int) -> str:
    return "version: 1\nroutes: " + "[" * levels + "]" * levels + "\n"


def caproute_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """The real command in a fresh process, no ``CAPROUTE_*`` or key in its environment."""
    return subprocess.run(
        [sys.executable, "-m", "caproute", *argv],
        capture_output=True,
        text=True,
        env=env_without_limits(),
        timeout=60,
        check=False,
    )


def env_without_limits(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CAPROUTE_", "ANTHROPIC_")) and k != "FORCE_COLOR"
    }
    return {**env, **extra}


# -- the loader ------------------------------------------------------------------------------

MEASURE = """
import json, resource, sys, time
import caproute._core.policy, caproute._registry.policy_files  # imports are not the loader's cost
from caproute import PolicyError, load_policy
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.process_time()
try:
    load_policy(sys.argv[1])
    outcome = "loaded"
except PolicyError as exc:
    outcome = str(exc)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"outcome": outcome, "grown_kib": grown, "cpu": time.process_time() - started}))
"""


def test_an_alias_bomb_fails_at_the_node_limit_using_little_memory(tmp_path: Path) -> None:
    # 325 bytes standing for 9**6 = 531,441 strings. Before the limits this loader took
    # ~3 s and grew by ~140 MB on it (the 368-byte 9**7 one: 20 s, 1.6 GB).
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(6))
    assert bomb.stat().st_size < 400

    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(bomb)],
        capture_output=True,
        text=True,
        env=env_without_limits(),
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout)
    outcome = result["outcome"]
    assert outcome.startswith(f"{bomb}:10:"), outcome  # the alias that crosses the limit
    assert "aliases expand the policy to more than 20,000 nodes" in outcome
    assert "set CAPROUTE_POLICY_MAX_NODES to change the limit" in outcome
    assert result["grown_kib"] < 20 * 1024, result


def test_a_recursive_alias_is_named_as_such() -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_text("version: 1\nroutes: &r [*r]\n", filename="p.yaml")
    assert str(caught.value) == "p.yaml:2:13: alias *r refers to a node that contains it"


def test_aliases_within_the_limit_still_load() -> None:
    text = (
        "version: 1\n"
        "routes:\n"
        "  - name: a\n    match: {model: 'claude-opus-*'}\n"
        "    candidates: &cheap [claude-haiku-4-5, requested]\n"
        "  - name: b\n    match: {model: 'claude-sonnet-*'}\n    candidates: *cheap\n"
    )
    policy = Policy.from_text(text)
    assert [spec.candidates for spec in policy.route_specs] == [
        ("claude-haiku-4-5", "requested"),
        ("claude-haiku-4-5", "requested"),
    ]


def test_too_many_nodes_are_refused_and_the_variable_raises_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(many_routes(2_000))  # 22,003 nodes
    with pytest.raises(PolicyError) as caught:
        caproute.load_policy(big)
    error = caught.value
    assert (error.file, error.line) == (str(big), 7274)
    assert error.message == (
        "the policy has more than 20,000 nodes (keys, values and list items); "
        "set CAPROUTE_POLICY_MAX_NODES to change the limit"
    )

    monkeypatch.setenv("CAPROUTE_POLICY_MAX_NODES", "25000")
    assert len(caproute.load_policy(big).routes) == 2_000


def test_a_policy_over_the_size_limit_is_refused_unparsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(many_routes(20_000))  # 2 MB
    with pytest.raises(PolicyError) as caught:
        caproute.load_policy(big)
    assert str(caught.value) == (
        f"{big}:1:1: the policy is {big.stat().st_size:,} bytes, over the limit of "
        "1,048,576; set CAPROUTE_POLICY_MAX_BYTES to change the limit"
    )

    small = EXAMPLES / "teams.yaml"
    monkeypatch.setenv("CAPROUTE_POLICY_MAX_BYTES", "100")
    with pytest.raises(PolicyError, match="over the limit of 100; set CAPROUTE_POLICY_MAX_BYTES"):
        caproute.load_policy(small)
    monkeypatch.setenv("CAPROUTE_POLICY_MAX_BYTES", "a lot")
    with pytest.raises(caproute.ConfigError, match="CAPROUTE_POLICY_MAX_BYTES must be a pos"):
        caproute.load_policy(small)
    monkeypatch.delenv("CAPROUTE_POLICY_MAX_BYTES")
    assert caproute.load_policy(small).routes


def test_text_limits_apply_to_policy_text_too() -> None:
    from caproute._core.yaml_text import TextLimits

    limits = TextLimits(max_bytes=64)
    with pytest.raises(PolicyError, match=r"<policy>:1:1: the policy is 11\d bytes, over the"):
        Policy.from_text(many_routes(1), limits=limits)
    # Bytes, not characters: 30 three-byte characters are 90 bytes.
    with pytest.raises(PolicyError, match="is 10\\d bytes"):
        Policy.from_text("version: 1\n# " + "€" * 30 + "\n", limits=limits)


def test_nesting_deeper_than_the_limit_is_located(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_text(deep(100_000), filename="deep.yaml")
    assert str(caught.value) == (
        "deep.yaml:2:72: the policy nests deeper than 64 levels"  # routes: [ is level 2
    )


# -- every reader -----------------------------------------------------------------------------


def test_caproute_check_on_a_100k_deep_file_prints_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(deep(100_000))
    done = caproute_cli("check", str(path))
    assert done.returncode == 1
    assert "RecursionError" not in done.stderr
    assert done.stderr.splitlines() == [
        f"{path}:2:72: the policy nests deeper than 64 levels; "
        "set CAPROUTE_POLICY_MAX_DEPTH to change the limit",
        f"1 error in {path}",
    ]


def test_caproute_check_and_serve_refuse_a_bomb_and_a_huge_file(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(7))  # 9**7: 20 s and 1.6 GB before
    huge = tmp_path / "huge.yaml"
    huge.write_text(many_routes(200_000))  # 20 MB: did not finish in 300 s
    for path, message in (
        (bomb, "aliases expand the policy to more than 20,000 nodes"),
        (huge, f"the policy is {huge.stat().st_size:,} bytes, over the limit of 1,048,576"),
    ):
        for argv in (["check", str(path)], ["serve", "--policy", str(path), "--port", "0"]):
            done = caproute_cli(*argv)
            assert done.returncode != 0, argv
            assert message in done.stderr, (argv, done.stderr)
            assert str(path) in done.stderr


def test_wrap_refuses_a_bomb_before_any_request(tmp_path: Path, fake: FakeAnthropic) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(7))
    client = anthropic.Anthropic(api_key=API_KEY, base_url=fake.url)
    with pytest.raises(PolicyError, match="aliases expand the policy to more than 20,000"):
        caproute.wrap(client, policy=bomb)
    assert fake.requests == []


def test_a_hot_reload_of_a_bomb_is_rejected_and_the_proxy_keeps_serving(
    tmp_path: Path, fake: FakeAnthropic
) -> None:
    policy = tmp_path / "routing.yaml"
    policy.write_text((EXAMPLES / "minimal.yaml").read_text())
    with proxy_for(fake, policy=policy, poll_interval=0.02) as proxy:
        before = proxy.app.router.policy
        staging = tmp_path / "staging.yaml"
        staging.write_text(alias_bomb(7))
        staging.replace(policy)
        wait_until(lambda: proxy.metric('caproute_proxy_policy_reloads_total{result="error"}') == 1)
        assert proxy.app.router.policy is before
        with httpx2.Client(base_url=proxy.url, headers={"x-api-key": API_KEY}) as http:
            health = http.get("/caproute/health").json()
            answer = http.post(
                "/v1/messages",
                json={"model": "claude-haiku-4-5", "max_tokens": 16, "messages": HI},
                headers={"anthropic-version": "2023-06-01"},
            )
        assert answer.status_code == 200
        assert "aliases expand the policy to more than 20,000 nodes" in json.dumps(health)


# -- first hour: a candidate that names no model ----------------------------------------------

TYPO = """\
version: 1
routes:
  - name: cheap
    match:
      model: "claude-opus-*"
    candidates: [claude-haiku-4.5, requested]
"""


def test_wrap_warns_about_a_candidate_matching_no_model_in_checks_words(
    tmp_path: Path, fake: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(TYPO)
    client = anthropic.Anthropic(api_key=API_KEY, base_url=fake.url)
    registry = caproute.embedded_registry()
    with caplog.at_level(logging.WARNING, logger="caproute"):
        caproute.wrap(client, policy=path, registry=registry)
        caproute.wrap(client, policy=path, registry=registry)  # said once
    warned = [r.getMessage() for r in caplog.records if r.name == "caproute"]
    check = caproute_cli("check", str(path))
    assert check.returncode == 0
    (checked,) = check.stderr.splitlines()
    assert "did you mean 'claude-haiku-4-5'?" in checked
    assert warned == [f"{checked} (registry: {registry.source.describe()})"]


def test_wrap_without_a_policy_or_with_a_clean_one_warns_nothing(
    fake: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    client = anthropic.Anthropic(api_key=API_KEY, base_url=fake.url)
    with caplog.at_level(logging.WARNING, logger="caproute"):
        caproute.wrap(client, registry=caproute.embedded_registry())
        caproute.wrap(client, policy=EXAMPLES / "teams.yaml")
    assert [r for r in caplog.records if r.name == "caproute"] == []


def test_a_polled_reload_loads_in_a_worker_thread_while_the_loop_serves(tmp_path: Path) -> None:
    # A policy at the limits takes seconds to validate (1,800 routes: ~3 s, each route
    # is compared with the ones before it); the proxy's event loop must not wait for it.
    import anyio

    from caproute._proxy._reload import FileWatcher

    path = tmp_path / "routing.yaml"
    path.write_text((EXAMPLES / "minimal.yaml").read_text())
    started, loop_ran = threading.Event(), threading.Event()
    seen: list[bool] = []

    def slow_load(file: Path) -> Policy:
        # Waits for the event loop to run something else; on the loop's own thread
        # nothing else can run, and this gives up after 5 s.
        started.set()
        seen.append(loop_ran.wait(5))
        return caproute.load_policy(file)

    applied: list[Policy] = []
    watcher = FileWatcher(path, what="policy", load=slow_load, apply=applied.append, interval=0.01)

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watcher.run)
            await anyio.sleep(0.05)
            path.write_text((EXAMPLES / "teams.yaml").read_text())
            while not applied:
                await anyio.sleep(0.01)
                if started.is_set():
                    loop_ran.set()  # the loop runs while the file loads
            tasks.cancel_scope.cancel()

    anyio.run(main)
    assert seen == [True]
    assert applied == [caproute.load_policy(EXAMPLES / "teams.yaml")]
