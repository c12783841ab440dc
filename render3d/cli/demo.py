"""The main job until a trained generator ships: render the built-in analytic scene (a
coloured torus and a sphere on a checkered floor, inside [-1, 1]^3) with the volume renderer.

Writes a PNG grid of views (colour, depth, normals, opacity; coarse + importance sampling)
and an orbit video (occupancy-grid marching) to the output folder.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from tqdm import tqdm

BOX = ([-1.0, -1.0, -1.0], [1.0, 1.0, 1.0])
BACKGROUND = (0.96, 0.96, 0.97)
ELEVATION = 0.45  # radians above the horizon
RADIUS, FOV = 3.6, 38.0
PIVOT = (0.0, -0.12, 0.0)  # the scene sits low in its box: aim a little below the centre


def _cameras(n: int, size: int):
    from render3d.cameras import orbit

    # pi-GAN's convention takes pitch as the polar angle from +y: pi/2 - elevation.
    return orbit(n, radius=RADIUS, width=size, height=size, pitch=math.pi / 2 - ELEVATION, yaw_start=math.pi / 3,
                 pivot=PIVOT, fov_degrees=FOV, convention="pigan")


def run_demo(out: Path, *, size: int = 256, views: int = 4, video_size: int = 192, frames: int = 72, fps: int = 24,
             impl: str = "auto") -> dict[str, Path]:
    from render3d.rays import OccupancyGrid
    from render3d.visualize import depth_to_rgb, make_grid, normals_to_rgb, save_image, save_video
    from render3d.volume import VolumeRenderer, demo_scene

    out.mkdir(parents=True, exist_ok=True)
    scene = demo_scene()
    written: dict[str, Path] = {}

    renderer = VolumeRenderer(n_coarse=64, n_fine=64, near=0.1, far=10.0, bbox=BOX, background=BACKGROUND,
                              chunk=1 << 14, impl=impl).eval()
    cameras = _cameras(views, size)
    rendered = []
    with torch.no_grad():
        for i in tqdm(range(views), desc="views", unit="view"):
            rendered.append(renderer(scene, cameras[i]))
    image = torch.cat([r["image"] for r in rendered])
    alpha = torch.cat([r["alpha"] for r in rendered])
    grid = make_grid([
        image,
        depth_to_rgb(torch.cat([r["depth"] for r in rendered]), alpha),
        normals_to_rgb(torch.cat([r["normals"] for r in rendered]), alpha),
        alpha.expand(-1, 3, -1, -1),
    ])
    written["grid"] = save_image(grid, out / "views.png")

    occupancy = OccupancyGrid(BOX, resolution=128)
    occupancy.build(scene.density, step_size=4e-3, generator=torch.Generator().manual_seed(0))
    marcher = VolumeRenderer(near=0.1, far=10.0, bbox=BOX, background=BACKGROUND, occupancy_grid=occupancy,
                             step_size=4e-3, chunk=1 << 14, impl=impl).eval()
    orbit_cameras = _cameras(frames, video_size)
    video = []
    with torch.no_grad():
        for i in tqdm(range(frames), desc="orbit", unit="frame"):
            video.append(marcher(scene, orbit_cameras[i], normals=False)["image"])
    written["video"] = save_video(torch.cat(video), out / "orbit.mp4", fps=fps)
    return written


def add_demo(sub) -> None:
    import argparse

    p = sub.add_parser(
        "demo", help="render the built-in scene: a grid of views and an orbit video",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  render3d demo\n  render3d demo --out /tmp/demo --size 128 --frames 24",
    )
    p.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder (default: outputs/demo)")
    p.add_argument("--size", type=int, default=256, help="pixels per side of each view in the grid (default: 256)")
    p.add_argument("--views", type=int, default=4, help="views in the grid (default: 4)")
    p.add_argument("--video-size", type=int, default=192, help="pixels per side of the video (default: 192)")
    p.add_argument("--frames", type=int, default=72, help="frames of the orbit video (default: 72)")
    p.add_argument("--fps", type=int, default=24, help="video frame rate (default: 24)")
    p.add_argument("--impl", choices=["auto", "native", "torch"], default="auto", help="kernels to use (default: auto)")
    p.set_defaults(run=_run)


def _run(args) -> int:
    import sys

    for name in ("size", "views", "video_size", "frames", "fps"):
        if getattr(args, name) <= 0:
            print(f"render3d demo: --{name.replace('_', '-')} expected a positive number, got {getattr(args, name)}",
                  file=sys.stderr)
            return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / ".write-test").touch()
        (args.out / ".write-test").unlink()
    except OSError as exc:
        print(f"render3d demo: cannot write to --out {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    written = run_demo(args.out, size=args.size, views=args.views, video_size=args.video_size, frames=args.frames,
                       fps=args.fps, impl=args.impl)
    print(f"render3d demo: done in {time.perf_counter() - started:.0f} s")
    for kind, path in written.items():
        print(f"  {kind:<5} {path.resolve()}")
    return 0
