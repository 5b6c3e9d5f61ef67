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

The lineups and requests come from `caproute.testing.random_lineup` /
`random_request` (plain dicts and a seeded `random.Random`), the verdict from
`caproute.testing.verdict`. To compare with an older tree, run this file with
``PYTHONPATH=/other/tree/src`` after copying `caproute/testing/_lineups.py` there (a
tree without tombstones sees only the live list, as it did then).

    .venv/bin/python benchmarks/bench_acceptance.py [--trials N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

from caproute import Registry, RegistrySource
from caproute.testing import GeneratedLineup, random_lineup, random_request, verdict

try:  # `_core.engine` since issue 19; `_core.router.PolicyEngine` since issue 8; `Router` before
    from caproute._core.engine import PolicyEngine as Engine
except ImportError:  # pragma: no cover - an older tree
    try:
        from caproute._core.router import PolicyEngine as Engine  # type: ignore[no-redef]
    except ImportError:
        from caproute._core.router import Router as Engine  # type: ignore[attr-defined,no-redef]


def registry_for(lineup: GeneratedLineup) -> Registry:
    """The live list over an older snapshot (a tree without tombstones: the list alone)."""
    live = Registry.from_models(lineup.listed, source=RegistrySource("live", fetched_at=1.0))
    older = Registry.from_models([{**m, "lifecycle": "active"} for m in lineup.truth])
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
        lineup = random_lineup(rng)
        body, version = random_request(rng, lineup.ids)
        routed = Engine(registry_for(lineup)).route(body, api_version=version)
        decision = routed.decision
        if decision.rejected:
            counts["refused locally"] += 1
            continue
        gambled = any("doesn't state" in note for note in decision.notes)
        counts["sent"] += 1
        counts["gambled"] += gambled
        if verdict(lineup, routed.body, version) is not None:
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
