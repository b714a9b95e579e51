"""One typed Settings object, read from `triage.toml` and overridden by `TRIAGE_<SECTION>_<KEY>`.

Every key is declared here with its default and a description; `data/triage.example.toml`
documents the same keys for operators. Validation happens once, at start-up, and a bad
value stops the program with a message that names the key and how to fix it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_CONFIG_NAME = "triage.toml"
ENV_PREFIX = "TRIAGE"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    url: str = Field(
        "sqlite:///triage.db",
        description="SQLAlchemy URL. SQLite file (default) or postgresql+psycopg://user@host/db.",
    )
    auto_migrate: bool = Field(
        True, description="Upgrade an older schema at start-up; if false, refuse to start until migrated."
    )

    @field_validator("url")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be an sqlite:/// or postgresql+psycopg:// URL")
        return value


class MailSettings(_Section):
    liaison_address: str = Field(
        "liaison@example.org", description="The address volunteers write to; our replies come from it."
    )
    own_domain: str = Field("example.org", description="Domain for the Message-IDs of mail triage sends.")
    max_size_bytes: int = Field(
        25 * 1024 * 1024,
        gt=0,
        description="Mails larger than this are stored raw and flagged oversize, not parsed in full.",
    )
    reference_prefix: str = Field("T", pattern=r"^[A-Z]{1,5}$", description="Ticket reference prefix: T-2026-00042.")

    @field_validator("liaison_address")
    @classmethod
    def _looks_like_address(cls, value: str) -> str:
        if "@" not in value or any(c in value for c in "\r\n <>"):
            raise ValueError("must be a bare address such as liaison@example.org")
        return value.lower()


class IngestSettings(_Section):
    spool_maildir: str = Field(
        "", description="A maildir the MTA delivers into; run_worker.py ingests its new/ mails. Empty: off."
    )
    poll_seconds: float = Field(30.0, gt=0, description="Seconds between passes over the spool when idle.")


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest level logged.")
    format: Literal["console", "json"] = Field("console", description="console for people, json for collectors.")


class Settings(_Section):
    database: DatabaseSettings = DatabaseSettings()
    mail: MailSettings = MailSettings()
    ingest: IngestSettings = IngestSettings()
    log: LogSettings = LogSettings()


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Collect `TRIAGE_<SECTION>_<KEY>` values for the keys Settings declares.

    Walking the declared keys (rather than splitting variable names) keeps keys that
    contain underscores, such as `max_size_bytes`, unambiguous.
    """
    overrides: dict[str, dict[str, str]] = {}
    for section_name, section_field in Settings.model_fields.items():
        section_model = section_field.annotation
        assert isinstance(section_model, type) and issubclass(section_model, BaseModel)
        for key in section_model.model_fields:
            name = f"{ENV_PREFIX}_{section_name}_{key}".upper()
            if name in environ:
                overrides.setdefault(section_name, {})[key] = environ[name]
    return overrides


def _merge(base: dict[str, Any], extra: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in extra.items():
        target = merged.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"[{section}] must be a table, not a single value")
        target.update(values)
    return merged


def _describe(error: ValidationError, sources: Mapping[tuple[str, ...], str]) -> str:
    lines = []
    for item in error.errors():
        loc = tuple(str(part) for part in item["loc"])
        key = ".".join(loc)
        origin = sources.get(loc, "config")
        if item["type"] == "extra_forbidden":
            fix = "remove it or check its spelling against data/triage.example.toml"
        else:
            fix = item["msg"]
        lines.append(f"config key {key!r} (from {origin}): {fix}")
    return "\n".join(lines)


def config_path(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path | None:
    """The file to read: --config, else TRIAGE_CONFIG, else ./triage.toml if it exists."""
    if explicit:
        return Path(explicit)
    if environ.get(f"{ENV_PREFIX}_CONFIG"):
        return Path(environ[f"{ENV_PREFIX}_CONFIG"])
    default = Path(DEFAULT_CONFIG_NAME)
    return default if default.exists() else None


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read, merge and validate the configuration; raise ConfigError naming the bad key."""
    environ = os.environ if environ is None else environ
    file = config_path(path, environ)
    data: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {str(file)!r} does not exist; pass --config or unset TRIAGE_CONFIG")
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(file)!r} is not valid TOML: {exc}")
        for section, values in data.items():
            if isinstance(values, dict):
                for key in values:
                    sources[(section, key)] = str(file)
    env = _env_overrides(environ)
    for section, values in env.items():
        for key in values:
            sources[(section, key)] = f"${ENV_PREFIX}_{section}_{key}".upper()
    try:
        return Settings.model_validate(_merge(data, env))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, sources)) from None


def example_toml() -> str:
    """Render every key with its default and description; data/triage.example.toml is this output."""
    out = [
        "# triage configuration. Every key is optional; the value shown is the default.",
        f"# Any key can be overridden by an environment variable {ENV_PREFIX}_<SECTION>_<KEY>,",
        f"# e.g. {ENV_PREFIX}_DATABASE_URL. Path: --config, ${ENV_PREFIX}_CONFIG, or ./triage.toml.",
    ]
    for section_name, section_field in Settings.model_fields.items():
        model = section_field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        out.append("")
        out.append(f"[{section_name}]")
        for key, field in model.model_fields.items():
            out.append(f"# {field.description}  (env: {ENV_PREFIX}_{section_name.upper()}_{key.upper()})")
            out.append(f"{key} = {_toml_value(field.default)}")
    return "\n".join(out) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if value is None:
        return '""'
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
