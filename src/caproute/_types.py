"""Shared type aliases: JSON shapes, endpoints and injectable callables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeAlias

JSONValue: TypeAlias = Any
"""Any value `json.loads` can return."""

JSONObject: TypeAlias = dict[str, Any]
"""A decoded JSON object (a request body, a Models API entry, ...)."""

Endpoint: TypeAlias = Literal["messages", "count_tokens", "batch"]
"""Which Messages endpoint a body was sent to: it changes what the body may contain."""

Clock: TypeAlias = Callable[[], float]
"""A zero-argument callable returning seconds (like `time.monotonic` or `time.time`)."""

Sleep: TypeAlias = Callable[[float], None]
"""Blocks for the given number of seconds (like `time.sleep`); injectable for tests."""

AsyncSleep: TypeAlias = Callable[[float], Awaitable[None]]
"""Awaits for the given number of seconds (like `asyncio.sleep`); injectable for tests."""
