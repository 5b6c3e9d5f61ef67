"""Ready-made ``reply=`` functions for `FakeAnthropic`.

The fake's default answer is one line of text. An agent under test usually needs
more: a model that calls the tool it was given, then answers once the tool's result
comes back. `call_tools` is that model, deterministic, so a test can drive a whole
agent loop (tool call → tool result → final answer) against the fake, including a
structured answer asked for with a JSON schema (``output_config.format``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["call_tools"]

ReplyFunction = Callable[[dict[str, Any], str], "str | list[dict[str, Any]]"]


def call_tools(answer: str | None = None) -> ReplyFunction:
    """A reply function that calls the request's first tool, then answers in text.

    When the request offers ``tools`` and its last message brings no ``tool_result``,
    the reply is one ``tool_use`` block for the first tool whose input fills each
    required property of its ``input_schema`` with a placeholder (the first ``enum``
    value, else ``"example"``, ``1``, ``true``, ``[]`` or ``{}`` by type). Otherwise,
    when the request asks for a JSON schema (``output_config.format`` or the older
    ``output_format``), it is that schema's example as JSON text, filled the same way
    (how LangChain's ``with_structured_output(method="json_schema")`` and pydantic-ai's
    ``NativeOutput`` ask). Otherwise it is text: `answer`, or ``"<model id> read: <tool
    results>"``.

    Example:
        >>> FakeAnthropic(reply=call_tools())
    """

    def reply(body: dict[str, Any], model_id: str) -> str | list[dict[str, Any]]:
        tools = [t for t in body.get("tools") or () if isinstance(t, Mapping) and "name" in t]
        results = _tool_results(body.get("messages"))
        if tools and not results:
            tool = tools[0]
            return [{"type": "tool_use", "name": tool["name"], "input": _example_input(tool)}]
        schema = _json_schema_asked_for(body)
        if schema is not None:
            return json.dumps(_example_of(schema))
        if answer is not None:
            return answer
        return f"{model_id} read: {'; '.join(results)}" if results else f"Hello from {model_id}."

    return reply


def _tool_results(messages: Any) -> list[str]:
    """The text of each ``tool_result`` in the last message (empty if none)."""
    if not isinstance(messages, Sequence) or not messages or not isinstance(messages[-1], Mapping):
        return []
    content = messages[-1].get("content")
    if not isinstance(content, Sequence) or isinstance(content, str):
        return []
    return [
        _text_of(block.get("content"))
        for block in content
        if isinstance(block, Mapping) and block.get("type") == "tool_result"
    ]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(
            str(block.get("text", "")) for block in content if isinstance(block, Mapping)
        )
    return ""


_PLACEHOLDERS: dict[str, Any] = {
    "string": "example",
    "integer": 1,
    "number": 1,
    "boolean": True,
    "array": [],
    "object": {},
}


def _json_schema_asked_for(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The JSON schema the request wants its answer in, if any."""
    config = body.get("output_config")
    formats = [config.get("format") if isinstance(config, Mapping) else None]
    formats.append(body.get("output_format"))
    for output_format in formats:
        if isinstance(output_format, Mapping) and output_format.get("type") == "json_schema":
            schema = output_format.get("schema")
            return schema if isinstance(schema, Mapping) else {}
    return None


def _example_input(tool: Mapping[str, Any]) -> dict[str, Any]:
    schema = tool.get("input_schema")
    return _example_of(schema) if isinstance(schema, Mapping) else {}


def _example_of(schema: Mapping[str, Any]) -> dict[str, Any]:
    """An object filling each required property of `schema` with a placeholder."""
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    values: dict[str, Any] = {}
    for name in schema.get("required") or ():
        spec = properties.get(name)
        spec = spec if isinstance(spec, Mapping) else {}
        enum = spec.get("enum")
        if isinstance(enum, Sequence) and not isinstance(enum, str) and enum:
            values[name] = enum[0]
        else:
            kind = spec.get("type")
            values[name] = _PLACEHOLDERS.get(kind if isinstance(kind, str) else "", "example")
    return values
