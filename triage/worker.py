"""The long-running worker: args -> settings -> bootstrap() -> run the configured runners.

Runners: one IMAP poller per configured account ([imap], [imap_accounts.*]), if set the
maildir spool (`ingest.spool_maildir`), and if `smtp.host` is set the outbox sender; then routing,
reminders and the weekly digests. SIGTERM
and SIGINT stop it cleanly: the batch in progress is finished and committed, connections are logged out.
Installed as `triage-worker`; `python run_worker.py` in a checkout runs the same `main`.

A failure is one line on stderr that names the cause and the fix (a runner's failure in a
long run is logged the same way, and the runner retries with backoff); exit status 2 means the
configuration needs fixing, 1 that a run failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from triage.bootstrap import App, bootstrap, owner_only_files
from triage.config import ConfigError, load_settings
from triage.coordination.single_worker import AnotherWorker
from triage.coordination.workers import coordinate
from triage.failures import show_traceback, stopped_by
from triage.logging import configure_logging
from triage.runners.base import Runner
from triage.runners.digest import digest_runners
from triage.runners.outbound import outbound_runners
from triage.runners.poll import PollRunner
from triage.runners.remind import remind_runners
from triage.runners.retention import retention_runners
from triage.runners.spool import SpoolRunner
from triage.runners.supervisor import run_until_signalled
from triage.store.schema import SchemaError
from triage.terminal import escape

PROG = "triage-worker"


def say(message: str) -> None:
    for line in message.splitlines() or [""]:
        print(escape(f"{PROG}: {line}"), file=sys.stderr)


def routing_runners(app: App) -> list[Runner]:
    """Suggest and retrain, when the teams file is there (otherwise mail still flows, unrouted)."""
    from triage.routing.errors import RoutingError
    from triage.runners.routing import RetrainRunner, SuggestRunner

    try:
        router = app.router()
    except RoutingError as exc:
        say(f"routing off: {exc}")
        return []
    return [SuggestRunner(router), RetrainRunner(router, app.settings.routing)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", help="path to triage.toml (default: $TRIAGE_CONFIG or ./triage.toml)")
    parser.add_argument("--once", action="store_true", help="one pass of every runner, then exit (for cron)")
    args = parser.parse_args(argv)
    owner_only_files()
    try:
        settings = load_settings(args.config)
        configure_logging(settings.log)
        app = bootstrap(settings)
    except (ConfigError, SchemaError) as exc:
        say(str(exc))
        return 2
    except Exception as exc:  # the database unreachable, locked or full; a disk error; a bug
        if show_traceback():
            raise
        say(stopped_by(exc))
        return 1
    try:
        return _run(app, once=args.once)
    except Exception as exc:  # while building the runners (the routing model, the teams file)
        if show_traceback():
            raise
        say(stopped_by(exc))
        return 1
    finally:
        app.close()


def mail_runners(app: App) -> list[Runner]:
    """The runners that move mail, each only where configured: one IMAP poller per account, the
    maildir spool, and the outbox sender (smtp.host)."""
    settings = app.settings
    app.wiring.renderer.warm()  # a long run compiles its mail templates once, at start
    runners: list[Runner] = [PollRunner(account, app.ingestor()) for account in settings.imap_all]
    if settings.ingest.spool_maildir:
        runners.append(SpoolRunner(app.ingestor(), Path(settings.ingest.spool_maildir), settings.ingest.poll_seconds))
    return runners + outbound_runners(app)  # delivers the outbox when smtp.host is set


def _run(app: App, *, once: bool) -> int:
    runners = mail_runners(app)
    if not runners:
        say("nothing to run; set imap.host (TRIAGE_IMAP_HOST) or ingest.spool_maildir")
        return 2
    runners += routing_runners(app)
    runners += remind_runners(app)  # reminders and escalations, through the outbox
    runners += digest_runners(app)  # the weekly digests of the teams that asked for one
    runners += retention_runners(app)  # privacy.retention_months: old resolved tickets emptied
    try:  # leases on PostgreSQL; on SQLite, refused if a worker already runs
        coordination = coordinate(app.engine, app.sessions, app.settings.database.url,
                                  app.settings.worker.lease_seconds, runners)
    except AnotherWorker as exc:
        say(str(exc))
        return 2
    try:
        return _run_coordinated(runners, once=once)
    finally:
        coordination.release()


def _run_coordinated(runners: list[Runner], *, once: bool) -> int:
    if not once:
        return 0 if run_until_signalled(runners) else 1
    status = 0
    for runner in runners:
        try:
            runner.run(once=True)
        except Exception as exc:  # noqa: BLE001 - reported; the exit status says so
            say(f"{runner.name}: {stopped_by(exc)}")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
