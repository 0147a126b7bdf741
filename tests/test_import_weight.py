"""Training commands must not import scipy, scikit-learn or matplotlib.

Together they cost ~90-120 MB of memory and ~1.5-2.5 s of start-up, paid by every process
(DDP ranks and data workers included) that merely imports the configs, models and objectives.
They are imported inside the functions that use them; this guards against a module-level import
creeping back in.
"""

from __future__ import annotations

import json
import subprocess
import sys

TRAINING_MODULES = (
    "neuralcli.config.schemas",
    "neuralcli.models.autoencoder",
    "neuralcli.models.denoiser",
    "neuralcli.training.ae_objective",
    "neuralcli.training.diffusion_objective",
    "neuralcli.training.loop",
    "neuralcli.runtime.checkpoint",
    "neuralcli.runtime.device",
    "neuralcli.data.datasets",
    "neuralcli.cli.main",
)
HEAVY_PACKAGES = ("scipy", "sklearn", "matplotlib")

# A fresh interpreter: this test process has long since imported scipy through other tests.
_SCRIPT = f"""
import importlib, json, sys
for name in {TRAINING_MODULES!r}:
    importlib.import_module(name)
heavy = {HEAVY_PACKAGES!r}
print(json.dumps(sorted(m for m in sys.modules if m.partition(".")[0] in heavy)))
"""


def test_training_imports_leave_out_scipy_sklearn_and_matplotlib() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    by_package = {
        package: [m for m in loaded if m.partition(".")[0] == package] for package in HEAVY_PACKAGES
    }
    offending = "; ".join(
        f"{package}: {len(names)} modules ({', '.join(names[:6])}, ...)"
        for package, names in by_package.items()
        if names
    )
    assert not loaded, (
        f"importing the training modules loaded {offending}. Import them inside the functions "
        "that use them; `python -X importtime -c 'import neuralcli.cli.main'` shows who does."
    )
