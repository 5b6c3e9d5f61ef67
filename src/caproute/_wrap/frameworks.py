"""Which agent-framework object `wrap` was given, told apart without importing a framework.

`caproute.wrap` takes, besides the anthropic SDK's clients, the objects agent frameworks
hold them in: LangChain's ``ChatAnthropic`` and pydantic-ai's ``AnthropicProvider`` /
``AnthropicModel``. Those packages are optional and heavy, so nothing here imports
them: an object is recognised by the modules of its class and base classes
(``langchain_anthropic...``, ``pydantic_ai...``), and a framework's adapter module
(`caproute._wrap.langchain`, `caproute._wrap.pydantic_ai`) is imported
only once the caller has handed over one of its objects, i.e. once the framework is
already imported.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Framework", "framework_of"]

Framework = Literal["langchain", "pydantic_ai_provider", "pydantic_ai_model"]

# (module prefix, class name) → framework; subclasses are recognised through their MRO.
_KNOWN: dict[tuple[str, str], Framework] = {
    ("langchain_anthropic", "ChatAnthropic"): "langchain",
    ("pydantic_ai", "AnthropicProvider"): "pydantic_ai_provider",
    ("pydantic_ai", "AnthropicModel"): "pydantic_ai_model",
}


def framework_of(obj: object) -> Framework | None:
    """The framework `obj` belongs to (its class or a base class), or `None`.

    Only class names and module names are read: calling this never imports anything.
    """
    for cls in type(obj).__mro__:
        package = cls.__module__.partition(".")[0]
        found = _KNOWN.get((package, cls.__name__))
        if found is not None:
            return found
    return None
