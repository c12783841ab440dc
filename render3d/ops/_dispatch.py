"""The implementation choice every public op takes: ``impl="auto" | "native" | "torch"``.

- ``"torch"``: the pure-PyTorch twin (the test oracle; runs anywhere, differentiable twice).
- ``"native"``: our C++/CUDA kernel; fails loudly when it cannot be built or does not cover
  the tensors' device. Its backward is native too, except under ``create_graph=True``
  (gradient penalties), where it recomputes through the twin so second derivatives are right.
- ``"auto"``: native where available, otherwise the twin after one clear warning.
"""

from __future__ import annotations

import torch

from .._checks import check_choice
from . import _build

IMPLS = ("auto", "native", "torch")


def use_native(fn: str, impl: str, device: torch.device) -> bool:
    """Decide, for a call of `fn` on tensors on `device`, whether to run the native kernel."""
    check_choice(fn, "impl", impl, IMPLS)
    if impl == "torch":
        return False
    if device.type not in ("cpu", "cuda"):
        if impl == "native":
            raise RuntimeError(f"{fn}: impl='native' supports cpu and cuda tensors, got {device.type}")
        return False
    if impl == "native":
        _build.load_native(raise_errors=True)
        if device.type == "cuda" and not _build.state().with_cuda:
            raise RuntimeError(
                f"{fn}: impl='native' got CUDA tensors, but the native kernels were built without CUDA "
                "(torch has no CUDA, nvcc was not found, or no GPU was visible at build time)"
            )
        return True
    if not _build.load_native():
        _build.warn_once(
            "unavailable",
            f"render3d: native kernels unavailable ({_build.state().error}); using the PyTorch twins, "
            "which are slower and use more memory. Run `render3d build` to see the full error.",
        )
        return False
    if device.type == "cuda" and not _build.state().with_cuda:
        _build.warn_once(
            "no-cuda",
            "render3d: the native kernels were built without CUDA; CUDA tensors use the PyTorch twins.",
        )
        return False
    return True
