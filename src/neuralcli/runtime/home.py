"""The one root directory that holds raw data, processed data and runs."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "NEURALCLI_HOME"
DEFAULT_HOME = "neuralcli-home"


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """`--home`, else `$NEURALCLI_HOME`, else `./neuralcli-home` (not created here)."""
    if home:
        return Path(home).expanduser().resolve()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return (Path.cwd() / DEFAULT_HOME).resolve()
