"""File helpers shared by every stage: atomic writes, checksums, provenance.

A stage never writes its output under the final name: it writes to a hidden
temporary file beside it and renames it only when the file is complete, so a
killed job cannot leave something a later stage would take as finished.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import glob
import hashlib
import json
import math
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dualdiv.core.errors import OutputError

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the dualdiv package


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


def strict_json(value: Any) -> Any:
    """``value`` with NaN and ±inf floats as None and NumPy scalars/arrays as Python values (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str):  # NumPy scalars and arrays
        return strict_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | os.PathLike, content: Mapping[str, Any]) -> None:
    """Write ``content`` as strict JSON (NaN/inf → null; sorted keys, indent 1), atomically.

    The one JSON writer of every stage, so every artifact reads back with any JSON parser.
    """
    text = json.dumps(strict_json(content), indent=1, sort_keys=True, allow_nan=False, default=str)
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text + "\n")


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


def _module_file(module: str) -> Path | None:
    """The source file of dotted ``dualdiv`` module ``module`` (a package's ``__init__.py``), or None."""
    parts = module.split(".")[1:]
    if not parts:
        return _PACKAGE_DIR / "__init__.py"
    for candidate in (_PACKAGE_DIR.joinpath(*parts, "__init__.py"),
                      _PACKAGE_DIR.joinpath(*parts[:-1], f"{parts[-1]}.py")):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(file: Path) -> set[str]:
    """Dotted ``dualdiv`` modules that ``file`` imports anywhere (also inside functions), and their parents."""
    found = set()
    for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from dualdiv.a import b``: b may be a module of package a
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for name in names:
            if name == "dualdiv" or name.startswith("dualdiv."):
                parts = name.split(".")
                found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {name for name in found if _module_file(name) is not None}


def import_closure(*roots: str | os.PathLike) -> list[Path]:
    """Source files of every ``dualdiv`` module reachable by imports from ``roots``, sorted.

    roots: dotted module names (``"dualdiv.stages.sample"``), ``"package.*"`` (every module
    of a package), or paths of scripts (``workflow/scripts/sample.py``), whose own file is
    not included. Imports are read from the source (``ast``), not executed; a module
    imported by a string (the generator and reader registries) is not followed: name it
    (or its package) as a root.
    """
    pending, seen = [], set()
    for root in roots:
        if str(root).endswith(".py"):
            pending += sorted(_imported_modules(Path(root)))
        elif str(root).endswith(".*"):  # every module of a package (those a registry imports by name)
            package = str(root)[:-2]
            folder = _PACKAGE_DIR.joinpath(*package.split(".")[1:])
            pending += [package] + [f"{package}.{file.stem}" for file in sorted(folder.glob("*.py"))
                                    if file.stem != "__init__"]
        else:
            pending.append(str(root))
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        file = _module_file(module)
        if file is None:
            raise ValueError(f"code_hash: {module!r} is not a module of dualdiv")
        pending += sorted(_imported_modules(file) - seen)
    return sorted({_module_file(module) for module in seen})


def code_hash(*roots: str | os.PathLike) -> str:
    """Short sha256 of the source of every ``dualdiv`` module the ``roots`` import (:func:`import_closure`).

    Snakemake does not rerun a rule when a module its script imports changes; the
    rules put this hash of their script's import closure in ``params``, so editing a
    module reruns exactly the rules whose code imports it (and what depends on them).
    """
    digest = hashlib.sha256()
    for file in import_closure(*roots):
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
