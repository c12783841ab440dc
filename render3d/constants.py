"""Precision constants of the renderer, named once.

Each constant says where it matters and what the peer libraries use, so that results can be
compared like for like. `ANCHOR_COMPATIBLE` gathers the settings under which our kernels
reproduce a peer's numbers; pass its entries where a function takes the constant as an
argument.
"""

from __future__ import annotations

# --- Volume rendering ---------------------------------------------------------------
# Expected depth is sum(w * t) / max(opacity, DEPTH_OPACITY_EPS), then clamped to the ray's
# sample range, so an empty ray gets a finite depth (its far end's clamp) instead of 0/0.
DEPTH_OPACITY_EPS = 1e-10
# Transmittance below which a ray is considered finished when marching with an occupancy
# grid (nerfacc's early_stop_eps, instant-ngp's training cut-off).
TRANSMITTANCE_EPS = 1e-4
# Added to every coarse weight before inverse-CDF sampling so that a ray with all-zero
# weights still samples uniformly (NeRF, EG3D and VolumeGAN use 1e-5).
PDF_EPS = 1e-5
# EG3D's weight smoothing adds this after max-pool(2) + avg-pool(2).
EG3D_WEIGHT_SMOOTHING_PAD = 0.01

# --- Occupancy grid -----------------------------------------------------------------
# Cells whose decayed density stays above min(mean, OCC_THRESHOLD) are occupied.
OCC_THRESHOLD = 0.01
# EMA decay of the occupancy values between updates.
OCC_EMA_DECAY = 0.95

# --- Gaussian splatting (used by render3d.splat) ----------------------------------------
ALPHA_MAX = 0.999         # alpha clamp (3DGS: 0.99)
ALPHA_MIN = 1.0 / 255.0   # splats fainter than this are skipped
SPLAT_TRANSMITTANCE_EPS = 1e-4  # stop blending once T would fall below this
NEAR_PLANE = 0.01         # Gaussians closer than this are culled (3DGS: 0.2)
BLUR_2D = 0.3             # screen-space blur added to every 2D covariance

# Settings under which our kernels reproduce a peer's numbers.
ANCHOR_COMPATIBLE = {
    "nerfacc": {"transmittance_eps": 1e-4},
    "gsplat": {"alpha_max": 0.999, "alpha_min": 1.0 / 255.0, "transmittance_eps": 1e-4, "near_plane": 0.01,
               "blur_2d": 0.3},
    "inria": {"alpha_max": 0.99, "alpha_min": 1.0 / 255.0, "transmittance_eps": 1e-4, "near_plane": 0.2,
              "blur_2d": 0.3},
}
