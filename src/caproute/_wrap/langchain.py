"""LangChain's ``ChatAnthropic``: where it keeps its anthropic clients, in one place.

Why private attributes: ``ChatAnthropic`` (langchain-anthropic 1.x) takes no client
or HTTP client argument. It builds an ``anthropic.Client`` and an
``anthropic.AsyncClient`` lazily, in two ``functools.cached_property`` attributes,
``_client`` and ``_async_client``, and every request (``invoke``, ``stream``,
``ainvoke``, ``astream``, tool calls, ``get_num_tokens_from_messages``) goes through
them. A ``cached_property`` keeps its value in the instance ``__dict__``, so a copy
(``model_copy()``, pydantic's public copy) whose ``__dict__`` already holds routed
clients uses them and never builds its own. That is the only in-process hook there
is; the public alternative is the proxy (``ChatAnthropic(base_url=...)``).

This module is the only place caproute touches those names. `check_hooks` verifies
them on every wrap (and ``tests/integration/test_framework_hooks.py`` in the suite),
so a langchain-anthropic release that moves them fails loudly, with a message
naming the way round it, instead of silently sending unrouted requests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

__all__ = ["HOOKS", "check_hooks", "routed_copy", "sdk_clients"]

HOOKS: tuple[str, str] = ("_client", "_async_client")
"""The sync and async anthropic clients of a ``ChatAnthropic`` (cached properties)."""


def check_hooks(chat_class: type) -> None:
    """Raise unless `chat_class` still keeps its clients in the cached properties we set.

    Raises:
        TypeError: langchain-anthropic changed how ``ChatAnthropic`` holds its clients.
    """
    for name in HOOKS:
        attribute = _class_attribute(chat_class, name)
        if not isinstance(attribute, functools.cached_property):
            raise TypeError(
                f"caproute.wrap can't route this {chat_class.__name__}: langchain-anthropic "
                f"no longer keeps its anthropic client in the cached property {name!r} "
                f"(found {type(attribute).__name__}). Route through the proxy instead: "
                "run `caproute serve` and pass base_url='http://127.0.0.1:8787'."
            )


def sdk_clients(chat: Any) -> tuple[Any, Any]:
    """The chat model's ``(anthropic.Client, anthropic.AsyncClient)``, built if not yet."""
    check_hooks(type(chat))
    return getattr(chat, HOOKS[0]), getattr(chat, HOOKS[1])


def routed_copy(chat: Any, route_client: Callable[[Any], Any]) -> Any:
    """A copy of `chat` whose two clients are ``route_client(original client)``.

    The original keeps its own clients and stays unrouted; the copy has the same
    class and settings, so ``bind_tools``, ``with_structured_output``, callbacks and
    tracing see an ordinary ``ChatAnthropic``.
    """
    sync_client, async_client = sdk_clients(chat)
    copy = chat.model_copy()
    # A cached_property is a non-data descriptor: a value in the instance __dict__ wins.
    copy.__dict__[HOOKS[0]] = route_client(sync_client)
    copy.__dict__[HOOKS[1]] = route_client(async_client)
    return copy


def _class_attribute(cls: type, name: str) -> object:
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None
