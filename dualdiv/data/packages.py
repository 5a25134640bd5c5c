"""Data files shipped inside installed Python packages, named ``package:<package>/<path in it>``.

E.g. ``package:pvlib/data/723170TYA.CSV`` (the benchmark's data sets, config/benchmark.yaml):
:func:`resolve_path` finds the file without importing the package. Used by ingest and by the
workflow's data-set selection.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from dualdiv.core.errors import InputError

PACKAGE_PREFIX = "package:"


def resolve_path(path: str | os.PathLike) -> Path:
    """The file ``path`` names: ``package:<package>/<inner path>`` inside an installed package, else as is.

    The package is located with :func:`importlib.util.find_spec`, which does not
    import it (some data packages fail to import, e.g. nolds on Python 3.11).
    """
    text = os.fspath(path)
    if not text.startswith(PACKAGE_PREFIX):
        return Path(path)
    package, _, inner = text[len(PACKAGE_PREFIX):].partition("/")
    if not package.isidentifier() or not inner:
        raise InputError(f"{text}: expected {PACKAGE_PREFIX}<package>/<file inside it>, "
                         "e.g. package:pvlib/data/723170TYA.CSV")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"{text}: the Python package {package!r} is not installed; install it with "
                         f"`pip install {package}` (all benchmark data packages: pip install -e \".[benchmark]\")")
    for location in spec.submodule_search_locations:
        if (Path(location) / inner).is_file():
            return Path(location) / inner
    raise InputError(f"{text}: no file {inner!r} in the installed package {package} "
                     f"({', '.join(spec.submodule_search_locations)}); is it the pinned version?")
