"""Load ``lakeforge.yml``: YAML, then the secrets file, then environment variables, then validation.

Layering (later wins):
1. ``lakeforge.yml`` in the project folder; ``${VAR}`` and ``${VAR:-default}`` are expanded from the
   environment anywhere in a string.
2. ``secrets.yml`` beside it (keep it out of version control), merged key by key.
3. Environment variables ``LAKEFORGE__<KEY>__<SUBKEY>=value`` (double underscores nest), e.g.
   ``LAKEFORGE__WAREHOUSE__PATH=/data/wh.duckdb``. Values are parsed as YAML scalars.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from lakeforge import redaction
from lakeforge.config.models import ProjectConfig
from lakeforge.errors import ConfigError

CONFIG_FILE = "lakeforge.yml"
SECRETS_FILE = "secrets.yml"
ENV_PREFIX = "LAKEFORGE__"
BACKEND_KEYS = ("engine", "warehouse")
BACKEND_TYPES = frozenset({"duckdb", "spark", "snowflake", "postgres"})
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
UNSET = "${{{}}}"  # a variable left for later (see _deferred): the text as written, which require_set finds
_UNSET = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_config(project_dir: Path, *, environ: Mapping[str, str] | None = None) -> ProjectConfig:
    env = os.environ if environ is None else environ
    path = project_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"no {CONFIG_FILE} in {project_dir}",
            hint="run the command inside a project folder, pass --project DIR, or create one with `lakeforge init DIR`",
        )
    raw = _read_yaml(path)
    secrets = project_dir / SECRETS_FILE
    if secrets.is_file():
        hidden = _read_yaml(secrets)
        redaction.register(_strings(hidden))
        raw = _deep_merge(raw, hidden)
    raw = _deep_merge(raw, _env_overlay(env))
    raw = _expand(raw, env, path)
    try:
        config = ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(exc, path) from None
    redaction.register(_secret_values(config))
    return config


def _strings(value: Any) -> list[str]:
    """Every string in a parsed YAML document (its leaves)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _secret_values(model: BaseModel) -> list[str]:
    """The values of every ``SecretStr`` setting (a password written in lakeforge.yml itself)."""
    found: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        for item in value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]:
            if isinstance(item, SecretStr):
                found.append(item.get_secret_value())
            elif isinstance(item, BaseModel):
                found += _secret_values(item)
    return found


def unset(model: BaseModel, *, at: str) -> list[str]:
    """``at.path: ${VAR}`` for every setting under ``model`` that names an environment variable that was not set
    (only the warehouse's connection and the alert channels may: they are resolved when used)."""
    found: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else \
            [(None, value)]
        for key, item in items:
            where = f"{at}.{name}" + (f".{key}" if key is not None else "")
            text = item.get_secret_value() if isinstance(item, SecretStr) else item
            if isinstance(text, str):
                found += [f"{where}: ${{{m}}}" for m in _UNSET.findall(text)]
            elif isinstance(item, BaseModel):
                found += unset(item, at=where)
    return found


def require_set(model: BaseModel, *, at: str, use: str) -> None:
    """Fail, naming the settings and variables, when ``model`` (the section ``at``) needs an environment variable
    that is not set; ``use`` says what needs it."""
    missing = unset(model, at=at)
    if missing:
        names = sorted({m.rsplit("${", 1)[1].rstrip("}") for m in missing})
        raise ConfigError(f"{use} needs the environment variable{'s' if len(names) > 1 else ''} "
                          f"{', '.join(names)}, which {'are' if len(names) > 1 else 'is'} not set "
                          f"({'; '.join(missing)})",
                          hint=f"export {names[0]}=... (or put the value in secrets.yml)")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}",
            hint="check indentation and quoting on that line",
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, found {type(data).__name__}",
                          hint="start the file with keys such as `name:` and `sources:`")
    return data


def _deep_merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _env_overlay(env: Mapping[str, str]) -> dict[str, Any]:
    overlay: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX):].split("__") if k]
        if not keys:
            continue
        node = overlay
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = yaml.safe_load(value) if value else value
    return overlay


def _expand(value: Any, env: Mapping[str, str], path: Path, at: tuple[str, ...] = ()) -> Any:
    """``${VAR}`` and ``${VAR:-default}`` replaced from the environment; each value taken from it is a secret
    (:mod:`lakeforge.redaction`). A variable that is not set is an error, except in the warehouse's connection
    settings and the alert channels, which only the commands that connect or send need: there it stays as a
    marker (:func:`require_set` fails when the setting is used)."""
    if isinstance(value, str):
        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                redaction.register([env[name]])
                return env[name]
            if default is not None:
                return default
            if _deferred(at):
                return UNSET.format(name)
            raise ConfigError(f"{path}: ${{{name}}} is used but the environment variable {name} is not set",
                              hint=f"export {name}=... or write ${{{name}:-default}}")
        return _VAR.sub(repl, value)
    if isinstance(value, dict):
        return {k: _expand(v, env, path, (*at, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, path, at) for v in value]
    return value


def _deferred(at: tuple[str, ...]) -> bool:
    """Settings resolved when used: the warehouse's connection (not its type or a DuckDB file's path), the alert
    channels."""
    return (len(at) >= 2 and at[0] == "warehouse" and at[1] not in ("type", "path")) or at[:2] == ("alerts", "channels")


def _config_error(exc: ValidationError, path: Path) -> ConfigError:
    lines = []
    hints = []
    for err in exc.errors():
        err["loc"] = _without_tags(err["loc"])
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
        loc = loc or "(top level)"
        if err["type"] == "extra_forbidden":
            field = str(err["loc"][-1])
            known = _known_fields(err["loc"][:-1])
            close = difflib.get_close_matches(field, known, n=1)
            lines.append(f"{loc}: unknown setting")
            hints.append(f"did you mean '{close[0]}'?" if close else f"known settings here: {', '.join(known)}")
        elif err["type"] == "missing":
            lines.append(f"{loc}: required setting is missing")
            hints.append(f"add `{err['loc'][-1]}:` to {path.name}")
        else:
            got = err.get("input")
            unset_vars = _UNSET.findall(got) if isinstance(got, str) else []
            if unset_vars:
                lines.append(f"{loc}: ${{{unset_vars[0]}}} is used but the environment variable {unset_vars[0]} is "
                             "not set")
                hints.append(f"export {unset_vars[0]}=... or write ${{{unset_vars[0]}:-default}}")
                continue
            shown = "" if isinstance(got, dict | list) else f" (got {redaction.redact(repr(got))})"
            lines.append(f"{loc}: {err['msg']}{shown}")
            hints.append(f"change `{loc}` in {path.name}")
    return ConfigError(f"{path}: invalid configuration: " + "; ".join(lines), hint="; ".join(hints))


def _without_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic puts the ``type`` tag of a backend union in the path (``warehouse.duckdb.path``): drop it."""
    out: list[Any] = []
    for part in loc:
        if out and out[-1] in BACKEND_KEYS and part in BACKEND_TYPES and part not in _fields_of(out[-1]):
            continue
        out.append(part)
    return tuple(out)


def _fields_of(key: str) -> set[str]:
    return set(_known_fields((key,)))


def _known_fields(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] | None = ProjectConfig
    for part in loc:
        if model is None:
            return []
        field = model.model_fields.get(str(part))
        if field is None:
            continue  # a dict key such as a source name
        model = _model_of(field.annotation)
    return sorted(model.model_fields) if model else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found:
            return found
    return None
