"""Errors a user can cause. The CLI prints their message on one line and exits with code 2."""


class NeuralCliError(Exception):
    """Base class: the message says what was wrong and what to do."""

    exit_code = 2


class ConfigError(NeuralCliError):
    """A preset, override or option value is invalid."""


class DataError(NeuralCliError):
    """A dataset, file or array is missing or malformed."""


class RunDirError(NeuralCliError):
    """A run directory is missing, incomplete or of the wrong kind."""


class DeviceError(NeuralCliError):
    """A device or precision cannot be used on this machine."""
