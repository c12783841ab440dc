"""The argument checks of the camera functions: sizes, rigid poses, pinhole intrinsics and
broadcasting of per-camera values, each naming the function and argument it checks."""

from __future__ import annotations

import torch

from render3d._checks import check_finite, check_positive, check_tensor

# A pose is rigid when max|R^T R - I| and the last row's distance from (0, 0, 0, 1) stay below
# this: loose enough for poses stored as float32 text (dataset.json, transforms.json), tight
# enough to reject a scaled or sheared rotation.
RIGID_TOL = 1e-3


def _check_size(fn: str, name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{fn}: argument '{name}' expected an int, got {type(value).__name__}")
    check_positive(fn, name, value)


def _first_bad(mask: torch.Tensor) -> int | None:
    bad = mask.nonzero()
    return int(bad[0, 0]) if len(bad) else None


def _check_rigid(fn: str, name: str, m: torch.Tensor) -> None:
    """Raise unless every [4, 4] in `m` [B, 4, 4] is finite and rigid (two device syncs)."""
    check_finite(fn, name, m)
    with torch.no_grad():
        rot = m[:, :3, :3]
        eye = torch.eye(3, dtype=m.dtype, device=m.device)
        stats = torch.stack([
            (m[:, 3] - m.new_tensor([0.0, 0.0, 0.0, 1.0])).abs().amax(1),
            (rot.transpose(1, 2) @ rot - eye).abs().amax((1, 2)),
            torch.linalg.det(rot),
        ], 1).cpu()
    if (i := _first_bad(stats[:, 0] > RIGID_TOL)) is not None:
        raise ValueError(f"{fn}: argument '{name}' expected last row (0, 0, 0, 1), got {m[i, 3].tolist()} "
                         f"in camera {i}")
    if (i := _first_bad(stats[:, 1] > RIGID_TOL)) is not None:
        raise ValueError(f"{fn}: argument '{name}' expected an orthonormal rotation (max|R^T R - I| <= {RIGID_TOL}), "
                         f"got {stats[i, 1].item():.3g} in camera {i}")
    if (i := _first_bad(stats[:, 2] < 0)) is not None:
        raise ValueError(f"{fn}: argument '{name}' expected a rotation with det +1, got det {stats[i, 2].item():.3g} "
                         f"in camera {i} (a reflection)")


def _check_intrinsics(fn: str, name: str, k: torch.Tensor) -> None:
    """Raise unless every [3, 3] in `k` [B, 3, 3] is a finite upper-triangular pinhole matrix."""
    check_finite(fn, name, k)
    with torch.no_grad():
        stats = torch.stack([
            (k[:, 2] - k.new_tensor([0.0, 0.0, 1.0])).abs().amax(1).maximum(k[:, 1, 0].abs()),
            k[:, 0, 0].minimum(k[:, 1, 1]),
        ], 1).cpu()
    if (i := _first_bad(stats[:, 0] > RIGID_TOL)) is not None:
        raise ValueError(f"{fn}: argument '{name}' expected rows 1 and 2 to be (0, fy, cy), (0, 0, 1), "
                         f"got {k[i].tolist()} in camera {i}")
    if (i := _first_bad(stats[:, 1] <= 0)) is not None:
        raise ValueError(f"{fn}: argument '{name}' expected positive focal lengths, got {k[i].tolist()} in camera {i}")


def _broadcast(fn: str, name: str, value, tail: tuple, batch: int, like: torch.Tensor) -> torch.Tensor:
    """`value` (a number, sequence or tensor of shape `tail` or [B, *tail]) as a [B, *tail]
    tensor of `like`'s dtype and device (a tensor must already have them)."""
    if isinstance(value, torch.Tensor):
        check_tensor(fn, name, value, like=like, like_name="the pose tensors")
    else:
        value = torch.tensor(value, dtype=like.dtype, device=like.device)
    if tuple(value.shape) == tail:
        return value.expand(batch, *tail).contiguous()
    if tuple(value.shape) == (batch, *tail):
        return value
    want = list(tail) if tail else "a scalar"
    raise ValueError(f"{fn}: argument '{name}' expected shape {want} or {[batch, *tail]}, got {list(value.shape)}")
