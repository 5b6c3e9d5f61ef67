"""Reading a routed request body as the upstream will read it, or refusing it.

The transports (and through them the proxy) see a routed request as bytes. caproute
routes what it reads there, and the upstream acts on what *it* reads: the two must
be the same request, or routing is sidestepped. Each way they could differ is closed:

* **Content encoding.** A ``gzip`` or ``deflate`` body (``Content-Encoding``, also
  stacked) is decoded, with the decoded size capped at the endpoint's request limit
  (a decompression bomb is a 413, not an allocation), routed, and re-encoded the same
  way when routing changed it. Any other coding (``br``, ``zstd``…) is refused with
  415: caproute can't read it, so it must not forward it unread.
* **Duplicate keys.** Python's json (and JavaScript's, and Go's) keeps the last of two
  equal keys; other parsers keep the first or refuse. A body with one is *normalised*:
  forwarded re-serialised from what caproute read, so every parser reads the same.
* **Numbers JSON doesn't have.** ``NaN`` / ``Infinity`` (which Python's json accepts) and
  numbers a float can't hold (``1e400``) are refused with 400: parsers disagree about
  them, and an edited body must never carry one (`dumps` refuses them too).
* **Nesting deeper than the stack.** Refused with 400: another parser might read what
  caproute can't, and a body caproute didn't read must not skip routing.

What stays as it was: bytes that are not JSON at all, and JSON that is not an object,
are forwarded untouched (every parser agrees they are not a Messages request: the
upstream answers its own 400). A body in UTF-16/32 or with a byte-order mark is read
the way RFC 8259 parsers read it.

Cost on the hot path (measured in docs/reliability.md): the strict decoder differs
from ``json.loads`` by one hook call per JSON object (duplicate detection, ~0.25 µs
each: +0.5 µs for a one-line prompt); ``NaN`` and float hooks run only for those tokens.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable
from typing import Any, Final

from .decision import Decision

__all__ = [
    "DECODED_LIMITS",
    "NOT_JSON",
    "BodyRefused",
    "decode",
    "dumps",
    "encode",
    "internal_error_message",
    "parse",
    "parse_codings",
    "refused_decision",
]


class BodyRefused(Exception):
    """The body can't be forwarded safely: answer the caller locally with this error."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


NOT_JSON: Final = object()
"""What `parse` returns for bytes that are not JSON (forwarded untouched)."""

_MIB = 1024 * 1024
DECODED_LIMITS: Final = {"messages": 32 * _MIB, "count_tokens": 32 * _MIB, "batch": 256 * _MIB}
"""Largest decoded (decompressed) body per endpoint: the API's own request size caps."""

_GZIP: Final = frozenset({"gzip", "x-gzip"})
_KNOWN_CODINGS: Final = _GZIP | {"deflate", "identity"}


# -- JSON ---------------------------------------------------------------------------------


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


class _NotAJsonNumber(Exception):
    def __init__(self, token: str) -> None:
        self.token = token


def _unique_keys(
    pairs: list[tuple[str, Any]], _dict: type[dict[str, Any]] = dict, _len: Any = len
) -> dict[str, Any]:
    # Called for every object of every routed body: builtins bound as locals.
    obj = _dict(pairs)
    if _len(obj) != _len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _no_constant(token: str) -> Any:
    raise _NotAJsonNumber(token)


def _finite_float(token: str) -> float:
    value = float(token)
    if math.isinf(value):
        raise _NotAJsonNumber(token)
    return value


_STRICT: Final = json.JSONDecoder(
    object_pairs_hook=_unique_keys, parse_constant=_no_constant, parse_float=_finite_float
)
# The C scanner itself (typeshed omits the attribute): `json.loads` reaches it through
# three Python frames and two whitespace regex matches; a body the SDK serialised
# starts at its first character and ends at its last, so it is called directly.
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = _STRICT.scan_once  # type: ignore[attr-defined]
_LAST_WINS: Final = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


def parse(content: bytes) -> tuple[Any, str | None]:
    """The JSON value of a request body, and the first duplicated key (if any).

    Returns:
        ``(value, None)``; ``(value, key)`` when an object repeats `key` (`value` then
        holds the last of each, as Python reads it); ``(NOT_JSON, None)`` for bytes
        that are not JSON.

    Raises:
        BodyRefused: The body is JSON that parsers may read differently, or that is
            nested deeper than caproute can read.
    """
    try:
        try:
            # The common case: UTF-8 (RFC 8259 §8.1) starting at its first character
            # and ending at its last, as every SDK sends it: the scanner alone.
            text = content.decode()
            value, end = _SCAN(text, 0)
            if end == len(text):
                return value, None
        except (UnicodeDecodeError, StopIteration, json.JSONDecodeError):
            pass
        # Anything else (whitespace, trailing data, a byte-order mark, UTF-16/32,
        # invalid JSON): what `json.loads(bytes)` reads, or its error.
        return _decode(content, _STRICT), None
    except _DuplicateKey as duplicate:
        return _decode(content, _LAST_WINS), _shown(duplicate.key)
    except _NotAJsonNumber as bad:
        raise BodyRefused(
            400,
            "invalid_request_error",
            f"the request body is not valid JSON: {_shown(bad.token)} is not a JSON number "
            "(NaN, Infinity and numbers beyond a double are refused: parsers disagree on them)",
        ) from None
    except RecursionError:
        raise BodyRefused(
            400, "invalid_request_error", "the request body is nested too deeply to read"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return NOT_JSON, None
    except ValueError as exc:  # int() beyond sys.get_int_max_str_digits()
        raise BodyRefused(
            400,
            "invalid_request_error",
            f"the request body has a number caproute can't read: {exc}",
        ) from None


def _decode(content: bytes, decoder: json.JSONDecoder) -> Any:
    """`content` decoded as `json.loads(bytes)` would (encoding detection included)."""
    try:
        text: str | None = content.decode()
    except UnicodeDecodeError:
        text = None
    if text is None or text[:1] == "\ufeff" or "\x00" in text[:4]:
        # A byte-order mark, or UTF-16/32 (NULs among the first four bytes).
        text = content.decode(json.detect_encoding(content), "surrogatepass")
    return decoder.decode(text)


def dumps(body: Any) -> bytes:
    """An edited body as compact JSON; never ``NaN`` / ``Infinity`` tokens.

    Raises:
        BodyRefused: The body holds a non-finite float or is nested too deeply.
    """
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        raise BodyRefused(
            400, "invalid_request_error", "the request body holds a number JSON can't carry"
        ) from None
    except RecursionError:
        raise BodyRefused(
            400, "invalid_request_error", "the request body is nested too deeply to send"
        ) from None


def _shown(text: str) -> str:
    """A key or token for an error message: quoted, and cut short."""
    return repr(text if len(text) <= 40 else text[:40] + "…")


# -- local answers ------------------------------------------------------------------------


def refused_decision(reason: str) -> Decision:
    """The decision reported for a call caproute answers itself without routing it."""
    return Decision(outcome="rejected", requested_model=None, model=None, reason=reason)


def internal_error_message(exc: BaseException) -> str:
    """What a caller is told about an error in routing (its type only: an exception's
    text may quote the request)."""
    if isinstance(exc, RecursionError):
        return "the request body is nested too deeply to route"
    return f"internal error while routing this request ({type(exc).__name__}); it was not sent"


# -- content codings ----------------------------------------------------------------------


def parse_codings(header: str) -> tuple[str, ...]:
    """The ``Content-Encoding`` codings to undo, in the order they were applied.

    Raises:
        BodyRefused: A coding caproute can't decode (415).
    """
    codings = tuple(c.strip().lower() for c in header.split(",") if c.strip())
    for coding in codings:
        if coding not in _KNOWN_CODINGS:
            raise BodyRefused(
                415,
                "invalid_request_error",
                f"request content-encoding {_shown(coding)} is not supported by caproute "
                "(send gzip, deflate or identity)",
            )
    return tuple(c for c in codings if c != "identity")


def decode(content: bytes, codings: tuple[str, ...], limit: int) -> bytes:
    """`content` with `codings` undone (last applied first), at most `limit` bytes.

    Raises:
        BodyRefused: Corrupt data (400) or a decoded body over `limit` (413).
    """
    for coding in reversed(codings):
        content = _inflate(content, coding, limit)
    return content


def encode(content: bytes, codings: tuple[str, ...]) -> bytes:
    """`content` encoded with `codings`, in order (fast settings: bytes on the wire
    matter less than the caller's latency)."""
    for coding in codings:
        if coding in _GZIP:
            compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        else:
            compressor = zlib.compressobj(1)
        content = compressor.compress(content) + compressor.flush()
    return content


def _inflate(data: bytes, coding: str, limit: int) -> bytes:
    if coding in _GZIP:
        return _inflate_with(data, 16 + zlib.MAX_WBITS, coding, limit)
    try:
        return _inflate_with(data, zlib.MAX_WBITS, coding, limit)
    except BodyRefused as refused:
        if refused.status != 400:
            raise
        # "deflate" is zlib-wrapped by the RFC, but some clients send it raw.
        return _inflate_with(data, -zlib.MAX_WBITS, coding, limit)


def _inflate_with(data: bytes, wbits: int, coding: str, limit: int) -> bytes:
    out: list[bytes] = []
    size = 0
    try:
        while data:  # a gzip body may hold several members, one after the other
            inflater = zlib.decompressobj(wbits)
            chunk = inflater.decompress(data, limit - size + 1)
            size += len(chunk)
            if size > limit or inflater.unconsumed_tail:
                raise BodyRefused(
                    413,
                    "request_too_large",
                    f"the request body decodes to more than {limit} bytes",
                )
            out.append(chunk)
            if not inflater.eof:
                raise zlib.error("truncated")
            data = inflater.unused_data if wbits > 0 else b""
    except zlib.error:
        raise BodyRefused(
            400, "invalid_request_error", f"the request body is not valid {coding} data"
        ) from None
    return b"".join(out)
