"""How to look at an object: an orbit framing for grids of views, videos and previews."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from render3d._checks import check_number, check_positive
from render3d.cameras.camera import Cameras
from render3d.cameras.poses import orbit


@dataclass(frozen=True)
class Framing:
    """Cameras on a level circle around the world +Y axis through `center`, looking at `pivot`.

    radius: distance from `center` (world units). elevation: radians above the horizon.
    fov_degrees: full vertical field of view (images taller than wide see less sideways).
    yaw_start: azimuth of the first camera (radians; pi-GAN's
    convention, camera at center + radius (cos yaw, ., sin yaw) in x and z).
    """

    radius: float
    elevation: float = 0.45
    fov_degrees: float = 38.0
    pivot: tuple[float, float, float] = (0.0, 0.0, 0.0)
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    yaw_start: float = math.pi / 3

    def __post_init__(self) -> None:
        check_positive("Framing", "radius", self.radius)
        for name in ("elevation", "fov_degrees", "yaw_start"):
            check_number("Framing", name, getattr(self, name))
        if not -math.pi / 2 < self.elevation < math.pi / 2:
            raise ValueError(f"Framing: argument 'elevation' expected radians in (-pi/2, pi/2), got {self.elevation!r}")
        if not 0 < self.fov_degrees < 180:
            raise ValueError(f"Framing: argument 'fov_degrees' expected degrees in (0, 180), got {self.fov_degrees!r}")

    @classmethod
    def around(cls, lo, hi, *, elevation: float = 0.45, fov_degrees: float = 38.0, margin: float = 1.05,
               yaw_start: float = math.pi / 3) -> Framing:
        """A framing that keeps the box ``lo..hi`` (world units, 3 numbers each) in view from
        every yaw: it circles the box's centre at the distance where the box's bounding
        sphere, times `margin`, fills the field of view."""
        try:
            lo, hi = (torch.tensor([float(x) for x in v], dtype=torch.float64) for v in (lo, hi))
        except (TypeError, ValueError):
            lo = hi = torch.zeros(0)
        if lo.shape != (3,) or hi.shape != (3,) or not bool((hi >= lo).all() & torch.isfinite(hi - lo).all()):
            raise ValueError(f"Framing.around: arguments 'lo', 'hi' expected 3 finite numbers each with hi >= lo, "
                             f"got {lo.tolist()}, {hi.tolist()}")
        check_number("Framing.around", "fov_degrees", fov_degrees)
        if not 0 < fov_degrees < 180:                   # before sin(fov / 2) divides
            raise ValueError("Framing.around: argument 'fov_degrees' expected degrees in (0, 180), "
                             f"got {fov_degrees!r}")
        check_positive("Framing.around", "margin", margin)
        center = tuple(((lo + hi) / 2).tolist())
        half_diagonal = max(float((hi - lo).norm()) / 2, 1e-9)
        radius = margin * half_diagonal / math.sin(math.radians(fov_degrees) / 2)
        return cls(radius, elevation, fov_degrees, center, center, yaw_start)

    def cameras(self, n: int, width: int, height: int | None = None) -> Cameras:
        """n cameras of one full turn (frame n would repeat frame 0), `width` x `height` pixels."""
        return orbit(n, radius=self.radius, width=width, height=width if height is None else height,
                     pitch=math.pi / 2 - self.elevation,
                     yaw_start=self.yaw_start, pivot=self.pivot, center=self.center, fov_degrees=self.fov_degrees,
                     convention="pigan")
