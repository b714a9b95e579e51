#!/usr/bin/env python3
"""The long-running worker: args -> settings -> bootstrap() -> run the configured runners.

Today it runs the maildir spool runner (`[ingest] spool_maildir`). SIGTERM and SIGINT
stop it cleanly after the mail in progress is committed.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from triage.bootstrap import bootstrap
from triage.config import ConfigError, load_settings
from triage.logging import configure_logging
from triage.runners.spool import SpoolRunner
from triage.store.schema import SchemaError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
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
    runners = []
    if settings.ingest.spool_maildir:
        runners.append(SpoolRunner(app.ingestor(), Path(settings.ingest.spool_maildir), settings.ingest.poll_seconds))
    if not runners:
        print("run_worker: nothing to run; set ingest.spool_maildir (TRIAGE_INGEST_SPOOL_MAILDIR)", file=sys.stderr)
        return 2

    def stop(signum: int, _frame: object) -> None:
        for runner in runners:
            runner.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for runner in runners:  # one runner today; several run in threads once there are more
            runner.run(once=args.once)
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
