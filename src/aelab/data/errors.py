"""The error every data problem raises: a missing, truncated or corrupt file, a bad column or value."""

from __future__ import annotations


class DataError(ValueError):
    """A data file, folder, column or value is missing, truncated, corrupt or of the wrong kind; the
    message names it and what was expected."""
