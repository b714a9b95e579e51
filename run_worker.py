#!/usr/bin/env python3
"""The long-running worker, run from a checkout: `python run_worker.py [--once]`.

The same program as the installed `triage-worker` command (see `triage/worker.py`).
"""

from __future__ import annotations

import sys

from triage.worker import main, routing_runners

__all__ = ["main", "routing_runners"]

if __name__ == "__main__":
    sys.exit(main())
