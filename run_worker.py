#!/usr/bin/env python3
"""The long-running worker: args -> settings -> bootstrap() -> run the configured runners.

Runners: one IMAP poller per configured account ([imap], [imap_accounts.*]), if set the
maildir spool (`ingest.spool_maildir`), and if `smtp.host` is set the outbox sender. SIGTERM
and SIGINT stop it cleanly: the batch in progress is finished and committed, connections are logged out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from triage.bootstrap import App, bootstrap
from triage.config import ConfigError, load_settings
from triage.logging import configure_logging
from triage.runners.base import Runner
from triage.runners.outbound import outbound_runners
from triage.runners.poll import PollRunner
from triage.runners.remind import remind_runners
from triage.runners.spool import SpoolRunner
from triage.runners.supervisor import run_until_signalled
from triage.store.schema import SchemaError


def routing_runners(app: App) -> list[Runner]:
    """Suggest and retrain, when the teams file is there (otherwise mail still flows, unrouted)."""
    from triage.routing.errors import RoutingError
    from triage.runners.routing import RetrainRunner, SuggestRunner

    try:
        router = app.router()
    except RoutingError as exc:
        print(f"run_worker: routing off: {exc}", file=sys.stderr)
        return []
    return [SuggestRunner(router), RetrainRunner(router, app.settings.routing)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", help="path to triage.toml (default: $TRIAGE_CONFIG or ./triage.toml)")
    parser.add_argument("--once", action="store_true", help="one pass of every runner, then exit (for cron)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        configure_logging(settings.log)
        app = bootstrap(settings)
    except (ConfigError, SchemaError) as exc:
        print(f"run_worker: {exc}", file=sys.stderr)
        return 2
    try:
        runners: list[Runner] = [PollRunner(account, app.ingestor()) for account in settings.imap_all]
        if settings.ingest.spool_maildir:
            runners.append(
                SpoolRunner(app.ingestor(), Path(settings.ingest.spool_maildir), settings.ingest.poll_seconds)
            )
        runners += outbound_runners(app)  # delivers the outbox when smtp.host is set
        if not runners:
            print("run_worker: nothing to run; set imap.host (TRIAGE_IMAP_HOST) or ingest.spool_maildir",
                  file=sys.stderr)
            return 2
        runners += routing_runners(app)
        runners += remind_runners(app)  # reminders and escalations, through the outbox
        if args.once:
            status = 0
            for runner in runners:
                try:
                    runner.run(once=True)
                except Exception as exc:  # noqa: BLE001 - reported; the exit status says so
                    print(f"run_worker: {runner.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
                    status = 1
            return status
        run_until_signalled(runners)
        return 0
    finally:
        app.close()


if __name__ == "__main__":
    sys.exit(main())
