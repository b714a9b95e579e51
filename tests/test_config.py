"""Configuration: TOML file, TRIAGE_<SECTION>_<KEY> overrides, and errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from triage.config import ConfigError, example_toml, load_settings


def test_defaults_work_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no file and no variables, triage uses an SQLite file in the working directory."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.database.url == "sqlite:///triage.db"
    assert settings.mail.max_size_bytes == 25 * 1024 * 1024


def test_file_then_environment(tmp_path: Path) -> None:
    """The file sets values; an environment variable wins over the file, keys with underscores included."""
    config = tmp_path / "triage.toml"
    config.write_text('[database]\nurl = "sqlite:///from-file.db"\n[mail]\nmax_size_bytes = 1000\n')
    settings = load_settings(config, environ={"TRIAGE_MAIL_MAX_SIZE_BYTES": "2000"})
    assert settings.database.url == "sqlite:///from-file.db"
    assert settings.mail.max_size_bytes == 2000
    via_env = load_settings(environ={"TRIAGE_CONFIG": str(config)})
    assert via_env.mail.max_size_bytes == 1000


@pytest.mark.parametrize(
    ("toml", "environ", "expected"),
    [
        ('[mail]\nmax_size_bytes = -5\n', {}, "mail.max_size_bytes"),
        ('[mail]\nmax_size_byte = 5\n', {}, "mail.max_size_byte"),
        ("", {"TRIAGE_DATABASE_URL": "mysql://x"}, "$TRIAGE_DATABASE_URL"),
        ('[log]\nlevel = "loud"\n', {}, "log.level"),
        ('[nonsense]\nx = 1\n', {}, "nonsense"),
        ('[imap]\nparse_workers = -1\n', {}, "imap.parse_workers"),
        ("", {"TRIAGE_IMAP_PARSE_WORKERS": "many"}, "$TRIAGE_IMAP_PARSE_WORKERS"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, toml: str, environ: dict[str, str], expected: str) -> None:
    """A bad value stops start-up with a message naming the key (and where it came from)."""
    config = tmp_path / "triage.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ=environ)
    assert expected in str(info.value)


def test_missing_and_broken_files_are_clear_errors(tmp_path: Path) -> None:
    """A missing file or invalid TOML is a ConfigError naming the file."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[database\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken, environ={})


def test_example_documents_every_key_and_matches_data_file() -> None:
    """data/triage.example.toml is the generated example, parses, and loads as the defaults."""
    text = example_toml()
    parsed = tomllib.loads(text)
    assert set(parsed) >= {"database", "mail", "log"}
    shipped = Path(__file__).resolve().parents[1] / "data" / "triage.example.toml"
    assert shipped.read_text() == text, "regenerate with: triage config example > data/triage.example.toml"


@pytest.mark.parametrize(("value", "cores", "expected"), [("auto", 1, 0), ("auto", 2, 2), ("auto", 16, 4), ("3", 16, 3),
                                                          ("0", 16, 0)])
def test_parse_workers_auto_is_one_per_core_on_a_multicore_machine(
    value: str, cores: int, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    settings = load_settings(environ={"TRIAGE_CONFIG": "", "TRIAGE_IMAP_PARSE_WORKERS": value})
    assert settings.imap.parse_worker_count() == expected


def test_the_proxy_addresses_are_addresses_or_networks() -> None:
    """web.forwarded_allow_ips: what uvicorn trusts X-Forwarded-* from; a typo must not pass silently."""
    trusted = load_settings(environ={"TRIAGE_WEB_FORWARDED_ALLOW_IPS": "10.0.0.5, 172.18.0.0/16, ::1"})
    assert trusted.web.forwarded_allow_ips == "10.0.0.5, 172.18.0.0/16, ::1"
    assert load_settings(environ={}).web.forwarded_allow_ips == "127.0.0.1"
    with pytest.raises(ConfigError, match="proxy.example"):
        load_settings(environ={"TRIAGE_WEB_FORWARDED_ALLOW_IPS": "127.0.0.1,proxy.example"})
