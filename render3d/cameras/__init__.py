"""Pinhole cameras: one convention (OpenCV cam2world, normalized intrinsics, world +Y up),
converters to EG3D labels, OpenGL / nerfstudio, 3DGS and yaw/pitch, rays, pose samplers and
video trajectories, and orbit framings for looking at an object."""

from render3d.cameras.camera import Cameras, intrinsics_from_fov, intrinsics_from_pixels, pixel_grid
from render3d.cameras.framing import Framing
from render3d.cameras.poses import (POSE_DISTRIBUTIONS, DatasetPoseSampler, orbit, pose_prior_problem,
                                    sample_yaw_pitch, spiral, yaw_sweep)

__all__ = [
    "POSE_DISTRIBUTIONS",
    "Cameras",
    "DatasetPoseSampler",
    "Framing",
    "intrinsics_from_fov",
    "intrinsics_from_pixels",
    "orbit",
    "pixel_grid",
    "pose_prior_problem",
    "sample_yaw_pitch",
    "spiral",
    "yaw_sweep",
]
