"""File helpers shared by every stage: atomic writes, checksums, provenance.

A stage never writes its output under the final name: it writes to a hidden
temporary file beside it and renames it only when the file is complete, so a
killed job cannot leave something a later stage would take as finished.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dualdiv.core.errors import OutputError

_PACKAGE_DIR = Path(__file__).resolve().parent


@contextlib.contextmanager
def atomic_output(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` on success.

    On any exception the temporary file is removed and ``final`` is left as it
    was (absent, or the previous complete version). Disk-full and read-only
    errors become an :class:`~dualdiv.core.errors.OutputError` naming the output.
    """
    final = Path(final)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(final)
        yield tmp
        os.replace(tmp, final)
    except OSError as exc:
        _remove_quietly(tmp)
        if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
            # os.strerror: h5py's own strerror spans several lines of HDF5 detail
            raise OutputError(f"{final}: cannot write output: {os.strerror(exc.errno)}") from exc
        raise
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_stale_temporaries(final: Path) -> None:
    """Remove temporaries of ``final`` whose writer is gone (a job killed with SIGKILL cannot clean up).

    A writer is known by the process id in the temporary's name; Snakemake's directory lock
    ensures no other host writes the same output at the same time.
    """
    for stale in final.parent.glob(f".{glob.escape(final.name)}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _process_alive(int(pid)):
            _remove_quietly(stale)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def settings_hash(settings: Mapping[str, Any]) -> str:
    """Short sha256 of a settings mapping in canonical JSON (key order does not matter)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_hash(*modules: str) -> str:
    """Short sha256 of the source of the named ``dualdiv`` modules (e.g. ``"tiling"``) or
    subpackages (e.g. ``"baselines"``: every module in it).

    Snakemake does not rerun a rule when a module its script imports changes;
    the rules put this hash in ``params`` so that editing a module reruns
    exactly the stages that use it.
    """
    digest = hashlib.sha256()
    for module in sorted(set(modules)):
        package = _PACKAGE_DIR / module
        files = sorted(package.glob("*.py")) if package.is_dir() else [_PACKAGE_DIR / f"{module}.py"]
        for file in files:
            digest.update(str(file.relative_to(_PACKAGE_DIR)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def available_memory() -> int:
    """Bytes of memory a process can still take (MemAvailable on Linux, else physical memory)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def git_commit() -> str | None:
    """Commit of the checkout dualdiv runs from, or None outside a git work tree."""
    try:
        result = subprocess.run(
            ["git", "-C", str(_PACKAGE_DIR), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def provenance(stage: str, settings: Mapping[str, Any], inputs: Mapping[str, str]) -> dict:
    """Provenance record stored in every artifact.

    ``inputs`` maps each input path to its sha256; ``settings`` is the config
    section that produced the artifact (seed included).
    """
    from dualdiv import __version__

    return {
        "stage": stage,
        "dualdiv_version": __version__,
        "git_commit": git_commit(),
        "settings": dict(settings),
        "settings_hash": settings_hash(settings),
        "inputs": dict(inputs),
    }
