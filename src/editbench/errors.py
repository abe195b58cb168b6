"""User-facing errors: one message that names the problem and the fix."""

from __future__ import annotations


class EditbenchError(Exception):
    """An error the user can act on. The CLI prints it without a traceback unless debug=true."""


class ConfigError(EditbenchError):
    """A wrong or missing configuration value."""


class DataError(EditbenchError):
    """A missing data file or a malformed record."""


class ModelError(EditbenchError):
    """A model that cannot be loaded or lacks the modules editing needs."""


class NumericalError(EditbenchError):
    """An update that would make a weight non-finite (raised when on_nonfinite=abort)."""
