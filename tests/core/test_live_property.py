"""The promise, as a property over catalogues and requests nobody wrote by hand.

For a generated lineup there are two views of it:

* the *truth*: every model's full capability tree, lifecycle and limits, which the
  fake's validator (`caproute.testing._validation`, written independently of the core)
  checks requests against, as the API would;
* what caproute *reads*: the Models API list as the API writes it (optional leaves the
  model lacks left out; for some models whole families missing, as an older API
  version answers; retired models left out of the list) laid over an older snapshot
  that still listed the retired models (so they are tombstones).

The property: a request routed against what caproute reads is accepted by the truth on
the first attempt whenever caproute chose on stated data (no gamble on an unknown),
and it is never refused while some model could take it unchanged with everything it
uses stated. Gambles happen only when nothing is known to work; they are counted so
the test can't pass vacuously.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caproute._core.registry import Registry, RegistrySource
from caproute._core.router import PolicyEngine
from caproute.testing._catalogue import Catalogue
from caproute.testing._validation import resolve_model, validate_params
from caproute.testing._wire import ApiError

LINES = ("haiku", "sonnet", "opus")
LEAVES = ("batch", "citations", "image_input", "pdf_input", "structured_outputs", "code_execution")
EFFORT_REQUIRED = ("low", "medium", "high", "max")
THINKING_TYPES = ("adaptive", "enabled", "disabled", "between_tools")
STRATEGIES = ("clear_thinking_20251015", "clear_tool_uses_20250919", "compact_20260112")
DROPPABLE_FAMILIES = ("effort", "thinking", "context_management", "server_tools", "citations")

OUTCOMES: Counter[str] = Counter()


def yes(flag: bool) -> dict[str, bool]:
    return {"supported": flag}


@st.composite
def truth_model(draw: st.DrawFn, index: int) -> dict[str, Any]:
    b = st.booleans()
    caps: dict[str, Any] = {leaf: yes(draw(b)) for leaf in LEAVES}
    tools = draw(b)
    caps["server_tools"] = {
        "supported": tools,
        "code_execution": yes(tools and draw(b)),
        "web_search": yes(tools and draw(b)),
    }
    effort = draw(b)
    caps["effort"] = {
        "supported": effort,
        **{lv: yes(effort and draw(b)) for lv in (*EFFORT_REQUIRED, "xhigh")},
    }
    thinking = draw(b)
    types = {t: yes(thinking and draw(b)) for t in THINKING_TYPES}
    if not thinking:
        types["disabled"] = yes(True)  # a model without thinking can always "disable" it
    caps["thinking"] = {"supported": thinking, "types": types}
    edits = draw(b)
    caps["context_management"] = {
        "supported": edits,
        **{s: yes(edits and draw(b)) for s in STRATEGIES},
    }
    return {
        "type": "model",
        "id": f"claude-{LINES[index % 3]}-{9 - index}",
        "line": LINES[index % 3],
        "lifecycle": draw(st.sampled_from(["active"] * 5 + ["deprecated", "retired"])),
        "max_tokens": draw(st.sampled_from([1_000, 4_096, 64_000, 128_000])),
        "max_input_tokens": 1_000_000,
        "capabilities": caps,
    }


def as_listed(model: dict[str, Any], dropped: frozenset[str]) -> dict[str, Any]:
    """`model` as the Models API writes it: optional leaves it lacks left out, and the
    `dropped` families missing altogether (an older API version)."""
    listed = copy.deepcopy(model)
    caps = listed["capabilities"]
    if not caps["effort"]["xhigh"]["supported"]:
        del caps["effort"]["xhigh"]
    for strategy in STRATEGIES:
        if not caps["context_management"][strategy]["supported"]:
            del caps["context_management"][strategy]
    for family in dropped:
        caps.pop(family, None)
    if "server_tools" in dropped:
        # An API version from before `server_tools` (SDK < 1.12): there, the top-level
        # `code_execution` meant "the code-execution tools" (api-facts §2.4).
        caps["code_execution"] = copy.deepcopy(
            model["capabilities"]["server_tools"]["code_execution"]
        )
    return listed


@st.composite
def lineups(draw: st.DrawFn) -> tuple[list[dict[str, Any]], Registry]:
    truth = [draw(truth_model(i)) for i in range(draw(st.integers(1, 6)))]
    listed = [
        as_listed(m, frozenset(draw(st.sets(st.sampled_from(DROPPABLE_FAMILIES), max_size=2))))
        for m in truth
        if m["lifecycle"] != "retired"
    ]
    older = Registry.from_models([{**m, "lifecycle": "active"} for m in truth])
    live = Registry.from_models(listed, source=RegistrySource("live", fetched_at=1.0))
    return truth, older.updated_by(live, dropped="not listed any more")


IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}
PDF = {
    "type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
}
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


@st.composite
def requests(draw: st.DrawFn, models: list[str]) -> tuple[dict[str, Any], str]:
    body: dict[str, Any] = {
        "model": draw(st.sampled_from(models)),
        "max_tokens": draw(st.sampled_from([500, 1_000, 2_048, 8_000, 100_000])),
    }
    blocks: list[dict[str, Any]] = [{"type": "text", "text": "hi"}]
    blocks += draw(st.lists(st.sampled_from([IMAGE, PDF, CITED]), max_size=2, unique_by=id))
    body["messages"] = [{"role": "user", "content": blocks}]
    if draw(st.booleans()):
        body["output_config"] = {
            "effort": draw(st.sampled_from(["low", "medium", "high", "xhigh", "max"]))
        }
    if draw(st.booleans()):
        kind = draw(st.sampled_from(THINKING_TYPES))
        thinking: dict[str, Any] = {"type": kind}
        if kind == "enabled":
            thinking["budget_tokens"] = draw(st.sampled_from([500, 1_024, 4_000, 200_000]))
        body["thinking"] = thinking
    for name, values in (("temperature", [0.2, 1]), ("top_p", [0.5, 0.97]), ("top_k", [5])):
        if draw(st.integers(0, 3)) == 0:
            body[name] = draw(st.sampled_from(values))
    tools = draw(st.lists(st.sampled_from(sorted(TOOLS)), max_size=2, unique=True))
    if tools:
        body["tools"] = [TOOLS[t] for t in tools]
        if draw(st.booleans()):
            body["tool_choice"] = {"type": draw(st.sampled_from(["auto", "any"]))}
    if draw(st.integers(0, 3)) == 0:
        body["context_management"] = {"edits": [{"type": draw(st.sampled_from(STRATEGIES))}]}
    if draw(st.integers(0, 4)) == 0:
        body.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": {}}
    return body, draw(st.sampled_from(["2023-06-01", "2026-10-21"]))


def accepted(truth: Catalogue, body: dict[str, Any], version: str) -> bool:
    try:
        model = resolve_model(truth, body)
        validate_params(body, model, api_version=version, endpoint="messages")
    except ApiError:
        return False
    return True


def servable_as_sent(
    truth: Catalogue, registry: Registry, body: dict[str, Any], version: str
) -> bool:
    """Some model caproute may use takes `body` unchanged, with everything it uses stated."""
    from caproute._core.features import detect

    needs = detect(body).paths
    for model in truth.models():
        model_id = model["id"]
        lifecycle = registry.lifecycle(model_id)
        if lifecycle == "retired" or (lifecycle == "deprecated" and model_id != body["model"]):
            continue
        stated = all(registry.supports(model_id, p).value != "unknown" for p in needs)
        if stated and accepted(truth, {**body, "model": model_id}, version):
            return True
    return False


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_routed_requests_are_accepted_first_time_or_refused_with_reason(
    data: st.DataObject,
) -> None:
    truth_models, registry = data.draw(lineups())
    truth = Catalogue(truth_models)
    body, version = data.draw(requests([m["id"] for m in truth_models]))
    decision_and_body = PolicyEngine(registry).route(body, api_version=version)
    decision, routed = decision_and_body.decision, decision_and_body.body
    if decision.rejected:
        OUTCOMES["refused"] += 1
        assert decision.reason
        assert not servable_as_sent(truth, registry, body, version), decision.explain()
        return
    gambled = any("doesn't state" in note for note in decision.notes)
    if gambled:
        OUTCOMES["gambled"] += 1
        return  # an unknown was bet on because nothing known works: learning takes over
    OUTCOMES[f"sent {decision.outcome}"] += 1
    assert accepted(truth, routed, version), decision.explain()


def test_the_property_saw_every_kind_of_outcome() -> None:
    # Runs after the property (same module, file order): it must not pass vacuously.
    assert OUTCOMES["refused"] > 0
    assert OUTCOMES["sent unchanged"] > 0
    assert OUTCOMES["sent adjusted"] + OUTCOMES["sent rerouted"] > 20
