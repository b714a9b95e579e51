"""Every metric the worker exposes, defined here and nowhere else.

Three kinds, by where the value lives:

* counted in this process as work happens: mail ingested per mailbox and outcome
  (`MAIL_INGESTED`, incremented by the IMAP poller and the maildir spool after each commit);
* read from this process's runners at scrape time: up, last successful step, failures in a row;
* read from the database at scrape time (`DeskCollector`): the state every worker shares, so any
  one worker's /metrics shows every mailbox's last pass, the outbox and the reminder backlog. A
  failed read does not fail the scrape: `triage_metrics_scrape_error` says it failed, and the
  in-process metrics are still there.

The metric names are the README's table; an alert rule written against one keeps working.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily, Metric

from triage.failures import describe

if TYPE_CHECKING:
    from triage.runners.base import Runner

log = structlog.get_logger(__name__)

INGEST_OUTCOMES = ("stored", "duplicate", "quarantined")  # a mail refused for its size is quarantined

MAIL_INGESTED = Counter(
    "triage_mail_ingested", "Mails committed from a mailbox by this worker, by what became of them "
    "(quarantined: kept aside with the reason, oversize mails included).",
    ["account", "folder", "outcome"], registry=None,
)


def count_ingested(account: str, folder: str, outcome: str, amount: int = 1) -> None:
    """Count mails of one mailbox once their transaction has committed."""
    if amount:
        MAIL_INGESTED.labels(account, folder, outcome).inc(amount)


def expect_mailbox(account: str, folder: str) -> None:
    """Show a configured mailbox's counters at 0 before its first mail, so rate() has a start."""
    for outcome in INGEST_OUTCOMES:
        MAIL_INGESTED.labels(account, folder, outcome)


class RunnerCollector:
    """Each runner's thread state, last successful step and failures in a row, read at scrape time."""

    def __init__(self, runners: Sequence[Runner], alive: Callable[[str], bool]) -> None:
        self._runners = list(runners)
        self._alive = alive

    def describe(self) -> list[Metric]:
        return list(self._families([]))

    def collect(self) -> list[Metric]:
        return list(self._families(self._runners))

    def _families(self, runners: Sequence[Runner]) -> Iterator[Metric]:
        up = GaugeMetricFamily("triage_runner_up", "1 while the runner's thread runs, 0 once it has died.",
                               labels=["runner"])
        success = GaugeMetricFamily(
            "triage_runner_last_success_timestamp_seconds",
            "Unix time at which the runner's last step succeeded (0: none yet).", labels=["runner"])
        failures = GaugeMetricFamily("triage_runner_consecutive_failures",
                                     "Steps of the runner that failed in a row since its last success.",
                                     labels=["runner"])
        for runner in runners:
            up.add_metric([runner.name], 1.0 if self._alive(runner.name) else 0.0)
            success.add_metric([runner.name], runner.last_success_at or 0.0)
            failures.add_metric([runner.name], float(runner.consecutive_failures))
        yield from (up, success, failures)


@dataclass(frozen=True)
class DeskReadings:
    """The shared state behind the database metrics, read in one short transaction."""

    last_pass: Mapping[tuple[str, str], float | None]  # (account, folder) -> Unix time; None: never
    outbox: Mapping[str, int]  # rows by state, every state present
    oldest_due_age: float  # seconds since the oldest due, unsent mail was queued; 0 when none waits
    reminder_lag: float  # seconds the most overdue reminder clock is past due; 0 when none is
    suggestions_waiting: int
    # lease name -> (holder or None when given back, generation, seconds until it lapses; < 0: lapsed)
    leases: Mapping[str, tuple[str | None, int, float]] = field(default_factory=dict)


class DeskReader(Protocol):
    def read(self, model_version: str | None) -> DeskReadings: ...


class DeskCollector:
    """The database metrics, read when Prometheus scrapes (a reader with a short timeout)."""

    def __init__(self, reader: DeskReader, model_version: Callable[[], str | None]) -> None:
        self._reader = reader
        self._model_version = model_version

    def describe(self) -> list[Metric]:
        return [*_desk_families(None), *self._own_families(0.0, 0.0, None)]

    def collect(self) -> list[Metric]:
        try:
            version = self._model_version()
        except Exception as exc:  # noqa: BLE001 - a model file being replaced, or unreadable
            log.warning("metrics.model_version_failed", error=describe(exc))
            version = None
        started = time.perf_counter()
        try:
            readings: DeskReadings | None = self._reader.read(version)
        except Exception as exc:  # noqa: BLE001 - a scrape reports the failure, it never fails
            log.warning("metrics.read_failed", error=describe(exc))
            readings = None
        elapsed = time.perf_counter() - started
        own = self._own_families(1.0 if readings is None else 0.0, elapsed, version)
        return [*(_desk_families(readings) if readings is not None else []), *own]

    @staticmethod
    def _own_families(error: float, elapsed: float, version: str | None) -> list[Metric]:
        failed = GaugeMetricFamily("triage_metrics_scrape_error",
                                   "1 when this scrape could not read the database metrics (see the worker's log).",
                                   value=error)
        took = GaugeMetricFamily("triage_metrics_scrape_duration_seconds",
                                 "How long this scrape's database read took.", value=elapsed)
        model = InfoMetricFamily("triage_routing_model", "The routing model in use (routing.model_path).",
                                 labels=["version"])
        model.add_metric([version or "none"], {})
        return [failed, took, model]


def _desk_families(readings: DeskReadings | None) -> list[Metric]:
    last_pass = GaugeMetricFamily(
        "triage_mailbox_last_pass_timestamp_seconds",
        "Unix time at which a worker last read the mailbox through (0: never), from the database.",
        labels=["account", "folder"])
    outbox = GaugeMetricFamily("triage_outbox_messages", "Outbox rows by state.", labels=["state"])
    oldest = GaugeMetricFamily(
        "triage_outbox_oldest_due_age_seconds",
        "Age of the oldest outbox mail that is due and unsent (0: none waits).")
    lag = GaugeMetricFamily(
        "triage_reminder_lag_seconds",
        "How far past due the most overdue reminder clock of a running, unanswered ticket is (0: none).")
    waiting = GaugeMetricFamily(
        "triage_routing_suggestions_waiting",
        "Open tickets without a team and without a suggestion from the model in use.")
    lease_left = GaugeMetricFamily(
        "triage_lease_expires_in_seconds",
        "Seconds until a worker's lease on a mailbox folder or job lapses; below 0 it has lapsed or was "
        "given back, and another worker may take it.", labels=["lease"])
    lease_generation = GaugeMetricFamily(
        "triage_lease_generation", "How many times the lease has changed hands (its fencing token).",
        labels=["lease"])
    lease_holder = InfoMetricFamily("triage_lease_holder", "The worker holding each unexpired lease.",
                                    labels=["lease", "holder"])
    if readings is not None:
        for (account, folder), at in sorted(readings.last_pass.items()):
            last_pass.add_metric([account, folder], at or 0.0)
        for state, count in sorted(readings.outbox.items()):
            outbox.add_metric([state], float(count))
        oldest.add_metric([], readings.oldest_due_age)
        lag.add_metric([], readings.reminder_lag)
        waiting.add_metric([], float(readings.suggestions_waiting))
        for name, (holder, generation, left) in sorted(readings.leases.items()):
            lease_left.add_metric([name], left)
            lease_generation.add_metric([name], float(generation))
            if holder is not None and left > 0:
                lease_holder.add_metric([name, holder], {})
    return [last_pass, outbox, oldest, lag, waiting, lease_left, lease_generation, lease_holder]


def worker_registry(
    *,
    worker: str,
    roles: Sequence[str],
    runners: Sequence[Runner],
    alive: Callable[[str], bool],
    desk: DeskCollector | None,
) -> CollectorRegistry:
    """The registry one worker serves: its process, its runners, its counters and the database's
    readings. A registry of its own, not the library's global one, so two workers built in one
    process (tests, the demo) never register a name twice."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("triage")
    except PackageNotFoundError:
        release = "unknown"
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(MAIL_INGESTED)
    registry.register(RunnerCollector(runners, alive))
    registry.register(_WorkerInfo({"worker": worker, "roles": ",".join(roles), "version": release}))
    if desk is not None:
        registry.register(desk)
    return registry


class _WorkerInfo:
    def __init__(self, labels: dict[str, str]) -> None:
        self._labels = labels

    def collect(self) -> list[Metric]:
        info = InfoMetricFamily("triage_worker", "This worker: its id (worker.id), roles and triage version.")
        info.add_metric([], self._labels)
        return [info]

    describe = collect


__all__ = [
    "INGEST_OUTCOMES", "MAIL_INGESTED", "DeskCollector", "DeskReadings", "RunnerCollector", "count_ingested",
    "expect_mailbox", "worker_registry",
]
