"""What a browser asks the server to render: a `View` (its camera and settings), and the
long actions on it: a snapshot PNG and an orbit video."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from render3d._checks import is_number
from render3d.cameras import Cameras

from .cameras import viser_to_cameras
from .sources import Cancelled, Progress, Source, picture, written_file


@dataclass(frozen=True)
class View:
    """One browser's camera and settings at one moment.

    wxyz, position, look_at: viser's camera (rotation camera -> world, w first; centre and
    orbit point in world units); fov: vertical, radians; aspect: canvas width / height;
    mode: one of the source's modes; settings: the source's parameters by name.
    """

    wxyz: tuple[float, float, float, float]
    position: tuple[float, float, float]
    look_at: tuple[float, float, float]
    fov: float
    aspect: float
    mode: str = "rgb"
    settings: Mapping[str, float] = field(default_factory=dict)


def view_cameras(view: View, long_side: int) -> Cameras:
    """The render3d camera of a view, `long_side` pixels along its longer side."""
    return viser_to_cameras(view.wxyz, view.position, view.fov, view.aspect, long_side)


def render_view(source: Source, view: View, long_side: int, cancelled: Cancelled = lambda: False) -> np.ndarray:
    """The picture a browser should show: uint8 ``[H, W, 3]`` of `view.mode`."""
    return picture(source.render(view_cameras(view, long_side), view.mode, view.settings, cancelled), view.mode)


def snapshot_png(source: Source, view: View, long_side: int) -> bytes:
    """The view rendered at `long_side`, as PNG bytes."""
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", render_view(source, view, long_side), extension=".png")


def orbit_cameras(view: View, frames: int, long_side: int) -> Cameras:
    """`frames` cameras of one turn around the vertical (world +Y) axis through the view's
    orbit point, starting at the view's camera (frame `frames` would repeat frame 0)."""
    if not is_number(frames, integer=True) or frames < 1:   # was ZeroDivisionError
        raise ValueError(f"orbit_cameras: argument 'frames' expected a positive int, got {frames!r}")
    first = view_cameras(view, long_side)
    angles = torch.arange(frames, dtype=torch.float64) * (2 * math.pi / frames)
    cos, sin = torch.cos(angles), torch.sin(angles)
    turn = torch.zeros(frames, 4, 4, dtype=torch.float64)
    turn[:, 0, 0], turn[:, 0, 2], turn[:, 2, 0], turn[:, 2, 2] = cos, sin, -sin, cos
    turn[:, 1, 1] = turn[:, 3, 3] = 1
    pivot = torch.eye(4, dtype=torch.float64)
    pivot[:3, 3] = torch.tensor(view.look_at, dtype=torch.float64)
    back = torch.eye(4, dtype=torch.float64)
    back[:3, 3] = -pivot[:3, 3]
    cam2world = pivot @ turn @ back @ first.cam2world.double()
    return Cameras(cam2world.float(), first.intrinsics.expand(frames, 3, 3), first.width, first.height)


def orbit_video(source: Source, view: View, frames: int, long_side: int, progress: Progress, *,
                fps: int = 24) -> tuple[str, bytes]:
    """One turn around the view's orbit point in the view's mode, as (file name, MP4 bytes)
    (a GIF where imageio-ffmpeg cannot write MP4s). `progress` hears of every frame."""
    from render3d.visualize import save_video

    cameras = orbit_cameras(view, frames, long_side)
    pictures = []
    for i in range(frames):
        progress(i / frames, f"frame {i + 1} of {frames}")
        rendered = source.render(cameras[i], view.mode, view.settings, lambda: False)
        pictures.append(torch.from_numpy(picture(rendered, view.mode)).permute(2, 0, 1).float() / 255)
    progress(1.0, "encoding")
    return written_file(lambda path: save_video(torch.stack(pictures), path, fps=fps), f"orbit_{source.name}.mp4")
