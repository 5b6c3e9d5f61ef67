# ruff: noqa: T201 (a command-line script: printing is its job)
"""Regenerate src/caproute/data/embedded_registry.json, the lineup shipped in the package.

Usage::

    python scripts/make_embedded_snapshot.py          # rewrite the file
    python scripts/make_embedded_snapshot.py --check  # exit 1 if the file is out of date

The data below is the Claude lineup as publicly documented in late November 2026
(the Anthropic models overview, per-model pages and the SDK 2.14 `Model` literal).
The rule is "state only what the docs state". A whole family the docs are silent about
is left out, which the registry reads as UNKNOWN. Inside a family this file does state,
a leaf the docs are silent about is written ``{"supported": null}``: the API leaves out
only leaves a model predates, so a *missing* leaf beside stated siblings reads as
unsupported, and an explicit null is how this file says "unknown" instead. The live
Models API always wins over this file, and fills in whatever is unknown here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DESCRIBES = "2026-11-26"
OUT = Path(__file__).resolve().parents[1] / "src" / "caproute" / "data" / "embedded_registry.json"

YES = {"supported": True}
NO = {"supported": False}

# Input and batch features every current and legacy model documents.
COMMON = {
    "batch": YES,
    "citations": YES,
    "image_input": YES,
    "pdf_input": YES,
}
UNKNOWN = {"supported": None}
# The four effort levels of SDK 0.121's capability tree; `xhigh` is optional there and
# the docs don't list it per model, so it stays unknown.
EFFORT = {"supported": True, "low": YES, "medium": YES, "high": YES, "xhigh": UNKNOWN, "max": YES}
NO_EFFORT = {"supported": False}


THINKING_TYPES = ("adaptive", "enabled", "disabled", "between_tools")


def thinking(**types: bool) -> dict[str, Any]:
    """A `thinking` capability stating the given `types`; the others are unknown (null)."""
    return {
        "supported": True,
        "types": {name: {"supported": types.get(name)} for name in THINKING_TYPES},
    }


# "Adaptive, always on": adaptive only, and `{"type": "disabled"}` is a 400.
ALWAYS_ADAPTIVE = thinking(adaptive=True, enabled=False, disabled=False)


def model(
    model_id: str,
    name: str,
    line: str | None,
    created: str | None,
    context: int | None,
    max_out: int | None,
    *,
    lifecycle: str = "active",
    retires_at: str | None = None,
    capabilities: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One Models API entry, shaped exactly like `GET /v1/models` returns it."""
    entry: dict[str, Any] = {
        "type": "model",
        "id": model_id,
        "display_name": name,
        "created_at": f"{created}T00:00:00Z" if created else None,
        "max_input_tokens": context,
        "max_tokens": max_out,
        "lifecycle": lifecycle,
        "deprecated_at": None,
        "retires_at": f"{retires_at}T00:00:00Z" if retires_at else None,
        "line": line,
    }
    if capabilities is not None:
        entry["capabilities"] = capabilities
    return entry


M = 1_000_000
K = 1_000

# Newest first, like the API. Release dates this file has no source for are left
# null rather than guessed.
# fmt: off
MODELS = [
    # id, display name, line, released, context, max output
    model("claude-fable-5-2", "Claude Fable 5.2", "fable", "2026-11-09", M, 128 * K,
          capabilities={**COMMON, "effort": EFFORT, "thinking": ALWAYS_ADAPTIVE}),
    # Restricted access; the docs give neither limits nor thinking modes.
    model("claude-mythos-5-2", "Claude Mythos 5.2", "mythos", "2026-11-09", None, None),
    model("claude-haiku-5-5", "Claude Haiku 5.5", "haiku", "2026-10-07", M, 128 * K,
          capabilities={**COMMON, "effort": EFFORT, "thinking": thinking(adaptive=True)}),
    model("claude-fable-5-1", "Claude Fable 5.1", "fable", None, M, 128 * K,
          capabilities={**COMMON, "effort": EFFORT, "thinking": ALWAYS_ADAPTIVE}),
    model("claude-mythos-5-1", "Claude Mythos 5.1", "mythos", None, M, 128 * K,
          capabilities={**COMMON, "effort": EFFORT, "thinking": ALWAYS_ADAPTIVE}),
    # Sonnet 5.5 adds `between_tools` (thinking off, progress notes between tool calls).
    model("claude-sonnet-5-5", "Claude Sonnet 5.5", "sonnet", "2026-09-28", M, 128 * K,
          capabilities={**COMMON, "effort": EFFORT,
                        "thinking": thinking(adaptive=True, between_tools=True)}),
    model("claude-opus-5-5", "Claude Opus 5.5", "opus", "2026-09-22", M, 128 * K,
          capabilities={**COMMON, "effort": EFFORT, "thinking": ALWAYS_ADAPTIVE}),
    model("claude-opus-5", "Claude Opus 5", "opus", "2026-07-24", M, 128 * K,
          capabilities={**COMMON, "effort": EFFORT, "thinking": thinking(adaptive=True)}),
    # `{"type": "enabled"}` is a 400 on Sonnet 5.
    model("claude-sonnet-5", "Claude Sonnet 5", "sonnet", "2026-06-30", M, 128 * K,
          capabilities={**COMMON, "thinking": thinking(adaptive=True, enabled=False)}),
    model("claude-fable-5", "Claude Fable 5", "fable", "2026-06-09", M, 128 * K,
          capabilities=COMMON),
    model("claude-mythos-5", "Claude Mythos 5", "mythos", "2026-06-09", M, 128 * K,
          capabilities=COMMON),
    model("claude-opus-4-8", "Claude Opus 4.8", "opus", None, None, None, capabilities=COMMON),
    model("claude-opus-4-7", "Claude Opus 4.7", "opus", None, None, None, capabilities=COMMON),
    # Opus 4.6 deprecated manual thinking in favour of adaptive; it still accepts it.
    model("claude-opus-4-6", "Claude Opus 4.6", "opus", None, None, None,
          capabilities={**COMMON, "thinking": thinking(adaptive=True, enabled=True)}),
    model("claude-sonnet-4-6", "Claude Sonnet 4.6", "sonnet", None, None, None,
          capabilities=COMMON),
    model("claude-opus-4-5-20251101", "Claude Opus 4.5", "opus", None, None, None,
          lifecycle="deprecated", retires_at="2027-01-22",
          capabilities={**COMMON, "thinking": thinking(enabled=True)}),
    # Haiku 4.5: 200K / 64K, manual (budgeted) extended thinking, no effort parameter.
    model("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "haiku", None, 200 * K, 64 * K,
          capabilities={**COMMON, "effort": NO_EFFORT,
                        "thinking": thinking(enabled=True, adaptive=False)}),
    model("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "sonnet", "2025-09-29", None, None,
          lifecycle="deprecated", retires_at="2026-11-30",
          capabilities={**COMMON, "thinking": thinking(enabled=True)}),
    # The SDK still lists it as deprecated; its retirement date has passed, but the
    # lifecycle field, not the date, says whether inference works.
    model("claude-mythos-preview", "Claude Mythos Preview", "mythos", None, None, None,
          lifecycle="deprecated", retires_at="2026-06-30"),
    # Retired: inference fails. Kept so the router knows to route away from them.
    model("claude-opus-4-1-20250805", "Claude Opus 4.1", "opus", "2025-08-05", None, None,
          lifecycle="retired"),
    model("claude-opus-4-20250514", "Claude Opus 4", "opus", None, None, None,
          lifecycle="retired"),
    model("claude-sonnet-4-20250514", "Claude Sonnet 4", "sonnet", None, None, None,
          lifecycle="retired"),
]
# fmt: on

# Convenience aliases the API accepts for the dated (pre-4.6) ids.
ALIASES = {
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-opus-4-0": "claude-opus-4-20250514",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
}


def document() -> dict[str, Any]:
    """The snapshot document, in the `caproute-registry/1` format."""
    return {
        "format": "caproute-registry/1",
        "source": {
            "kind": "embedded",
            "fetched_at": None,
            "location": None,
            "describes": DESCRIBES,
        },
        "aliases": dict(sorted(ALIASES.items())),
        "models": MODELS,
    }


def render() -> str:
    """The file's exact text."""
    return json.dumps(document(), indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(MODELS)} models)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
