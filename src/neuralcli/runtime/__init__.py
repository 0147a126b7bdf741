"""Device, precision, seeding, distributed setup, run directories and checkpoint files."""

from neuralcli.runtime.device import Runtime, resolve_device, resolve_precision, resolve_runtime
from neuralcli.runtime.files import atomic_path, atomic_write_bytes, atomic_write_text
from neuralcli.runtime.home import resolve_home

__all__ = [
    "Runtime",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "resolve_device",
    "resolve_home",
    "resolve_precision",
    "resolve_runtime",
]
