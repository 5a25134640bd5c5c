"""The wrapper every ``workflow/scripts/*.py`` runs its body in: logging to the rule's log, one-line errors.

Kept to the standard library and :mod:`dualdiv.core.errors`, so it adds nothing to a
rule's code hash (each rule hashes the import closure of its script).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dualdiv.core.errors import DualdivError


def run_script(snakemake: Any, body: Callable[[Any], None]) -> None:
    """Run a rule's script body with logging to the rule's log file.

    A :class:`DualdivError` (bad input, bad config, corrupt artifact) is written
    as one line to the log and stderr and exits with code 2 — no traceback.
    """
    log_path = Path(snakemake.log[0])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(log_path, mode="w"), logging.StreamHandler(sys.stderr)],
        force=True,
    )
    try:
        body(snakemake)
    except DualdivError as exc:
        logging.getLogger("dualdiv").error("%s", exc)
        sys.exit(2)
