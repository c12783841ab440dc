"""The main job on the built-in default: the small VolumeGAN trained by us on the synthetic
objects dataset (assets/volumegan_synth64.safetensors; how it was trained:
bench/results/demo_checkpoint.json). For a few seeds it writes

    orbit.mp4      one turn around each subject, side by side (rows of up to 8)
    views.png      per seed a row of views around the subject and a row of their depth maps
    seed<N>.glb    each subject's coloured mesh (marching cubes on the generator's density,
                   vertex colours from its colour), world units, +Y up
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from render3d import DEMO_CHECKPOINT

from ._args import MAX_SEEDS, finite_float


def write_demo(out: Path, G, meta: dict, seeds, ws, *, views: int = 6, frames: int = 48, fps: int = 24,
               mesh_resolution: int = 96, progress: bool = False) -> dict[str, Path]:
    """Write the demo outputs for `seeds` into `out`; returns {label: path}. `G` and `meta`
    as `load_generator` returns them, `ws` the styles of `seeds`; `progress`: progress bars
    for the video, the views and the meshes. A subject without a surface gets no mesh (said
    on stderr); its views are written like the others'."""
    from tqdm import tqdm

    from render3d.generators.sampling import (extract_generator_mesh, orbit_frames, render_views, view_cameras,
                                              views_grid_image)
    from render3d.mesh import NoSurfaceError, export_mesh
    from render3d.visualize import save_image, save_video

    out.mkdir(parents=True, exist_ok=True)
    size = G.resolutions[-1]
    written: dict[str, Path] = {}
    written["video"] = save_video(orbit_frames(G, ws, meta["view"], frames, size, progress=progress),
                                  out / "orbit.mp4", fps=fps)
    grid = views_grid_image(render_views(G, ws, view_cameras(meta["view"], views, size), progress=progress))
    written["grid"] = save_image(grid, out / "views.png")
    for i, seed in enumerate(tqdm(seeds, desc="meshes", unit="mesh", disable=not progress)):
        try:
            mesh = extract_generator_mesh(G, ws[i:i + 1], resolution=mesh_resolution, view=meta["view"])
        except NoSurfaceError as error:                 # an empty subject: its pictures are written, no mesh
            tqdm.write(f"render3d demo: seed {seed} has no surface, no mesh written: its density "
                       f"{error.field_said()} inside the generator's box", file=sys.stderr)
            continue
        written[f"mesh {seed}"] = export_mesh(mesh, out / f"seed{seed}.glb")[0]
    return written


def add_demo(sub) -> None:
    import argparse

    p = sub.add_parser(
        "demo", help="the shipped VolumeGAN checkpoint: orbit video, views with depth, coloured meshes",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  render3d demo\n  render3d demo --out /tmp/demo --seeds 0-7 --frames 24\n"
               "  render3d demo --checkpoint runs/synth64     # the newest checkpoint of a run of yours",
    )
    p.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder (default: outputs/demo)")
    p.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT,
                   help="generator file, checkpoint or run folder (default: the shipped demo checkpoint)")
    p.add_argument("--seeds", default="0-3", help=f"subjects, {MAX_SEEDS} at most (default: 0-3)")
    p.add_argument("--views", type=int, default=6, help="views per seed in the grid (default: 6)")
    p.add_argument("--frames", type=int, default=48, help="frames of the orbit video (default: 48)")
    p.add_argument("--fps", type=int, default=24, help="video frame rate (default: 24)")
    p.add_argument("--mesh-resolution", type=int, default=96, help="marching-cubes grid per side (default: 96)")
    p.add_argument("--truncation", type=finite_float, default=0.7, help="truncation psi (default: 0.7)")
    p.set_defaults(run=_run)


def _run(args) -> int:
    from ._args import (UsageError, check_fps, check_positive, check_writable_dir, checkpoint_styles,
                        load_checkpoint_generator, parse_seeds, report)

    try:
        check_positive("demo", args, ("views", "frames", "fps"))
        check_fps("demo", args.fps, "mp4")
        if args.mesh_resolution < 8:
            raise UsageError(f"render3d demo: --mesh-resolution expected an int >= 8, got {args.mesh_resolution}")
        seeds = parse_seeds("demo", args.seeds)
        if not (args.checkpoint.is_file() or args.checkpoint.is_dir()):
            raise UsageError(f"render3d demo: --checkpoint expected a generator file, checkpoint or run folder, got "
                             f"{args.checkpoint}, which does not exist (the demo checkpoint ships in assets/; "
                             f"restore it with `git checkout -- assets/`)")
        # loaded whole, and its styles taken, before the folder is made: nothing is left behind
        G, meta = load_checkpoint_generator("demo", args.checkpoint)
        ws = checkpoint_styles("demo", G, meta, seeds, args.truncation)
        check_writable_dir("demo", "--out", args.out)
    except UsageError as error:
        return report(error)
    started = time.perf_counter()
    written = write_demo(args.out, G, meta, seeds, ws, views=args.views, frames=args.frames, fps=args.fps,
                         mesh_resolution=args.mesh_resolution, progress=True)
    print(f"render3d demo: done in {time.perf_counter() - started:.0f} s")
    for label, path in written.items():
        print(f"  {label:<7} {path.resolve()}")
    return 0
