"""Reader of NumPy files (formats ``npy`` and ``npz``), and :func:`load_arrays` for the ``estimate`` command.

``.npy``: an array ``(n, channels, time)``, or ``(n, time)`` for one channel.
``.npz``: the array under ``data`` (or ``x``/``X``, or the only array), optional
``labels``/``y``, ``channel_names``, ``sampling_rate``. Pickled/object arrays are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dualdiv.core.errors import InputError
from dualdiv.data.readers.common import (
    LazyArray,
    RawSeries,
    _check_fits_in_memory,
    _first_line,
    _numeric_array,
    _sampling_rate,
)


def load_arrays(path: Path) -> tuple[np.ndarray, dict]:
    """The data array of a ``.npy``/``.npz`` file (any shape, numeric) and the NPZ's other arrays.

    NPZ: the array under ``data`` (or ``x``/``X``, or the only array); the rest is
    returned by name. Pickled/object arrays are refused.
    """
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise InputError(f"{path}: cannot load ({_first_line(exc)}); object arrays are not accepted") from None
    except MemoryError as exc:  # a header declaring more than memory holds (truncated or foreign file)
        raise InputError(f"{path}: the array header declares more data than fits in memory ({exc})") from None
    except Exception as exc:  # a corrupt header raises OSError, EOFError, SyntaxError, BadZipFile...
        raise InputError(f"{path}: not a readable NumPy file ({_first_line(exc)})") from None
    if isinstance(loaded, np.ndarray):
        contents, key = {"data": loaded}, "data"
    else:
        with loaded:
            _check_fits_in_memory(path, sum(info.file_size for info in loaded.zip.infolist()))
            try:
                contents = {k: loaded[k] for k in loaded.files}
            except Exception as exc:  # as above, and zlib.error for corrupt compressed members
                raise InputError(f"{path}: corrupt or object-typed array in archive ({_first_line(exc)})") from None
        key = next((k for k in ("data", "x", "X") if k in contents), None)
        if key is None:
            if len(contents) != 1:
                raise InputError(f"{path}: expected an array named 'data' (or 'x'), found "
                                 f"{', '.join(contents) or 'none'}")
            key = next(iter(contents))
    array = contents.pop(key)
    if array.dtype.kind not in "biuf":
        raise InputError(f"{path}: the array has dtype {array.dtype}; expected real numbers")
    return array, contents


def read(path: Path) -> RawSeries:
    """Read ``.npy`` ``(n, channels, time)`` or ``.npz`` (see module docstring)."""
    array, extra = load_arrays(path)
    label_key = next((k for k in ("labels", "y") if k in extra), None)
    labels = [str(v) for v in extra[label_key].ravel()] if label_key else None
    names = [str(v) for v in extra["channel_names"].ravel()] if "channel_names" in extra else None
    rate = _sampling_rate(extra["sampling_rate"], path) if "sampling_rate" in extra else None
    array = _numeric_array(array, path, "the array")
    if labels is not None and len(labels) != len(array):
        raise InputError(f"{path}: {len(labels)} labels for {len(array)} samples")
    return RawSeries(path, array, labels, names, rate)


read_numpy = read  # its name before the readers had a module each


def open_lazy(path: Path, budget_bytes: int | None = None) -> RawSeries | None:
    """An ``.npy`` file as a :class:`~dualdiv.data.readers.common.LazyArray` (memory-mapped by blocks of
    samples, each map closed once its block is copied, so its pages leave the resident memory); None for
    ``.npz`` (compressed members are read whole by :func:`read`) and for a file :func:`read` refuses
    (it names the problem)."""
    if path.suffix.lower() != ".npy":
        return None
    try:
        array = _memmap(path)
    except InputError:
        return None  # read() names the problem, as for any file
    if array.dtype.kind not in "biuf" or array.ndim not in (2, 3):
        return None  # read() names the problem
    shape = array.shape if array.ndim == 3 else (array.shape[0], 1, array.shape[1])
    del array

    def read_block(start: int, stop: int, t0: int, t1: int) -> np.ndarray:
        mapped = _memmap(path)
        try:
            block = mapped[start:stop, ..., t0:t1]
            return np.array(block if block.ndim == 3 else block[:, None, :], dtype=np.float64)
        finally:
            del mapped  # unmapped: its pages leave the resident memory

    return RawSeries(path, LazyArray(path, shape, read_block))


def _memmap(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # truncated data: ValueError (mmap length), corrupt header: many types
        raise InputError(f"{path}: not a readable NumPy file ({_first_line(exc)})") from None
