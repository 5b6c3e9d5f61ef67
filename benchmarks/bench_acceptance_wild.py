"""First-attempt refusals over lineups drawn with other assumptions than bench_acceptance.

`bench_acceptance.py` draws its lineups with `caproute.testing.random_lineup`: every
family present, only the optional leaves left out, retired models left out, some
models without ``server_tools``. The router and that generator were written by the
same team. This generator assumes differently, on purpose:

* **Answers from many API versions and sources at once**, one shape per listed model,
  drawn evenly: complete; optional leaves a model lacks left out; before SDK 1.12 (no
  ``server_tools``, ``code_execution`` meaning the tools, no ``thinking.types.disabled``
  / ``between_tools``, no ``lifecycle`` / ``line``); before SDK 1.15 (no
  ``between_tools``); ``capabilities: null``; no ``capabilities`` key at all; one to
  three whole families missing; one leaf ``null``; ``max_tokens`` and
  ``max_input_tokens`` null.
* **Names the list never shows**: dated ids called by their undated alias, and
  ``claude-<line>-latest`` aliases only ``GET /v1/models/{alias}`` resolves; retired
  models are left out of the list but still described by ``GET /v1/models/{id}``. The
  router starts from the live list alone (no older snapshot, no tombstones).
* **Lopsided models**: each model's capabilities are supported with a share drawn from
  0.3 / 0.6 / 0.9, limits from 512 to 128 000 output tokens (1 024 and 1 025 included:
  the edge of a thinking budget).
* **Agent-shaped requests**: tool loops whose ``tool_result`` carries images, PDFs
  (base64 and URL), text / content documents (images inside), search results with
  citations; strict and programmatically callable tools; server tools; forced
  ``tool_choice``; all four thinking types with budgets at and around ``max_tokens``;
  effort; structured output; context edits; sampling; either API version; the
  Messages, count_tokens and batch endpoints.

Each request goes through the core flow (`caproute._core.flow.first_step`) with a
shell that can answer ``GET /v1/models/{name}`` from the truth (a `Resolve` action,
where the tree has it). The fake's validator judges the first body sent against the
truth, as the API would. Reported: of the requests sent, how many the API would refuse
on the first attempt, split by why caproute sent them (forwarded an unknown name;
gambled on an unstated capability or limit; acted on stated data: a bug); local
refusals; and local refusals the requested model would have accepted as sent.

    .venv/bin/python benchmarks/bench_acceptance_wild.py [--trials N] [--seed S]

Run it against another tree with ``PYTHONPATH=/other/tree/src`` (this file imports
only public names and the fake's validator).
"""

from __future__ import annotations

import argparse
import copy
import random
from collections import Counter
from typing import Any

from caproute import Registry, RegistrySource
from caproute._core import flow
from caproute._core.engine import PolicyEngine
from caproute.testing._catalogue import Catalogue
from caproute.testing._lineups import random_capabilities
from caproute.testing._validation import resolve_model, validate_params
from caproute.testing._wire import ApiError

LEVELS = ("low", "medium", "high", "xhigh", "max")
TYPES = ("adaptive", "enabled", "disabled", "between_tools")
STRATEGIES = ("clear_thinking_20251015", "clear_tool_uses_20250919", "compact_20260112")
LEAVES = ("batch", "citations", "image_input", "pdf_input", "structured_outputs", "code_execution")
FAMILIES = (*LEAVES, "server_tools", "effort", "thinking", "context_management")
SHAPES = (
    "complete",
    "optional-left-out",
    "before-1.12",
    "before-1.15",
    "capabilities-null",
    "no-capabilities",
    "families-missing",
    "leaf-null",
    "limits-null",
)


def truth_model(rng: random.Random, index: int) -> dict[str, Any]:
    """One model's full capability tree, as the API knows it."""
    caps = random_capabilities(rng, rng.choice([0.3, 0.6, 0.9]))
    line = rng.choice(["haiku", "sonnet", "opus", None])
    model_id = f"claude-{line or 'x'}-{index}" + ("-20250101" if rng.random() < 0.3 else "")
    return {
        "type": "model",
        "id": model_id,
        "display_name": model_id,
        "line": line,
        "lifecycle": rng.choice(["active"] * 5 + ["deprecated", "retired"]),
        "max_tokens": rng.choice([512, 1024, 1025, 4096, 8192, 64_000, 128_000]),
        "max_input_tokens": rng.choice([8_000, 200_000, 1_000_000]),
        "capabilities": caps,
    }


def as_answered(rng: random.Random, model: dict[str, Any], shapes: Counter[str]) -> dict[str, Any]:
    """The model as one Models API answer describes it (a shape drawn per model)."""
    answer = copy.deepcopy(model)
    caps = answer["capabilities"]
    shape = rng.choice(SHAPES)
    shapes[shape] += 1
    if shape not in ("complete", "capabilities-null", "no-capabilities"):
        if not caps["effort"]["xhigh"]["supported"]:
            del caps["effort"]["xhigh"]
        for strategy in STRATEGIES:
            if not caps["context_management"][strategy]["supported"]:
                del caps["context_management"][strategy]
    if shape == "before-1.12":
        caps["code_execution"] = caps.pop("server_tools")["code_execution"]
        del caps["thinking"]["types"]["disabled"], caps["thinking"]["types"]["between_tools"]
        answer.pop("lifecycle")
        answer.pop("line")
    elif shape == "before-1.15":
        del caps["thinking"]["types"]["between_tools"]
    elif shape == "capabilities-null":
        answer["capabilities"] = None
    elif shape == "no-capabilities":
        del answer["capabilities"]
    elif shape == "families-missing":
        for family in rng.sample(FAMILIES, rng.randint(1, 3)):
            caps.pop(family, None)
    elif shape == "leaf-null":
        family = rng.choice(["effort", "thinking", "context_management", "server_tools"])
        node = caps[family]["types"] if family == "thinking" else caps[family]
        leaves = [k for k in node if k != "supported"]
        if leaves:
            node[rng.choice(leaves)] = {"supported": None}
        else:
            node["supported"] = None
    elif shape == "limits-null":
        answer["max_tokens"] = answer["max_input_tokens"] = None
    return answer


def _image(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.5:
        return {"type": "image", "source": {"type": "url", "url": "https://example.test/a.png"}}
    source = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    return {"type": "image", "source": source}


def _pdf(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.5:
        return {"type": "document", "source": {"type": "url", "url": "https://example.test/a.pdf"}}
    source = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x" * 10}
    return {"type": "document", "source": source}


def _content_blocks(rng: random.Random, share: float) -> list[dict[str, Any]]:
    cited = {"citations": {"enabled": True}} if rng.random() < 0.5 else {}
    text_source = {"type": "text", "media_type": "text/plain", "data": "words"}
    inner = [{"type": "text", "text": "c"}] + ([_image(rng)] if rng.random() < 0.5 else [])
    makers = [
        lambda: _image(rng),
        lambda: _pdf(rng),
        lambda: {"type": "document", "source": text_source, **cited},
        lambda: {"type": "document", "source": {"type": "content", "content": inner}},
        lambda: {
            "type": "search_result",
            "source": "https://example.test",
            "title": "t",
            "content": [{"type": "text", "text": "r"}],
            **cited,
        },
    ]
    return [make() for make in makers if rng.random() < share]


def draw_request(rng: random.Random, names: list[str]) -> tuple[dict[str, Any], str, str]:
    """A body naming one of `names`, the API version and the endpoint."""
    max_tokens = rng.choice([0, 1, 1024, 1025, 2048, 4096, 8192, 20_000, 64_000, 200_000])
    body: dict[str, Any] = {"model": rng.choice(names), "max_tokens": max_tokens}
    tool = {"name": "fetch", "description": "d", "input_schema": {"type": "object"}}
    if rng.random() < 0.3:
        tool["strict"] = True
    if rng.random() < 0.15:
        tool["allowed_callers"] = ["direct", "code_execution_20250825"]
    if rng.random() < 0.4:  # an agent loop: the tool's result carries content
        result = [{"type": "text", "text": "res"}, *_content_blocks(rng, 0.12)]
        body["tools"] = [tool]
        body["messages"] = [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "tu1", "name": "fetch", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "tu1", "content": result}],
            },
        ]
        if rng.random() < 0.3:
            kind = rng.choice(["auto", "any", "tool", "none"])
            body["tool_choice"] = {"type": kind, **({"name": "fetch"} if kind == "tool" else {})}
    else:
        blocks = [{"type": "text", "text": "hi"}, *_content_blocks(rng, 0.1)]
        body["messages"] = [{"role": "user", "content": blocks}]
    server_tools = (
        {"type": "web_search_20260318", "name": "web_search"},
        {"type": "code_execution_20260120", "name": "code_execution"},
        {"type": "web_fetch_20260318", "name": "web_fetch", "citations": {"enabled": True}},
    )
    for server_tool in server_tools:
        if rng.random() < 0.08:
            body.setdefault("tools", []).append(dict(server_tool))
    if rng.random() < 0.35:
        body["output_config"] = {"effort": rng.choice(LEVELS)}
    if rng.random() < 0.45:
        kind = rng.choice(TYPES)
        body["thinking"] = {"type": kind}
        if kind == "enabled":
            budgets = [1024, 1023, max(max_tokens - 1, 0), max_tokens, 10_000, 32_000]
            body["thinking"]["budget_tokens"] = rng.choice(budgets)
    for name, values in (("temperature", (0, 0.5, 1)), ("top_p", (0.9, 0.95, 1)), ("top_k", (5,))):
        if rng.random() < 0.12:
            body[name] = rng.choice(values)
    if rng.random() < 0.1:
        edits = rng.sample(STRATEGIES, rng.randint(1, 3))
        body["context_management"] = {"edits": [{"type": edit} for edit in edits]}
    if rng.random() < 0.1:
        body.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": {}}
    endpoint = rng.choice(["messages"] * 6 + ["count_tokens", "batch"])
    if endpoint == "count_tokens":
        del body["max_tokens"]
    elif rng.random() < 0.05:
        body["stream"] = True
    return body, rng.choice(["2023-06-01", "2026-10-21"]), endpoint


def judge(truth: Catalogue, body: Any, version: str, endpoint: str) -> ApiError | None:
    """The fake's answer to `body`, sent to the truth: `None` if accepted."""
    try:
        model = resolve_model(truth, body)
        validate_params(body, model, api_version=version, endpoint=endpoint)  # type: ignore[arg-type]
    except ApiError as error:
        return error
    return None


def view_of(registry: Registry, can_resolve: bool) -> Any:
    fields = flow.View._fields
    extra = {"can_resolve": can_resolve} if "can_resolve" in fields else {}
    return flow.View(PolicyEngine(registry), **extra)


# The flow's names since issue 19 (`first_step`, `ParsedCall`), and before.
_first_step: Any = getattr(flow, "first_step", None) or getattr(flow, "first_action", None)
_parsed_call: Any = getattr(flow, "ParsedCall", None) or getattr(flow, "Call", None)


def first_send(
    registry: Registry, truth: list[dict[str, Any]], aliases: dict[str, str], call: Any
) -> Any:
    """What the flow does first: a Send or a Refuse (a Resolve answered from the truth)."""
    action = _first_step(view_of(registry, True), call)
    if type(action).__name__ == "Resolve":
        # One name per Resolve in older code (`model`), several since (`models`).
        names = getattr(action, "models", None) or (action.model,)
        for name in names:
            target = aliases.get(name, name)
            info = next((m for m in truth if m["id"] == target), None)
            if info is not None:  # GET /v1/models/{name} describes it (retired ones too)
                registry = registry.with_model(Registry.from_models([info]).get(target))  # type: ignore[arg-type]
                if target != name:
                    registry = registry.with_aliases({name: target})
        action = _first_step(view_of(registry, False), call)
    return action


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    shapes: Counter[str] = Counter()
    for _ in range(args.trials):
        truth = [truth_model(rng, i) for i in range(rng.randint(2, 6))]
        listed = [as_answered(rng, m, shapes) for m in truth if m["lifecycle"] != "retired"]
        aliases = {f"claude-{m['line']}-latest": m["id"] for m in truth if m["line"]}
        registry = Registry.from_models(listed, source=RegistrySource("live", fetched_at=1.0))
        catalogue = Catalogue(truth, aliases)
        names = [m["id"] for m in truth]
        names += [m["id"].removesuffix("-20250101") for m in truth if m["id"].endswith("-20250101")]
        names += list(aliases)
        body, version, endpoint = draw_request(rng, names)
        sent_body = (
            {"requests": [{"custom_id": "a", "params": body}]} if endpoint == "batch" else body
        )
        # What GET /v1/models/{name} resolves: the aliases and each dated id's undated name.
        answers = {m["id"].removesuffix("-20250101"): m["id"] for m in truth} | aliases
        action = first_send(registry, truth, answers, _parsed_call(sent_body, endpoint, version))
        decision = action.decision
        item = decision.items[0][1] if decision.items else decision
        if type(action).__name__ == "Refuse":
            counts["refused locally"] += 1
            if judge(catalogue, body, version, endpoint) is None:
                counts["refused locally, the requested model takes it as sent"] += 1
            continue
        counts["sent"] += 1
        routed = action.body["requests"][0]["params"] if endpoint == "batch" else action.body
        if judge(catalogue, routed, version, endpoint) is None:
            continue
        counts["refused by the API"] += 1
        gambled = any("doesn't state" in note for note in item.notes)
        info = registry.get(item.model or "")
        if item.outcome == "passthrough":
            why = "an unknown name forwarded"
        elif gambled or (
            info is not None and (info.max_tokens is None or info.capabilities is None)
        ):
            why = "a gamble on unstated data"
        else:
            why = "stated data (a bug)"
        counts[f"refused by the API: {why}"] += 1
    sent = counts["sent"]
    print(f"trials {args.trials}, seed {args.seed}; answer shapes: {dict(sorted(shapes.items()))}")
    print("| outcome | count | share of sent |\n| --- | ---: | ---: |")
    for key in (
        "sent",
        "refused by the API",
        "refused by the API: stated data (a bug)",
        "refused by the API: a gamble on unstated data",
        "refused by the API: an unknown name forwarded",
    ):
        print(f"| {key} | {counts[key]} | {counts[key] / max(sent, 1):.2%} |")
    for key in ("refused locally", "refused locally, the requested model takes it as sent"):
        print(f"| {key} | {counts[key]} | — |")


if __name__ == "__main__":
    main()
