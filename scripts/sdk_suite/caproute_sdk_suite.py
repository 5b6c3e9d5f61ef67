"""A pytest plugin for the anthropic SDK's own test suite: every client it builds, wrapped.

Loaded by `run.py` with ``-p caproute_sdk_suite`` (after the suite's own
``-p tests._alias_httpx``). Settings come from the environment:

* ``CAPROUTE_SDK_SUITE_WRAP``: ``off`` (the unwrapped reference run), the `via` to
  wrap with (``auto``, ``middleware``, ``transport``), or ``empty-middleware`` (the
  control: ``client.with_middleware(passthrough)``, no caproute at all);
* ``CAPROUTE_SDK_SUITE_REGISTRY``: ``live`` (default ``wrap()``: no ``registry=``) or
  ``embedded`` (``registry=caproute.embedded_registry()``, no fetch);
* ``CAPROUTE_SDK_SUITE_RESULTS``: where to write each test's outcome (JSON).

Every ``Anthropic`` / ``AsyncAnthropic`` (or a subclass the tests define; not the SDK's
own platform subclasses, Foundry and Google Cloud, which `wrap` is not for) the tests
construct becomes
``caproute.wrap(client, ...)``: the classes get a ``__new__`` that builds the client as
asked, wraps it, and hands back the wrapped copy. Clients built by the SDK itself while
copying one (``copy`` / ``with_options`` / ``with_middleware``, which construct
``self.__class__(...)``) and by `caproute.wrap` are left alone: a copy of a wrapped
client is routed already.
"""

from __future__ import annotations

import contextvars
import json
import os
import sys
from typing import Any

import pytest

_WRAP = os.environ.get("CAPROUTE_SDK_SUITE_WRAP", "off")
_REGISTRY = os.environ.get("CAPROUTE_SDK_SUITE_REGISTRY", "live")
_RESULTS = os.environ.get("CAPROUTE_SDK_SUITE_RESULTS")

_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("caproute_inside", default=False)
_outcomes: dict[str, str] = {}
_messages: dict[str, str] = {}
_wrapped_count = 0


def _copy_codes(classes: tuple[type[Any], ...]) -> frozenset[Any]:
    codes = set()
    for cls in classes:
        for klass in cls.__mro__:
            for name in ("copy", "with_options", "with_middleware"):
                function = klass.__dict__.get(name)
                code = getattr(function, "__code__", None)
                if code is not None:
                    codes.add(code)
    return frozenset(codes)


def _passthrough(request: Any, call_next: Any) -> Any:
    return call_next(request)


async def _passthrough_async(request: Any, call_next: Any) -> Any:
    return await call_next(request)


def _is_platform_client(cls: type[Any]) -> bool:
    """The SDK's own subclasses for other platforms (Foundry, Google Cloud...): `wrap`
    takes ``Anthropic`` / ``AsyncAnthropic`` (and a caller's subclass of them)."""
    return cls.__module__.startswith("anthropic.") and cls.__name__ not in _CLIENT_NAMES


_CLIENT_NAMES = frozenset({"Anthropic", "AsyncAnthropic"})


def _install() -> None:
    import anthropic

    import caproute

    classes = (anthropic.Anthropic, anthropic.AsyncAnthropic)
    copy_codes = _copy_codes(classes)
    options: dict[str, Any] = {"via": _WRAP}
    if _REGISTRY == "embedded":
        options["registry"] = caproute.embedded_registry()

    def wrap(client: Any) -> Any:
        if _WRAP == "empty-middleware":  # the control: SDK middleware, no caproute
            is_async = isinstance(client, anthropic.AsyncAnthropic)
            return client.with_middleware(_passthrough_async if is_async else _passthrough)
        return caproute.wrap(client, **options)

    for base in classes:
        original_init = base.__init__

        def __new__(cls: type[Any], *args: Any, _base: type[Any] = base, **kwargs: Any) -> Any:
            instance = object.__new__(cls)
            caller = sys._getframe(1).f_code
            if _inside.get() or caller in copy_codes or _is_platform_client(cls):
                return instance  # a copy of a (wrapped) client, or wrap's own: as it is
            global _wrapped_count
            token = _inside.set(True)
            try:
                instance.__init__(*args, **kwargs)
                wrapped = wrap(instance)
            finally:
                _inside.reset(token)
            _wrapped_count += 1
            # `type.__call__` calls `__init__` again on what `__new__` returns: once, skip it.
            wrapped.__dict__["_caproute_suite_skip_init"] = True
            return wrapped

        def __init__(self: Any, *args: Any, _init: Any = original_init, **kwargs: Any) -> None:
            if self.__dict__.pop("_caproute_suite_skip_init", False):
                return
            _init(self, *args, **kwargs)

        __init__.__wrapped__ = original_init  # type: ignore[attr-defined]
        base.__new__ = __new__  # type: ignore[method-assign]
        base.__init__ = __init__  # type: ignore[method-assign]


if _WRAP != "off":
    _install()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    previous = _outcomes.get(report.nodeid)
    if report.failed:
        outcome = "failed" if report.when == "call" else "error"
    elif report.skipped:
        outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
    else:
        outcome = "passed" if report.when == "call" else (previous or "passed")
    if previous in ("failed", "error"):
        return  # a teardown error after a failure: the failure is what counts
    if report.when == "call" or previous is None or outcome in ("failed", "error", "skipped"):
        _outcomes[report.nodeid] = outcome
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        message = getattr(crash, "message", None) or str(report.longrepr).splitlines()[-1:]
        _messages[report.nodeid] = str(message)[:400]


def pytest_sessionfinish() -> None:
    if _RESULTS:
        with open(_RESULTS, "w", encoding="utf-8") as file:
            json.dump(
                {"wrapped_clients": _wrapped_count, "outcomes": _outcomes, "messages": _messages},
                file,
                indent=0,
            )
