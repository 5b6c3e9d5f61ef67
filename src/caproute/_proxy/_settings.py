"""Where `caproute serve` gets its settings: flags, ``CAPROUTE_*`` variables and a config file.

One table, `caproute._proxy._settings_table.SETTINGS`, names every setting once; the
command-line flags, the environment variables and the config file's keys are all
derived from it here, so the three can't drift apart. Precedence, per setting:
**flag > environment > file > default**.

* Flag ``--max-body-bytes`` ↔ variable ``CAPROUTE_MAX_BODY_BYTES`` ↔ file key
  ``limits.max_body_bytes``. Booleans are ``--allow-bypass`` / ``--no-allow-bypass``
  and ``1/true/yes/on`` or ``0/false/no/off`` in the environment.
* The config file is YAML, validated as strictly as a routing policy, by the same
  machinery (`caproute._core.yaml_text.check_model_text`): unknown keys and wrong types
  are errors reading ``file:line:column: message`` with a did-you-mean. Relative paths
  in it are relative to the file.
* Secrets are never values in a file or on the command line: the file and the flags
  name the *variables* holding them (``api_key_env``, ``require_token_env``,
  ``admin.token_env``). ``CAPROUTE_REQUIRE_TOKEN`` and ``CAPROUTE_ADMIN_TOKEN`` (or
  ``--require-token`` / ``--admin-token``, for quick trials) are the only settings
  that are secrets themselves.

Building the argument parser imports nothing heavy; pydantic is loaded only to read a
config file.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .._exceptions import ConfigError
from ._settings_table import (
    BY_NAME,
    EXCLUSIVE,
    NOT_CONFIG_FIELDS,
    SECRETS,
    SETTINGS,
    Kind,
    Setting,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .._core.yaml_text import TextLimits
    from ._config import ProxyConfig

# -- the command line --------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting (every default `None`: unset flags don't override)."""
    groups: dict[int, argparse._MutuallyExclusiveGroup] = {}
    for setting in SETTINGS:
        target: Any = parser
        for index, pair in enumerate(EXCLUSIVE):
            if setting.name in pair:
                if index not in groups:
                    groups[index] = parser.add_mutually_exclusive_group()
                target = groups[index]
        options: dict[str, Any] = {"help": setting.help, "default": None}
        if setting.kind == "bool":
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["metavar"] = setting.metavar
            options["type"] = _ARG_TYPES[setting.kind]
            if setting.choices:
                options["choices"] = setting.choices
                options.pop("metavar")
        target.add_argument(setting.flag, dest=setting.name, **options)


_ARG_TYPES: Mapping[Kind, Any] = {
    "str": str,
    "int": int,
    "port": int,
    "float": float,
    "path": Path,
    "choice": str,
}


def from_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags."""
    return {
        s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name, None) is not None
    }


# -- the environment ---------------------------------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as ``CAPROUTE_*`` variables (empty ones count as unset).

    Raises:
        ConfigError: A value doesn't parse; the message names the variable (and, for
            the token, never shows the value).
    """
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env, "").strip()
        if raw:
            values[setting.name] = _parse(setting, raw)
    return values


def _parse(setting: Setting, raw: str) -> Any:
    shown = "(hidden)" if setting.name in SECRETS else repr(raw)
    try:
        if setting.kind == "bool":
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ValueError
        if setting.kind in ("int", "port"):
            return int(raw)
        if setting.kind == "float":
            return float(raw)
        if setting.kind == "path":
            return Path(raw)
        if setting.choices and raw.lower() not in setting.choices:
            raise ValueError
        return raw.lower() if setting.choices else raw
    except ValueError:
        expected = _EXPECTED[setting.kind]
        if setting.choices:
            expected = "one of " + ", ".join(setting.choices)
        raise ConfigError(f"{setting.env}: expected {expected}, got {shown}") from None


_EXPECTED: Mapping[Kind, str] = {
    "str": "a string",
    "int": "an integer",
    "port": "a port number",
    "float": "a number",
    "bool": "1/true/yes/on or 0/false/no/off",
    "path": "a path",
    "choice": "a choice",
}


# -- the config file ----------------------------------------------------------------------


def config_model() -> type[BaseModel]:
    """The pydantic model of the config file, built from `SETTINGS` (cached)."""
    global _MODEL
    if _MODEL is None:
        _MODEL = _build_model()
    return _MODEL


_MODEL: type[BaseModel] | None = None


def _field_type(setting: Setting) -> Any:
    from typing import Annotated

    from pydantic import Field, StrictBool, StrictInt, StrictStr

    if setting.kind == "bool":
        return StrictBool
    if setting.kind == "int":
        return Annotated[StrictInt, Field(gt=0)]
    if setting.kind == "port":
        return Annotated[StrictInt, Field(ge=0, le=65535)]
    if setting.kind == "float":
        return Annotated[float, Field(gt=0, strict=True)]
    if setting.kind == "choice":
        return Literal[setting.choices]
    return Annotated[StrictStr, Field(min_length=1)]


def _build_model() -> type[BaseModel]:
    from pydantic import BaseModel, ConfigDict, create_model

    strict = ConfigDict(extra="forbid", frozen=True)
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.file_key is None:
            continue
        field = (_field_type(setting) | None, None)
        if len(setting.file_key) == 1:
            top[setting.file_key[0]] = field
        else:
            sections.setdefault(setting.file_key[0], {})[setting.file_key[1]] = field
    for section, fields in sections.items():
        model = create_model(section.capitalize(), __config__=strict, **fields)
        model.__doc__ = f"The config file's `{section}` section."
        top[section] = (model | None, None)
    root: type[BaseModel] = create_model("ServerConfig", __config__=strict, **top)
    assert issubclass(root, BaseModel)
    return root


def _file_values(document: BaseModel, base: Path) -> dict[str, Any]:
    """Setting name → value for what the file sets (relative paths made absolute)."""
    values: dict[str, Any] = {}
    data = document.model_dump(exclude_none=True)
    for setting in SETTINGS:
        if setting.file_key is None:
            continue
        node: Any = data
        for part in setting.file_key:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            continue
        if setting.kind == "path":
            node = base / Path(node).expanduser()
        values[setting.name] = node
    return values


def check_config_text(
    text: str, *, filename: str, files: bool = False, limits: TextLimits | None = None
) -> tuple[dict[str, Any] | None, tuple[Any, ...]]:
    """Validate a server config file's text.

    Args:
        text: The file's text.
        filename: Its name, for the errors (relative paths in it are relative to it).
        files: Also check that the policy file it names can be read and the snapshot
            it names loads (`caproute check`); the errors point at their keys.
        limits: The bounds on the YAML (default: a policy file's, `policy_limits()`,
            which ``CAPROUTE_POLICY_MAX_*`` change).

    Returns:
        The settings it gives (`None` if invalid) and its errors (`PolicyError`s, each
        ``file:line:column: message``), sorted by position.
    """
    from .._core.yaml_text import check_model_text
    from .._registry.policy_files import policy_limits

    base = Path(filename).resolve().parent

    def semantic(document: BaseModel) -> Iterator[tuple[tuple[str | int, ...], str]]:
        yield from _semantic(document)
        if files:
            yield from _named_file_problems(document, base)

    document, errors = check_model_text(
        text,
        config_model(),
        filename=filename,
        what="server config",
        semantic=semantic,
        limits=limits or policy_limits(),
    )
    if document is None:
        return None, errors
    return _file_values(document, base), ()


def _named_file_problems(
    document: BaseModel, base: Path
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """The policy file named can't be read, or the snapshot named doesn't load."""
    from .._exceptions import PolicyError, SnapshotError
    from .._registry.policy_files import read_policy_text
    from .._registry.snapshot import load_snapshot

    data = document.model_dump(exclude_none=True)
    if "policy" in data:
        try:
            read_policy_text(base / Path(data["policy"]).expanduser())
        except PolicyError as exc:
            yield ("policy",), f"{exc.file}: {exc.message}"
    if "snapshot" in data:
        try:
            load_snapshot(base / Path(data["snapshot"]).expanduser())
        except SnapshotError as exc:
            yield ("snapshot",), str(exc)


def _semantic(document: BaseModel) -> Iterator[tuple[tuple[str | int, ...], str]]:
    from ._config import _check_upstream

    data = document.model_dump(exclude_none=True)
    upstream = data.get("upstream")
    if upstream is not None:
        try:
            _check_upstream(upstream)
        except ConfigError as exc:
            yield ("upstream",), str(exc)
    admin = data.get("admin", {})
    if "listen" in admin:
        from ._config import parse_listen

        listen = data.get("listen", {})
        try:
            _, admin_port = parse_listen(admin["listen"], listen.get("host", "127.0.0.1"))
        except ConfigError as exc:
            yield ("admin", "listen"), str(exc).removeprefix("admin_listen: ")
        else:
            if admin_port == listen.get("port", 8787):
                yield (
                    ("admin", "listen"),
                    f"port {admin_port} is the main port (listen.port); give the admin "
                    "listener a port of its own",
                )
    credentials = data.get("credentials", {})
    if "require_token_env" in credentials and "api_key_env" not in credentials:
        yield (
            ("credentials", "require_token_env"),
            "a local token is for own-key mode: set credentials.api_key_env too "
            "(in pass-through mode callers authenticate with their own key)",
        )


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings a config file gives, read under a policy file's limits
    (`policy_limits`: ``CAPROUTE_POLICY_MAX_*``; a file over the size limit is not read
    whole).

    Raises:
        ConfigError: The file can't be read; `PolicyError` (a `ConfigError`) for the
            first problem in it, as ``file:line:column: message``.
    """
    from .._registry.policy_files import policy_limits, read_capped_text

    limits = policy_limits()
    try:
        text = read_capped_text(path, limits, "server config")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"cannot read the server config {path}: {reason}") from None
    values, errors = check_config_text(text, filename=os.fspath(path), limits=limits)
    if values is None:
        raise errors[0]
    return values


def looks_like_server_config(text: str) -> bool:
    """Whether YAML text is a server config rather than a routing policy (for `caproute check`).

    A policy's top-level keys are ``version``, ``defaults``, ``routes`` (and ``$schema``);
    a server config has none of them and at least one of its own.
    """
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    if not isinstance(data, dict):
        return False
    keys = set(map(str, data))
    server_keys = {s.file_key[0] for s in SETTINGS if s.file_key}
    return bool(keys & server_keys) and not keys & {"version", "defaults", "routes", "$schema"}


# -- putting it together ------------------------------------------------------------------


def resolve(
    flags: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> tuple[ProxyConfig, dict[str, str]]:
    """The `ProxyConfig` from flags, environment and config file, flag > env > file.

    Args:
        flags: Settings given on the command line (`from_arguments`).
        environ: The environment (default `os.environ`).

    Returns:
        The configuration, and where each setting came from (``flag``, ``env``,
        ``file``), for the start-up log line.

    Raises:
        ConfigError: A bad value, file or combination; messages never show a secret.
    """
    from ._config import ProxyConfig

    environ = os.environ if environ is None else environ
    env_values = from_environment(environ)
    config_file = flags.get("config") or env_values.get("config")
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config_file is not None:
        layers.append(("file", read_config_file(Path(config_file))))
    layers += [("env", env_values), ("flag", flags)]
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for where, layer in layers:
        for name, value in layer.items():
            values[name] = value
            origin[name] = where
    options = {k: v for k, v in values.items() if k not in NOT_CONFIG_FIELDS}
    options["api_key"] = _secret(values.get("api_key_env"), "api_key_env", environ)
    token = values.get("require_token")
    if token is None:
        token = _secret(values.get("require_token_env"), "require_token_env", environ)
    options["require_token"] = token
    admin_token = values.get("admin_token")
    if admin_token is None:
        admin_token = _secret(values.get("admin_token_env"), "admin_token_env", environ)
    options["admin_token"] = admin_token
    return ProxyConfig(**options), origin


def _secret(variable: str | None, name: str, environ: Mapping[str, str]) -> str | None:
    if variable is None:
        return None
    value = environ.get(variable, "").strip()
    if not value:
        # Name the variable, never a value.
        raise ConfigError(
            f"{BY_NAME[name].flag}: environment variable {variable} is not set or empty"
        )
    return value
