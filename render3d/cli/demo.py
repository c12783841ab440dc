"""The main job until a trained generator ships: render the built-in analytic scene (a
coloured torus and a sphere on a checkered floor, inside [-1, 1]^3) with the volume renderer.

Writes a PNG grid of views (colour, depth, normals, opacity; coarse + importance sampling)
and an orbit video (occupancy-grid marching) to the output folder.
"""

from __future__ import annotations

import time
from pathlib import Path


def run_demo(out: Path, *, size: int = 256, views: int = 4, video_size: int = 192, frames: int = 72, fps: int = 24,
             impl: str = "auto") -> dict[str, Path]:
    from render3d.visualize import save_image, save_video, views_grid
    from render3d.volume import make_scene, render_orbit, render_views

    out.mkdir(parents=True, exist_ok=True)
    scene = make_scene("demo")
    written: dict[str, Path] = {}
    rendered = render_views(scene, scene.framing.cameras(views, size), impl=impl, progress=True)
    written["grid"] = save_image(views_grid(rendered), out / "views.png")
    video = render_orbit(scene, scene.framing.cameras(frames, video_size), impl=impl, progress=True)
    written["video"] = save_video(video, out / "orbit.mp4", fps=fps)
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
    from ._args import UsageError, check_positive, check_writable_dir, report

    try:
        check_positive("demo", args, ("size", "views", "video_size", "frames", "fps"))
        check_writable_dir("demo", "--out", args.out)
    except UsageError as error:
        return report(error)
    started = time.perf_counter()
    written = run_demo(args.out, size=args.size, views=args.views, video_size=args.video_size, frames=args.frames,
                       fps=args.fps, impl=args.impl)
    print(f"render3d demo: done in {time.perf_counter() - started:.0f} s")
    for kind, path in written.items():
        print(f"  {kind:<5} {path.resolve()}")
    return 0
