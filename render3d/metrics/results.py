"""Metric results as JSON, with everything needed to tell whether two numbers are comparable:
the settings used, the inputs, and the versions that produced them."""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from render3d._files import write_file


def results_record(metrics: dict, settings: dict, inputs: dict) -> dict:
    """{"metrics", "settings", "inputs", "environment"}: environment holds the render3d, torch,
    numpy and Python versions, the time (UTC, ISO 8601) and the command line."""
    import numpy
    import torch

    import render3d

    return {
        "metrics": metrics,
        "settings": settings,
        "inputs": inputs,
        "environment": {
            "render3d": render3d.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version(), "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": sys.argv,
        },
    }


def write_results(path: str | Path, metrics: dict, settings: dict, inputs: dict) -> Path:
    """Write `results_record(...)` to `path` as indented JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_file(path, json.dumps(results_record(metrics, settings, inputs), indent=1).encode())
