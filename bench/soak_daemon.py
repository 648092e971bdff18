"""The soak's daemon under test: what ``canaryd serve`` runs, plus a sampler in the same loop.

``python bench/soak.py --child SAMPLES`` runs :func:`child`: settings from CANARYD_* variables,
``Daemon(settings).serve()`` and JSON logs as the real command, and beside it a task that
appends, every ``--sample-s``, the process's RSS, live asyncio tasks, open file descriptors,
threads, gc-tracked objects and the canaries held in memory to SAMPLES (one JSON object a line).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["child"]


def _status_kb(field_name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return -1


def _sample(daemon: Any, scheduler_type: type) -> dict[str, Any]:
    fleet = getattr(daemon.ctx, "fleet", None)
    live = len(getattr(fleet, "canaries", {}))
    schedulers = [o for o in gc.get_objects() if isinstance(o, scheduler_type)]
    return {
        "t": time.monotonic(),
        "rss_kb": _status_kb("VmRSS"),
        "hwm_kb": _status_kb("VmHWM"),
        "threads": _status_kb("Threads"),
        "fds": len(os.listdir("/proc/self/fd")),
        "tasks": len(asyncio.all_tasks()),
        "gc_objects": len(gc.get_objects()),
        "live": live,
        "sched": sum(
            len(s._queue.next_due) for s in schedulers
        ),  # a probe of the scheduler's state
    }


async def _sampler(daemon: Any, path: Path, every_s: float, stop: asyncio.Event) -> None:
    from analyzer.tick.scheduler import Scheduler  # noqa: PLC0415 — the child's imports only

    with path.open("a", encoding="utf-8") as out:
        while not stop.is_set():
            out.write(json.dumps(_sample(daemon, Scheduler)) + "\n")
            out.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)


async def child(samples: Path, every_s: float) -> int:
    """What ``canaryd serve`` runs, with the sampler beside it in the same loop."""
    from analyzer.daemon import Daemon  # noqa: PLC0415
    from analyzer.logs import configure_logging  # noqa: PLC0415
    from analyzer.settings import load_settings  # noqa: PLC0415

    settings = load_settings()
    configure_logging(settings.log_level)
    daemon = Daemon(settings)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(_sampler(daemon, samples, every_s, stop))
        try:
            code = await daemon.serve()
        finally:
            stop.set()
    return code
