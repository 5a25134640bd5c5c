"""The wrapper every ``workflow/scripts/*.py`` runs its body in: logging to the rule's log, one-line errors.

Kept to the standard library and :mod:`dualdiv.core.errors`, so it adds nothing to a
rule's code hash (each rule hashes the import closure of its script).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dualdiv.core.errors import DualdivError


def run_script(snakemake: Any, body: Callable[[Any], None], exit_now: bool = True) -> None:
    """Run a rule's script body with logging to the rule's log file.

    A :class:`DualdivError` (bad input, bad config, corrupt artifact) or a MemoryError is written
    as one line to the log and stderr and exits with code 2 — no traceback.
    exit_now: after a body that returned, end the process at once (exit code 0, no
    interpreter teardown): the script is the job's whole process.
    """
    log_path = Path(snakemake.log[0])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(log_path, mode="w"), logging.StreamHandler(sys.stderr)],
        force=True,
    )
    started = time.perf_counter()
    try:
        body(snakemake)
    except DualdivError as exc:
        logging.getLogger("dualdiv").error("%s", exc)
        sys.exit(2)
    except MemoryError:  # outputs are written atomically: nothing is left under their names
        logging.getLogger("dualdiv").error(
            "rule %s: out of memory; no output was written. Give the job more memory (resources mem_mb on a "
            "cluster) or lower ingest.memory_mb / tile.memory_mb (README: When things go wrong)",
            getattr(snakemake, "rule", "?"))
        sys.exit(2)
    # the line benchmarks/pipeline_timing.py reads: a job's wall minus "work" is its overhead
    startup = process_age() - (time.perf_counter() - started)
    logging.getLogger("dualdiv.runner").info("rule %s: work %.2f s, start-up %.2f s (interpreter and imports)",
                                             getattr(snakemake, "rule", "?"), time.perf_counter() - started, startup)
    if exit_now:
        # every output is written and closed (atomically) by now; the interpreter's own teardown of
        # torch, SciPy and scikit-learn costs 0.6-0.8 s per job and does nothing for the results
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def process_age() -> float:
    """Seconds since this process started (Linux /proc; elsewhere NaN)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")
    return uptime - ticks / os.sysconf("SC_CLK_TCK")
