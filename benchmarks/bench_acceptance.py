"""How often a routed request reaches the API in a form it refuses: generated lineups.

Not a speed benchmark: a correctness rate, measured the way the issue measured it.
For each of N seeded trials a random lineup is drawn (capabilities, limits, lifecycles,
lines) and a random request against it (effort, thinking, sampling, images, PDFs,
citations, server tools, strict tools, context edits, structured output, both API
versions). caproute routes the request on what the Models API would *say* (optional
leaves a model lacks left out, some families missing as an older API version answers,
retired models left out of the list, laid over an older snapshot that still listed
them); the fake's validator (`caproute.testing._validation`, written independently of
the core) judges the routed request against the *truth*, as the API would.

Reported: of the requests caproute sent, how many the API would refuse on the first
attempt; how many were refused locally; how many were gambles on an unknown.

Runs against any caproute tree (``PYTHONPATH=/other/tree/src``): a tree without
tombstones sees only the live list, as it did then.

    .venv/bin/python benchmarks/bench_acceptance.py [--trials N] [--seed S]
"""

from __future__ import annotations

import argparse
import copy
import random
from collections import Counter
from typing import Any

from caproute import Registry, RegistrySource
from caproute.testing._catalogue import Catalogue
from caproute.testing._validation import resolve_model, validate_params
from caproute.testing._wire import ApiError

try:  # the engine's name since issue 8; `Router` before
    from caproute._core.router import PolicyEngine as Engine
except ImportError:  # pragma: no cover - an older tree
    from caproute._core.router import Router as Engine  # type: ignore[attr-defined,no-redef]

LINES = ("haiku", "sonnet", "opus")
LEAVES = ("batch", "citations", "image_input", "pdf_input", "structured_outputs", "code_execution")
LEVELS = ("low", "medium", "high", "xhigh", "max")
TYPES = ("adaptive", "enabled", "disabled", "between_tools")
STRATEGIES = ("clear_thinking_20251015", "clear_tool_uses_20250919", "compact_20260112")
IMAGE = {"type": "image", "source": {"type": "url", "url": "https://example.test/a.png"}}
PDF = {"type": "document", "source": {"type": "url", "url": "https://example.test/a.pdf"}}
CITED = {
    "type": "document",
    "source": {"type": "text", "media_type": "text/plain", "data": "words"},
    "citations": {"enabled": True},
}
TOOLS = {
    "web_search": {"type": "web_search_20260318", "name": "web_search"},
    "code_execution": {"type": "code_execution_20250825", "name": "code_execution"},
    "strict": {"name": "lookup", "input_schema": {"type": "object"}, "strict": True},
}


def yes(flag: bool) -> dict[str, bool]:
    return {"supported": flag}


def truth_model(rng: random.Random, index: int) -> dict[str, Any]:
    def coin(p: float = 0.7) -> bool:
        return rng.random() < p

    caps: dict[str, Any] = {leaf: yes(coin()) for leaf in LEAVES}
    tools = coin()
    caps["server_tools"] = {
        "supported": tools,
        "code_execution": yes(tools and coin()),
        "web_search": yes(tools and coin()),
    }
    effort = coin()
    caps["effort"] = {"supported": effort, **{lv: yes(effort and coin()) for lv in LEVELS}}
    thinking = coin()
    types = {t: yes(thinking and coin()) for t in TYPES}
    if not thinking:
        types["disabled"] = yes(True)
    caps["thinking"] = {"supported": thinking, "types": types}
    edits = coin()
    caps["context_management"] = {
        "supported": edits,
        **{s: yes(edits and coin()) for s in STRATEGIES},
    }
    return {
        "type": "model",
        "id": f"claude-{LINES[index % 3]}-{9 - index}",
        "line": LINES[index % 3],
        "lifecycle": rng.choice(["active"] * 6 + ["deprecated", "retired"]),
        "max_tokens": rng.choice([4_096, 32_000, 64_000, 128_000]),
        "max_input_tokens": 1_000_000,
        "capabilities": caps,
    }


def as_listed(rng: random.Random, model: dict[str, Any]) -> dict[str, Any]:
    listed = copy.deepcopy(model)
    caps = listed["capabilities"]
    if not caps["effort"]["xhigh"]["supported"]:
        del caps["effort"]["xhigh"]  # the API leaves out what a model predates
    for strategy in STRATEGIES:
        if not caps["context_management"][strategy]["supported"]:
            del caps["context_management"][strategy]
    if rng.random() < 0.15:  # an older API version: no server_tools, old code_execution
        caps["code_execution"] = caps.pop("server_tools")["code_execution"]
    return listed


def request(rng: random.Random, models: list[str]) -> tuple[dict[str, Any], str]:
    body: dict[str, Any] = {
        "model": rng.choice(models),
        "max_tokens": rng.choice([512, 1_000, 4_000, 16_000, 100_000]),
    }
    blocks: list[dict[str, Any]] = [{"type": "text", "text": "hi"}]
    blocks += [b for b in (IMAGE, PDF, CITED) if rng.random() < 0.15]
    body["messages"] = [{"role": "user", "content": blocks}]
    if rng.random() < 0.4:
        body["output_config"] = {"effort": rng.choice(LEVELS)}
    if rng.random() < 0.4:
        kind = rng.choice(TYPES)
        body["thinking"] = {"type": kind}
        if kind == "enabled":
            body["thinking"]["budget_tokens"] = rng.choice([1_024, 4_000, 50_000])
    for name, values in (("temperature", [0.2, 1]), ("top_p", [0.5, 0.97]), ("top_k", [5])):
        if rng.random() < 0.15:
            body[name] = rng.choice(values)
    tools = [t for t in TOOLS if rng.random() < 0.15]
    if tools:
        body["tools"] = [TOOLS[t] for t in tools]
        if rng.random() < 0.3:
            body["tool_choice"] = {"type": "any"}
    if rng.random() < 0.1:
        body["context_management"] = {"edits": [{"type": rng.choice(STRATEGIES)}]}
    if rng.random() < 0.1:
        body.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": {}}
    return body, rng.choice(["2023-06-01", "2026-10-21"])


def judged(truth: Catalogue, body: dict[str, Any], version: str) -> str | None:
    """`None` if the API would accept `body`, else the refusal's error type."""
    try:
        model = resolve_model(truth, body)
        validate_params(body, model, api_version=version, endpoint="messages")
    except ApiError as error:
        return error.error_type
    return None


def registry_for(rng: random.Random, truth: list[dict[str, Any]]) -> Registry:
    listed = [as_listed(rng, m) for m in truth if m["lifecycle"] != "retired"]
    live = Registry.from_models(listed, source=RegistrySource("live", fetched_at=1.0))
    older = Registry.from_models([{**m, "lifecycle": "active"} for m in truth])
    merge = getattr(older, "updated_by", None)
    return merge(live, dropped="not listed any more") if merge is not None else live


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    for _ in range(args.trials):
        truth = [truth_model(rng, i) for i in range(rng.randint(2, 6))]
        registry = registry_for(rng, truth)
        body, version = request(rng, [m["id"] for m in truth])
        routed = Engine(registry).route(body, api_version=version)
        decision = routed.decision
        if decision.rejected:
            counts["refused locally"] += 1
            continue
        gambled = any("doesn't state" in note for note in decision.notes)
        verdict = judged(Catalogue(truth), routed.body, version)
        counts["sent"] += 1
        counts["gambled"] += gambled
        if verdict is not None:
            counts["refused by the API"] += 1
            counts["refused by the API (gamble)" if gambled else "refused by the API (known)"] += 1
    sent = counts["sent"]
    print(f"trials {args.trials}, seed {args.seed}")
    print("| outcome | count | share of sent |\n| --- | ---: | ---: |")
    kinds = (
        "sent",
        "refused by the API",
        "refused by the API (known)",
        "refused by the API (gamble)",
        "gambled",
    )
    for key in kinds:
        print(f"| {key} | {counts[key]} | {counts[key] / max(sent, 1):.2%} |")
    print(f"| refused locally | {counts['refused locally']} | — |")


if __name__ == "__main__":
    main()
