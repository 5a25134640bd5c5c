"""Error types of dualdiv.

Every error a user can cause (bad input file, bad config, corrupt artifact)
derives from :class:`DualdivError`, so the CLI and the Snakemake scripts can
print one line naming the file and the problem instead of a traceback.
"""


class DualdivError(Exception):
    """Base class of every error dualdiv raises on purpose."""


class InputError(DualdivError):
    """A data file is unreadable, malformed or violates a stage's contract."""


class ConfigError(DualdivError):
    """A setting is missing, of the wrong type or out of range."""


class OutputError(DualdivError):
    """An output cannot be written: disk full, read-only file system, no permission."""
