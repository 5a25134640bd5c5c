"""Reader of wide CSV tables (format ``csv``, extension ``.csv``).

One row per time point, a ``sample`` column naming the series the row belongs to,
one numeric column per channel; optional ``time`` (rows of a sample are sorted by
it) and ``label`` (constant within a sample). Samples keep the order in which they
first appear. Named ``csv_table`` so that it does not shadow the standard ``csv`` module.

:func:`open_lazy` streams a table too large to parse whole (the streaming ingest): one pass by
chunks of rows checks it as :func:`read` does and finds each sample's rows; the samples are then read
back by blocks of rows. It needs what a recording written row by row has: each sample's rows
contiguous, sorted by ``time`` where there is one, and samples of one length; a table without that
layout is read whole by :func:`read`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dualdiv.core.errors import InputError
from dualdiv.data.readers.common import LazyArray, RawSeries

NA_TEXT = {"", "nan", "-nan", "na", "n/a", "null", "none", "<na>", "#n/a", "-1.#ind", "1.#qnan"}  # pandas' NaN words
CHUNK_ROWS = 65_536  # rows a chunk of the streaming pass (65 536 × 65 columns ≈ 34 MiB as float64)


def read(path: Path) -> RawSeries:
    """Read a wide CSV: a ``sample`` column, one column per channel, one row per time point."""
    import pandas as pd

    try:
        table = pd.read_csv(path, encoding="utf-8", skipinitialspace=True)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text: is this the right file?") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"{path}: not a readable CSV table: {str(exc).splitlines()[0]}") from None
    columns = [str(c) for c in table.columns]
    if "sample" not in columns:
        raise InputError(f"{path}: no 'sample' column; expected a wide table with columns "
                         f"sample,<channel>,<channel>,... (got {', '.join(map(repr, columns[:8]))})")
    channels = [c for c in columns if c not in ("sample", "time", "label")]
    if not channels:
        raise InputError(f"{path}: no channel columns besides sample/time/label")
    table[channels] = _check_numbers(table, channels, path, 2)
    series, labels = [], []
    for key, rows in table.groupby("sample", sort=False):  # samples in order of first appearance
        if "time" in columns:
            rows = rows.sort_values("time", kind="stable")
        values = rows[channels].to_numpy(dtype=np.float64).T  # (channels, time)
        series.append(list(values))
        if "label" in columns:
            distinct = rows["label"].astype(str).unique()
            if len(distinct) != 1:
                raise InputError(f"{path}: sample {key!r} has several labels ({', '.join(map(repr, distinct[:4]))}); "
                                 "a label must be constant within a sample")
            labels.append(distinct[0])
    return RawSeries(path, series, labels or None, channel_names=channels)


def _check_numbers(chunk, channels, path: Path, first_line: int) -> np.ndarray:
    """Channel columns of one chunk as float64 ``(rows, channels)``; the errors of :func:`read` (line numbers
    from ``first_line``, the chunk's first data line)."""
    import pandas as pd

    values = np.empty((len(chunk), len(channels)))
    for c, name in enumerate(channels):
        numeric = pd.to_numeric(chunk[name], errors="coerce")
        values[:, c] = numeric.to_numpy(dtype=float)
    if np.isnan(values).any():  # text the in-memory parse reads as NaN: empty, "nan", "NA", …
        row, col = np.argwhere(np.isnan(values))[0]
        text = str(chunk[channels[col]].iloc[row])
        if text.strip().lower() not in NA_TEXT:
            raise InputError(f"{path}:{row + first_line}: column {channels[col]!r}: {text[:40]!r} is not a number")
        raise InputError(f"{path}:{row + first_line}: column {channels[col]!r}: empty or NaN value")
    return values


def open_lazy(path: Path, budget_bytes: int | None = None) -> RawSeries | None:
    """A wide CSV left on disk as a :class:`~dualdiv.data.readers.common.LazyArray` read by blocks of rows,
    or None to read it whole with :func:`read`: when its text is at most ``budget_bytes`` / 2 (it parses in
    memory at about twice its size; None: always stream), or when its layout cannot be streamed (a
    sample's rows not contiguous or not sorted by ``time``, samples of different lengths)."""
    import pandas as pd

    if budget_bytes is not None and 2 * path.stat().st_size <= budget_bytes:
        return None
    try:
        header = pd.read_csv(path, nrows=0, encoding="utf-8", skipinitialspace=True)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        return None  # read() names the problem
    columns = [str(c) for c in header.columns]
    channels = [c for c in columns if c not in ("sample", "time", "label")]
    if "sample" not in columns or not channels:
        return None
    keys, lengths, labels, seen = [], [], [], set()
    last_time, rows = None, 0
    try:
        chunks = pd.read_csv(path, encoding="utf-8", skipinitialspace=True, chunksize=CHUNK_ROWS,
                             dtype={"sample": str, "label": str}, keep_default_na=False)
        for chunk in chunks:
            _check_numbers(chunk, channels, path, rows + 2)
            times = pd.to_numeric(chunk["time"], errors="coerce").to_numpy(float) if "time" in columns else None
            sample = chunk["sample"].to_numpy()
            starts = np.flatnonzero(np.r_[True, sample[1:] != sample[:-1]])
            for a, b in zip(starts, np.r_[starts[1:], len(sample)], strict=True):
                key = sample[a]
                if keys and key == keys[-1]:
                    lengths[-1] += b - a  # the sample goes on from the previous chunk
                elif key in seen:
                    return None  # its rows are not contiguous: read() groups them in memory
                else:
                    keys.append(key), lengths.append(b - a), seen.add(key)
                    last_time = None
                    if "label" in columns:
                        labels.append(chunk["label"].iloc[a])
                if times is not None:
                    part = times[a:b] if last_time is None else np.r_[last_time, times[a:b]]
                    if not (np.diff(part) >= 0).all() or np.isnan(part).any():
                        return None  # not sorted by time (or unreadable times): read() sorts
                    last_time = part[-1]
                if "label" in columns and (chunk["label"].iloc[a:b] != labels[-1]).any():
                    distinct = list(dict.fromkeys([labels[-1], *chunk["label"].iloc[a:b]]))
                    raise InputError(f"{path}: sample {key!r} has several labels "
                                     f"({', '.join(map(repr, distinct[:4]))}); a label must be constant within "
                                     "a sample")
            rows += len(chunk)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text: is this the right file?") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(f"{path}: not a readable CSV table: {str(exc).splitlines()[0]}") from None
    if not keys or len(set(lengths)) > 1:
        return None  # ragged: read() hands the length policy lists
    n_time = lengths[0]

    def read_block(start: int, stop: int, t0: int, t1: int) -> np.ndarray:
        """Samples start..stop−1, time points t0..t1−1 as float64 (stop − start, C, t1 − t0), parsed by chunks of
        rows straight into the block (its memory: the block and one chunk)."""
        first, count = start * n_time + t0, (stop - 1 - start) * n_time + t1 - t0
        block = np.empty((stop - start, len(channels), t1 - t0))
        expected = np.asarray(keys[start:stop], dtype=object)
        # the header and the rows before are skipped by the C parser; only the rows needed are parsed
        chunks = pd.read_csv(path, skiprows=1 + first, nrows=count, header=None, names=columns, encoding="utf-8",
                             skipinitialspace=True, dtype={"sample": str}, keep_default_na=False,
                             usecols=["sample", *channels], chunksize=CHUNK_ROWS)
        done = 0
        for chunk in chunks:
            offset = t0 + done + np.arange(len(chunk))  # row index from sample ``start``'s first row
            sample, time = offset // n_time, offset % n_time
            if (chunk["sample"].to_numpy() != expected[np.minimum(sample, len(expected) - 1)]).any():
                break  # the error below
            keep = (time >= t0) & (time < t1)
            block[sample[keep], :, time[keep] - t0] = chunk[channels].to_numpy(dtype=np.float64)[keep]
            done += len(chunk)
        if done != count:
            raise InputError(f"{path}: rows moved since the file was checked, or lines that are not one row each "
                             "(blank lines, quoted line breaks); such a table cannot be streamed: raise "
                             "ingest.memory_mb to read it whole")
        return block

    shape = (len(keys), len(channels), n_time)
    # parsed whole, a table takes about twice its text (1.85 × measured for 64 channels, benchmarks/SCALING.md)
    return RawSeries(path, LazyArray(path, shape, read_block), labels or None, channel_names=channels,
                     meta={"in_memory_bytes": 2 * path.stat().st_size})


read_csv = read  # its name before the readers had a module each
