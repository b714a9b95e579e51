"""Run calls at the same moment, each in a thread of its own, as separate workers would."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_together(*calls: Callable[[], T], timeout: float = 120.0) -> list[T]:
    """Start every call at once (a barrier), wait for all, and return their results in order;
    the first exception any raised is raised here."""
    barrier = threading.Barrier(len(calls))
    results: list[tuple[bool, object]] = [(False, None)] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = (True, calls[i]())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread below
            results[i] = (False, exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"a call still runs after {timeout} s")
    for ok, value in results:
        if not ok:
            raise value if isinstance(value, BaseException) else RuntimeError("a call never ran")
    return [value for _, value in results]  # type: ignore[misc]
