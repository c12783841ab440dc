"""render3d: 3D-aware generation and neural rendering.

Importing render3d is cheap and never compiles anything: native kernels are built on their
first call (or ahead of time by `render3d build`). Submodules are imported on first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path

__version__ = "0.1.0"

# The small VolumeGAN we trained on the synthetic objects and ship (how: bench/results/
# demo_checkpoint.json): the model of `render3d demo`, and what `render3d view` shows by default.
DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "assets" / "volumegan_synth64.safetensors"

_SUBMODULES = (
    "cameras", "config", "constants", "datasets", "discriminators", "generators", "losses", "mesh", "metrics", "nn",
    "ops", "rays", "registry", "splat", "training", "volume",
)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'render3d' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
