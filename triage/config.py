"""One typed Settings object, read from `triage.toml` and overridden by `TRIAGE_<SECTION>_<KEY>`.

Every key is declared here with its default and a description; `data/triage.example.toml`
documents the same keys for operators. Validation happens once, at start-up, and a bad
value stops the program with a message that names the key and how to fix it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import date, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

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
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be an sqlite:/// or postgresql+psycopg:// URL")
        try:
            make_url(value)
        except (ArgumentError, ValueError):  # the message would repeat the URL, password and all
            raise ValueError("is not a valid URL, e.g. postgresql+psycopg://user@host:5432/triage") from None
        return value


class MailSettings(_Section):
    liaison_address: str = Field(
        "liaison@example.org", description="The address volunteers write to; our replies come from it."
    )
    own_domain: str = Field("example.org", description="Domain for the Message-IDs of mail triage sends.")
    max_size_bytes: int = Field(
        25 * 1024 * 1024,
        gt=0,
        description="Mails larger than this are refused unread: their header is quarantined with the reason.",
    )
    reference_prefix: str = Field("T", pattern=r"^[A-Z]{1,5}$", description="Ticket reference prefix: T-2026-00042.")
    comment_address: str = Field(
        "", description="Where the staff of the team a ticket was handed to write an internal note on it (a "
        "reply to the desk's address is relayed to the volunteer; one to this address never leaves the desk). "
        "Empty: the liaison address with +comment, e.g. liaison+comment@example.org.",
    )
    trusted_authserv_ids: list[str] = Field(
        default_factory=list,
        description="authserv-ids (RFC 8601) of our own receiving mail servers, e.g. [\"mx.example.org\"]: only "
        "their topmost Authentication-Results fields are believed about the From domain's DMARC result "
        "(the server must remove incoming fields that claim its id). Empty: none is believed.",
    )

    @field_validator("trusted_authserv_ids", mode="before")
    @classmethod
    def _authserv_ids(cls, value: object) -> object:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list):
            return value
        ids = [str(item).strip().lower() for item in items if str(item).strip()]
        for ident in ids:
            if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,252}", ident):
                raise ValueError(f"{ident!r} is not an authserv-id such as mx.example.org")
        return ids

    @field_validator("liaison_address")
    @classmethod
    def _looks_like_address(cls, value: str) -> str:
        if "@" not in value or any(c in value for c in "\r\n <>"):
            raise ValueError("must be a bare address such as liaison@example.org")
        return value.lower()

    @field_validator("comment_address")
    @classmethod
    def _empty_or_address(cls, value: str) -> str:
        if value and ("@" not in value or any(c in value for c in "\r\n <>")):
            raise ValueError("must be empty or a bare address such as liaison+comment@example.org")
        return value.lower()

    @property
    def staff_comment_address(self) -> str:
        """Where staff write an internal note: `comment_address`, else the liaison's +comment sub-address."""
        if self.comment_address:
            return self.comment_address
        local, _, domain = self.liaison_address.rpartition("@")
        return f"{local}+comment@{domain}"


class IngestSettings(_Section):
    spool_maildir: str = Field(
        "", description="A maildir the MTA delivers into; run_worker.py ingests its new/ mails. Empty: off."
    )
    poll_seconds: float = Field(30.0, gt=0, description="Seconds between passes over the spool when idle.")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ImapSettings(_Section):
    """One IMAP account. [imap] is the main one; [imap_accounts.<name>] tables add more."""

    name: str = Field("liaison", pattern=r"^[A-Za-z0-9_.@-]{1,100}$", description="Name of this account in the ledger and logs.")
    host: str = Field("", description="IMAP server. Empty: no IMAP polling.")
    port: int = Field(0, ge=0, le=65535, description="Port; 0 means 993 for tls, 143 for starttls and none.")
    security: Literal["tls", "starttls", "none"] = Field(
        "tls", description="tls (implicit), starttls, or none (plain text; loopback hosts only)."
    )
    ca_file: str = Field("", description="PEM file of CAs to trust instead of the system store (self-signed servers).")
    user: str = Field("", description="Login name.")
    password: SecretStr = Field(SecretStr(""), description="Password (prefer password_file or $TRIAGE_IMAP_PASSWORD).")
    password_file: str = Field("", description="File whose first line is the password (e.g. a mounted secret).")
    auth: Literal["password", "xoauth2"] = Field("password", description="password (LOGIN) or xoauth2 (OAuth2 bearer token).")
    oauth2_token_command: str = Field("", description="Command printing a fresh OAuth2 access token (xoauth2).")
    oauth2_token_file: str = Field("", description="File holding the OAuth2 access token (xoauth2).")
    folder: str = Field("INBOX", description="The folder to ingest.")
    extra_folders: list[str] = Field(default_factory=list, description="More folders of this account, each with its own ledger.")
    mark: Literal["seen", "keyword", "move", "none"] = Field(
        "seen", description="After a mail is committed: set \\Seen, add `keyword`, move to `move_to`, or leave it. Never deletes."
    )
    keyword: str = Field("$Triaged", pattern=r"^[^\s()\\{%*\"\]]+$", description="Keyword set when mark = keyword.")
    move_to: str = Field("Triaged", description="Folder mails move to when mark = move.")
    start: Literal["now", "since", "all"] = Field(
        "now", description="First contact with a folder: only mail arriving from now on, mail since `since`, or all."
    )
    since: date | None = Field(None, description="Date (YYYY-MM-DD) for start = since.")
    batch_size: int = Field(200, gt=0, le=5000, description="Mails fetched per round trip.")
    idle: bool = Field(True, description="Use IMAP IDLE when the server offers it; otherwise poll.")
    idle_renew_seconds: int = Field(25 * 60, gt=0, le=29 * 60, description="Re-issue IDLE this often (RFC 2177: at most 29 minutes).")
    poll_seconds: float = Field(60.0, gt=0, description="Seconds between polls without IDLE.")
    timeout_seconds: float = Field(60.0, gt=0, description="Network timeout for one IMAP command.")
    backoff_max_seconds: float = Field(300.0, gt=0, description="Longest wait between reconnection attempts.")
    login_retry_seconds: float = Field(900.0, gt=0, description="Wait after a rejected login before trying again.")
    parse_workers: int | Literal["auto"] = Field(
        "auto",
        description="Processes that parse (and compress) fetched mail while the worker stores the previous batch, "
        "started only for a pass of more than one batch; 0 = parse inline, auto = one per core (at most 4) "
        "on a machine with several.",
    )

    @field_validator("parse_workers", mode="before")
    @classmethod
    def _worker_count(cls, value: object) -> object:
        text = str(value).strip().lower()
        if text == "auto":
            return "auto"
        if isinstance(value, bool) or not text.isdigit() or int(text) > 64:
            raise ValueError("must be auto or a number of processes from 0 to 64")
        return int(text)

    def parse_worker_count(self) -> int:
        if self.parse_workers != "auto":
            return int(self.parse_workers)
        cores = os.cpu_count() or 1
        return min(4, cores) if cores > 1 else 0

    @field_validator("extra_folders", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ImapSettings:
        if not self.host:
            return self
        if self.security == "none" and not _is_loopback(self.host):
            raise ValueError(
                f"security = none sends the password in plain text; it is allowed only to a loopback "
                f"address, not {self.host!r}: use tls or starttls"
            )
        if not self.user:
            raise ValueError("user is required when host is set")
        if self.auth == "password" and not (self.password.get_secret_value() or self.password_file):
            raise ValueError("set password, password_file or $TRIAGE_IMAP_PASSWORD (auth = password)")
        if self.auth == "xoauth2" and not (self.oauth2_token_command or self.oauth2_token_file):
            raise ValueError("auth = xoauth2 needs oauth2_token_command or oauth2_token_file")
        if self.start == "since" and self.since is None:
            raise ValueError("start = since needs since = YYYY-MM-DD")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.security == "tls" else 143)

    @property
    def folders(self) -> list[str]:
        return [self.folder, *[f for f in self.extra_folders if f != self.folder]]


class RoutingSettings(_Section):
    model_path: str = Field("data/model", description="Folder of the routing model in use.")
    teams_file: str = Field(
        "data/teams.toml",
        description="The staff teams: [teams.<key>] with name, address, description. A relative path is looked "
        "up in the working directory, then among the files shipped with triage.",
    )
    seed_data: str = Field(
        "data/seed/seed.csv",
        description="Training data for the first model when none exists (relative: the working directory, "
        "then the shipped seed data).",
    )
    auto_train: bool = Field(True, description="Train a first model from seed_data when model_path holds none.")
    target_precision: float = Field(0.9, gt=0, lt=1, description="Suggest a team only where held-out precision reaches this.")
    retrain_hours: float = Field(24.0, gt=0, description="How often the worker retrains from the liaison's decisions.")
    min_new_decisions: int = Field(20, ge=1, description="Retrain only after this many new decisions.")


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest level logged.")
    format: Literal["console", "json"] = Field("console", description="console for people, json for collectors.")


class SmtpSettings(_Section):
    """Where outgoing mail goes. Empty host: mail is queued in the outbox and not sent."""

    host: str = Field("", description="SMTP submission server. Empty: the outbox queues mail but nothing is sent.")
    port: int = Field(0, ge=0, le=65535, description="Port; 0 means 465 for tls, 587 for starttls, 25 for none.")
    security: Literal["tls", "starttls", "none"] = Field(
        "starttls", description="tls (implicit, SMTPS), starttls, or none (plain text; loopback hosts only)."
    )
    ca_file: str = Field("", description="PEM file of CAs to trust instead of the system store (self-signed servers).")
    user: str = Field("", description="Login name; empty: no AUTH.")
    password: SecretStr = Field(SecretStr(""), description="Password (prefer password_file or $TRIAGE_SMTP_PASSWORD).")
    password_file: str = Field("", description="File whose first line is the password (e.g. a mounted secret).")
    helo_name: str = Field("", description="Name sent in EHLO; empty: this machine's fully qualified name.")
    timeout_seconds: float = Field(60.0, gt=0, description="Network timeout for one SMTP command.")
    max_attempts: int = Field(8, ge=1, le=100, description="Give up on a mail (status failed) after this many temporary failures.")
    backoff_base_seconds: float = Field(60.0, gt=0, description="Wait after the first temporary failure; doubled after each.")
    backoff_max_seconds: float = Field(3600.0, gt=0, description="Longest wait between two attempts of one mail.")
    poll_seconds: float = Field(10.0, gt=0, description="Seconds between outbox passes when nothing was due.")

    @model_validator(mode="after")
    def _consistent(self) -> SmtpSettings:
        if not self.host:
            return self
        if self.security == "none" and not _is_loopback(self.host):
            raise ValueError(
                f"security = none sends mail and password in plain text; it is allowed only to a loopback "
                f"address, not {self.host!r}: use tls or starttls"
            )
        if self.user and not (self.password.get_secret_value() or self.password_file):
            raise ValueError("set password, password_file or $TRIAGE_SMTP_PASSWORD when user is set")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"tls": 465, "starttls": 587, "none": 25}[self.security]


class OutboxSettings(_Section):
    """What triage answers on its own, and how the outbox keeps mail exactly once."""

    auto_acknowledge: bool = Field(
        False, description="Answer each new ticket from a normal mail with the acknowledgment (loop-protected)."
    )
    acknowledge_max_age_hours: float = Field(
        72.0, gt=0, description="Never acknowledge a mail dated longer ago than this (an imported archive)."
    )
    auto_handoff: bool = Field(
        True, description="On the liaison's routing approval, mail the team and tell the volunteer who has it."
    )
    rate_limit_per_hour: int = Field(
        3, ge=0, description="At most this many automatic mails to one address per hour; 0: no automatic mail. "
        "Sub-addresses count as their address (a+1@x and A+2@x are a@x).",
    )
    rate_limit_per_domain_per_hour: int = Field(
        20, ge=1, description="At most this many acknowledgments per hour to the addresses of one domain "
        "(mail no person has read yet answered to a From anyone can write).",
    )
    acknowledge_unauthenticated: bool = Field(
        True, description="Acknowledge mail whose From has no DMARC pass from a trusted server "
        "(mail.trusted_authserv_ids); false: only authenticated senders. A From failing DMARC never is.",
    )
    templates_dir: str = Field(
        "templates",
        description="Folder holding email/<name>/ templates (relative: the working directory, then the "
        "templates shipped with triage).",
    )
    desk_name: str = Field("Community Liaison", description="Display name on the From header and in signatures.")
    signature: str = Field("The Community Liaison desk", description="Signature of mail that no team signs.")
    default_language: str = Field("en", pattern=r"^[a-z]{2}$", description="Language when none is known or translated.")
    sent_folder: str = Field(
        "", description="IMAP folder of the [imap] account to append a copy of each sent mail to. Empty: off."
    )
    confirm_folder: str = Field(
        "",
        description="IMAP folder of the [imap] account where the mail server files its own copy of what we "
        "submit (e.g. a provider's Sent folder); after a crash a mail in doubt is looked up there. Empty: off.",
    )
    lease_seconds: float = Field(
        600.0, gt=0, description="A mail claimed by a worker on another host is taken back after this long."
    )


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _check_hours(value: str) -> str:
    """`HH:MM-HH:MM`, start before end (local time of the team's time zone)."""
    try:
        start, end = (time.fromisoformat(part.strip()) for part in value.split("-"))
    except ValueError:
        raise ValueError(f"{value!r} must look like 09:00-17:00") from None
    if start >= end:
        raise ValueError(f"{value!r}: the start must come before the end")
    return value


class _ReminderPolicyKeys(_Section):
    """The policy keys a team may override; None means: use the [reminders] default."""

    timezone: str | None = None
    business_days: list[int] | None = None
    business_hours: str | None = None
    quiet_hours: list[str] | None = None
    holidays: list[date] | None = None
    first_response_hours: float | None = Field(None, gt=0)
    reminder_hours: float | None = Field(None, gt=0)
    lead_address: str | None = None
    escalation_address: str | None = None

    _lists = field_validator("business_days", "quiet_hours", "holidays", mode="before")(
        classmethod(lambda cls, v: _split_list(v))
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin") from None
        return value

    @field_validator("business_days")
    @classmethod
    def _weekdays(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(not 1 <= d <= 7 for d in value)):
            raise ValueError("ISO weekdays 1 (Monday) to 7 (Sunday), at least one")
        return value

    @field_validator("business_hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        return _check_hours(value) if value is not None else None

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: list[str] | None) -> list[str] | None:
        return [_check_hours(v) for v in value] if value is not None else None


class TeamReminderSettings(_ReminderPolicyKeys):
    """[reminders.teams.<key>]: one team's overrides of the [reminders] policy."""


class ReminderSettings(_ReminderPolicyKeys):
    """Reminders and escalations of unanswered tickets (the `triage remind` run)."""

    enabled: bool = Field(True, description="run_worker.py runs the reminder run every interval_seconds.")
    interval_seconds: float = Field(300.0, gt=0, description="Seconds between two reminder runs in the worker.")
    timezone: str | None = Field("UTC", description="IANA time zone of the business hours, e.g. Europe/Berlin.")
    business_days: list[int] | None = Field(
        [1, 2, 3, 4, 5], description="ISO weekdays the teams work: 1 = Monday ... 7 = Sunday."
    )
    business_hours: str | None = Field("09:00-17:00", description="Local opening hours, HH:MM-HH:MM.")
    quiet_hours: list[str] | None = Field(
        [], description="Local intervals within business hours that neither count nor get mail, e.g. [\"12:00-13:00\"]."
    )
    holidays: list[date] | None = Field([], description="Dates (YYYY-MM-DD) on which nobody is reminded and the clock stops.")
    first_response_hours: float | None = Field(
        8.0, gt=0, description="Business hours after which an unanswered ticket reminds its team (level 1)."
    )
    reminder_hours: float | None = Field(
        8.0, gt=0, description="Business hours between two steps of the ladder: team lead (2), then escalation (3)."
    )
    lead_address: str | None = Field("", description="Level 2 recipient (the team lead); empty: the team's address.")
    escalation_address: str | None = Field(
        "", description="Level 3 recipient (head of reader relations); empty: mail.liaison_address."
    )
    batch_size: int = Field(500, gt=0, le=10000, description="Tickets whose reminder clocks are recomputed per query (those whose facts changed since the last run).")
    teams: dict[str, TeamReminderSettings] | None = Field(
        None, description="Per-team overrides: [reminders.teams.<key>] tables with any policy key above."
    )


class DigestSettings(_Section):
    """The weekly digest mail per team (`triage digest`); a team opts in with `digest = true` in the teams file."""

    enabled: bool = Field(True, description="The worker sends each opted-in team's digest when it is due.")
    interval_seconds: float = Field(300.0, gt=0, description="Seconds between two checks for due digests in the worker.")
    baseline_weeks: int = Field(
        8, ge=1, le=52, description="Rising topics: the week's share of a term is compared with its share in this many weeks before."
    )
    languages: list[str] = Field(
        ["en", "de", "fr", "es", "it", "pt", "nl"],
        description="ISO 639-1 codes of the languages whose stop words are left out of rising topics.",
    )

    _lists = field_validator("languages", mode="before")(classmethod(lambda cls, v: _split_list(v)))

    @field_validator("languages")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        if any(not re.fullmatch(r"[a-z]{2}", code) for code in value):
            raise ValueError("two-letter ISO 639-1 codes such as en, de, fr")
        return value


class WebSettings(_Section):
    """The workbench (`triage web`, `triage demo`)."""

    host: str = Field("127.0.0.1", description="Address to listen on. Anything but loopback needs a TLS proxy in front.")
    port: int = Field(8023, ge=0, le=65535, description="Port to listen on (0: any free port).")
    session_hours: float = Field(12.0, gt=0, description="A login lasts this long without use before it expires.")
    secure_cookies: bool | None = Field(
        None, description="Mark the session cookie Secure. Default: when the request came over https (a TLS proxy)."
    )
    login_failures_per_account: int = Field(
        5, ge=1, description="Failed logins for one account within login_window_minutes before it is throttled."
    )
    login_failures_per_client: int = Field(
        20, ge=1, description="Failed logins from one client address within login_window_minutes before it is throttled."
    )
    login_window_minutes: float = Field(15.0, gt=0, description="The window the login throttle counts failures in.")
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="The TLS proxy's addresses or networks, comma-separated (e.g. 10.0.0.5, 172.18.0.0/16): only a "
                    "request from these is believed about X-Forwarded-Proto (https, so Secure cookies) and "
                    "X-Forwarded-For (the client address the login throttle counts). '*' trusts anyone who can reach "
                    "the port.",
    )

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (such as 10.0.0.5 or 10.0.0.0/24)") from None
        return value


class PrivacySettings(_Section):
    """Erasure of old content (`triage contact erase` erases one person on request, whatever this says)."""

    retention_months: int = Field(
        0, ge=0, le=1200,
        description="Erase the content of tickets resolved this many months ago (mail, attachments, notes; the "
                    "ticket stays as an empty shell for reports). 0: never (the default).",
    )
    interval_seconds: float = Field(3600.0, gt=0, description="Seconds between two retention runs in the worker.")
    batch_size: int = Field(200, gt=0, le=5000, description="Tickets erased per transaction by a retention run.")


class WorkerSettings(_Section):
    """How several workers share one PostgreSQL database (one worker only on SQLite)."""

    lease_seconds: float = Field(
        30.0, ge=2, le=3600,
        description="A worker's claim on a mailbox folder or a periodic job lapses this long after its last "
                    "renewal; another worker takes over within this time when the holder dies or freezes.",
    )
    id: str = Field(
        "", max_length=200,
        description="This worker's name in its log lines (the `worker` field) and metrics. Empty: host:pid.",
    )
    listen: str = Field(
        "127.0.0.1:9464",
        description="host:port where the worker serves /healthz, /readyz and Prometheus /metrics "
                    "([::1]:9464 for IPv6; port 0: any free port, logged). Empty: not served.",
    )
    scrape_timeout_seconds: float = Field(
        2.0, gt=0, le=60,
        description="How long /metrics and /readyz wait for the database before reporting it as failing.",
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if value:
            listen_address(value)
        return value


def listen_address(value: str) -> tuple[str, int]:
    """("host", port) from "host:port" or "[v6]:port"; ValueError naming the expected form."""
    host, sep, port = value.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:9464, [::1]:9464, 0.0.0.0:9464)")
    return host, int(port)


class Settings(_Section):
    database: DatabaseSettings = DatabaseSettings()
    mail: MailSettings = MailSettings()
    ingest: IngestSettings = IngestSettings()
    imap: ImapSettings = ImapSettings()
    imap_accounts: dict[str, ImapSettings] = Field(default_factory=dict)
    routing: RoutingSettings = RoutingSettings()
    log: LogSettings = LogSettings()
    smtp: SmtpSettings = SmtpSettings()
    outbox: OutboxSettings = OutboxSettings()
    reminders: ReminderSettings = ReminderSettings()
    digest: DigestSettings = DigestSettings()
    web: WebSettings = WebSettings()
    privacy: PrivacySettings = PrivacySettings()
    worker: WorkerSettings = WorkerSettings()

    @property
    def imap_all(self) -> list[ImapSettings]:
        """Every configured account: [imap] if it has a host, then [imap_accounts.*]."""
        accounts = [self.imap] if self.imap.host else []
        for key, account in sorted(self.imap_accounts.items()):
            accounts.append(account if account.name != "liaison" else account.model_copy(update={"name": key}))
        return accounts


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Collect `TRIAGE_<SECTION>_<KEY>` values for the keys Settings declares.

    Walking the declared keys (rather than splitting variable names) keeps keys that
    contain underscores, such as `max_size_bytes`, unambiguous.
    """
    overrides: dict[str, dict[str, str]] = {}
    for section_name, section_field in Settings.model_fields.items():
        section_model = section_field.annotation
        if not (isinstance(section_model, type) and issubclass(section_model, BaseModel)):
            continue  # tables of tables, such as [imap_accounts.*], are set in the file only
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
            fix = "remove it or check its spelling against `triage config example`"
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
            raise ConfigError(
                f"config file {str(file)!r} does not exist; pass --config or unset TRIAGE_CONFIG"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(file)!r} is not valid TOML: {exc}") from None
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
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            out += ["", f"# [{section_name}.<name>] tables take the keys of [imap] for more accounts, e.g.",
                    f"# [{section_name}.press]", '# host = "imap.example.org"', '# user = "press@example.org"',
                    '# password_file = "/run/secrets/press-imap"']
            continue
        out.append("")
        out.append(f"[{section_name}]")
        for key, field in model.model_fields.items():
            out.append(f"# {field.description}  (env: {ENV_PREFIX}_{section_name.upper()}_{key.upper()})")
            default = field.get_default(call_default_factory=True)
            prefix = "# " if default is None else ""  # TOML has no null: an unset key stays commented
            out.append(f"{prefix}{key} = {_toml_value(default)}")
    return "\n".join(out) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, SecretStr):
        return _toml_value(value.get_secret_value())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if value is None:
        return '""'
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
