"""Print the path one warm, unchanged request takes through caproute's modules.

    PYTHONPATH=src python scripts/request_path.py [middleware|transport]

It wraps a real anthropic client (`caproute.wrap`) against caproute.testing's fake API,
sends three requests to warm up, then records the fourth with ``sys.setprofile``: every
call from one caproute module into another (caproute.testing, the fake, is left out) is
one *crossing*. The lines printed are the crossings in order, then each module
boundary crossed more than once. docs/architecture.md shows the output;
tests/integration/test_transparency.py holds the counts to their bound.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

Crossing = tuple[str, str, str]
"""``(caller module, callee module, callee function)``."""


def _module(frame: FrameType | None) -> str | None:
    name = str(frame.f_globals.get("__name__", "")) if frame is not None else ""
    if name.startswith("caproute") and not name.startswith("caproute.testing"):
        return name
    return None


def crossings(run: Callable[[], Any], calls: list[str] | None = None) -> list[Crossing]:
    """The crossings between caproute modules while `run()` runs (this thread only);
    every call into a caproute function is appended to `calls` if given."""
    seen: list[Crossing] = []

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call":
            return
        callee = _module(frame)
        if callee is None:
            return
        if calls is not None:
            calls.append(f"{callee}.{frame.f_code.co_name}")
        caller = frame.f_back
        caller_module = _module(caller)
        if caller_module is None:
            outside = str(caller.f_globals.get("__name__", "?")) if caller is not None else "?"
            seen.append((f"<{outside.partition('.')[0]}>", callee, frame.f_code.co_name))
        elif caller_module != callee:
            seen.append((caller_module, callee, frame.f_code.co_name))

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return seen


def boundary_counts(path: list[Crossing]) -> collections.Counter[tuple[str, str]]:
    """How often each ``(caller, callee)`` pair of caproute modules was crossed."""
    return collections.Counter((a, b) for a, b, _ in path if not a.startswith("<"))


def warm_request_path(via: str, calls: list[str] | None = None) -> list[Crossing]:
    """The crossings of one warm, unchanged ``messages.create`` through `wrap`."""
    import anthropic

    import caproute
    from caproute.testing import FakeAnthropic

    with FakeAnthropic(api_key="sk-ant-path") as fake:
        router = caproute.LiveRouter(caproute.Registry.from_models(fake.models()))
        bare = anthropic.Anthropic(base_url=fake.url, api_key=fake.api_key, max_retries=0)
        client = caproute.wrap(bare, router=router, via=via)  # type: ignore[arg-type]
        model = fake.models()[0]["id"]
        request = {
            "model": model,
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}],
        }

        def send() -> Any:
            return client.messages.create(**request)

        for _ in range(3):
            send()
        path = crossings(send, calls)
        client.close()
        bare.close()
        return path


def main(argv: list[str]) -> int:
    for via in argv or ["middleware", "transport"]:
        calls: list[str] = []
        path = warm_request_path(via, calls)
        counts = boundary_counts(path)
        modules = {m for pair in counts for m in pair}
        lines = [
            f"# via={via}: {len(calls)} calls to caproute functions, {len(path)} of them "
            f"into another module, {len(counts)} boundaries, {len(modules)} modules",
            *(f"{caller} -> {callee}.{function}" for caller, callee, function in path),
            *(f"crossed {n} times: {a} -> {b}" for (a, b), n in sorted(counts.items()) if n > 1),
        ]
        sys.stdout.write("\n".join(lines) + "\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
