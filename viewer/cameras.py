"""Browser cameras (viser) to render3d cameras, and back for the initial view.

viser reports each browser's camera as ``wxyz`` (the rotation R of ``P_world = R p_camera
+ t`` as a unit quaternion, w first), ``position`` (t, world units), ``fov`` (the full
vertical field of view, radians) and ``aspect`` (canvas width / height). Its camera axes are
OpenCV's (x right, y down, z forward), as render3d's are, so the cam2world is ``[R | t]``
with nothing flipped. The viewer sets the scene's up direction to +Y, render3d's world up,
so the world axes agree as well.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from render3d.cameras import Cameras, Framing, intrinsics_from_fov


def quaternion_to_matrix(wxyz: np.ndarray) -> np.ndarray:
    """Unit quaternion ``[4]`` (w, x, y, z; normalised here) -> rotation ``[3, 3]``."""
    w, x, y, z = wxyz / np.linalg.norm(wxyz)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def image_size(long_side: int, aspect: float) -> tuple[int, int]:
    """(width, height) in pixels of an image whose longer side is `long_side` and whose
    width / height is `aspect` (the shorter side rounded, at least 1)."""
    if aspect >= 1:
        return long_side, max(1, round(long_side / aspect))
    return max(1, round(long_side * aspect)), long_side


def viser_to_cameras(wxyz, position, fov: float, aspect: float, long_side: int, *,
                     dtype: torch.dtype = torch.float32) -> Cameras:
    """One render3d camera (batch of 1) seeing what a viser browser camera sees.

    Args:
        wxyz: ``[4]`` rotation camera -> world as a quaternion (w, x, y, z), any length > 0.
        position: ``[3]`` camera centre, world units.
        fov: full vertical field of view in radians, in (0, pi).
        aspect: canvas width / height, > 0.
        long_side: pixels along the image's longer side; the other follows from `aspect`.

    Returns `Cameras` with cam2world ``[1, 4, 4]`` (OpenCV) and normalized intrinsics
    ``[1, 3, 3]`` (centred principal point, square pixels), `dtype` on the CPU.
    """
    fn = "viewer.viser_to_cameras"
    q = np.asarray(wxyz, dtype=np.float64)
    t = np.asarray(position, dtype=np.float64)
    if q.shape != (4,) or not np.isfinite(q).all() or np.linalg.norm(q) == 0:
        raise ValueError(f"{fn}: argument 'wxyz' expected 4 finite numbers, not all zero, got {q.tolist()}")
    if t.shape != (3,) or not np.isfinite(t).all():
        raise ValueError(f"{fn}: argument 'position' expected 3 finite numbers, got {t.tolist()}")
    if not 0 < fov < math.pi:
        raise ValueError(f"{fn}: argument 'fov' expected radians in (0, pi), got {fov!r}")
    if not (math.isfinite(aspect) and aspect > 0):
        raise ValueError(f"{fn}: argument 'aspect' expected a positive number, got {aspect!r}")
    if isinstance(long_side, bool) or not isinstance(long_side, int) or long_side < 1:
        raise ValueError(f"{fn}: argument 'long_side' expected an int >= 1, got {long_side!r}")
    cam2world = np.eye(4)
    cam2world[:3, :3] = quaternion_to_matrix(q)
    cam2world[:3, 3] = t
    width, height = image_size(long_side, aspect)
    intrinsics = intrinsics_from_fov(math.degrees(fov), width, height, dtype=dtype)
    return Cameras(torch.from_numpy(cam2world).to(dtype)[None], intrinsics, width, height)


def framing_to_viser(framing: Framing) -> dict:
    """The browser camera of a framing's first view: ``position`` and ``look_at`` (world
    units), ``up`` (world +Y) and ``fov`` (vertical, radians), as viser's camera takes them."""
    center = framing.cameras(1, 8).centers[0].double().numpy()
    return {"position": center, "look_at": np.asarray(framing.pivot, dtype=np.float64),
            "up": np.array([0.0, 1.0, 0.0]), "fov": math.radians(framing.fov_degrees)}
