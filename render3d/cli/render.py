"""``render3d render``: multi-view outputs of a scene with the volume renderer, or of a trained
generator's subjects (``--checkpoint``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ._args import MAX_SEEDS, finite_float

OUTPUTS = ("grid", "video", "depth")

EPILOG = """outputs:
  grid    views.png: a row each of colour, depth (Turbo, near red), normals and opacity
  video   orbit.mp4 (orbit.gif without ffmpeg, or with --gif): one turn around the scene
  depth   depth.npz: depth [V,H,W] (distance along the ray, world units), alpha [V,H,W],
          normals [V,3,H,W] (world), cam2world [V,4,4] (OpenCV), intrinsics [V,3,3]
          (normalized); and depth.png, the depth maps colour-mapped

examples:
  render3d render grid video --scene torus
  render3d render depth --scene demo --views 8 --size 128 --out outputs/depth
  render3d render video --scene gyroid --frames 36 --gif
  render3d render --list-scenes
  render3d render grid video depth --checkpoint assets/volumegan_synth64.safetensors --seeds 0-3

With --checkpoint (a generator file, a checkpoint folder or a run folder) the subjects are the
generator's for the given seeds, seen from the training cameras' radius, FOV and mean pitch;
the grid has a row of views and a row of depth maps per seed, the video shows the seeds side
by side (in rows of up to 8), depth.npz holds depth and alpha [S,V,n,n] at the generator's
neural resolution.
"""


def add_render(sub) -> None:
    p = sub.add_parser(
        "render", help="multi-view outputs of a scene: a grid of views, an orbit video, depth maps",
        description="Render a scene with the volume renderer from cameras orbiting it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("outputs", nargs="*", metavar="OUTPUT", help=f"any of {', '.join(OUTPUTS)} (default: grid video)")
    p.add_argument("--scene", default=None, help="a built-in scene (default: demo; see --list-scenes)")
    p.add_argument("--list-scenes", action="store_true", help="list the scenes and exit")
    p.add_argument("--checkpoint", type=Path, default=None, help="render a trained generator instead of a scene")
    p.add_argument("--seeds", default=None,
                   help=f"with --checkpoint: subjects to render, {MAX_SEEDS} at most (default: 0-3)")
    p.add_argument("--truncation", type=finite_float, default=None,
                   help="with --checkpoint: truncation psi (default: 1)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: outputs/render/<scene>, or outputs/render/<run>_step-<N> for a "
                        "run's checkpoint, outputs/render/<name> for a generator file)")
    p.add_argument("--size", type=int, default=None,
                   help="pixels per side of the views (default: 256; a generator renders at its own size)")
    p.add_argument("--views", type=int, default=4, help="views for grid and depth (default: 4)")
    p.add_argument("--video-size", type=int, default=192, help="pixels per side of the video (default: 192)")
    p.add_argument("--frames", type=int, default=72, help="frames of the orbit video (default: 72)")
    p.add_argument("--fps", type=int, default=24, help="video frame rate (default: 24)")
    p.add_argument("--gif", action="store_true", help="write the video as a GIF instead of an MP4")
    p.add_argument("--impl", choices=["auto", "native", "torch"], default=None,
                   help="kernels a scene is rendered with (default: auto)")
    p.set_defaults(run=run_render)


def run_render(args) -> int:
    from render3d._checks import said_choices
    from render3d.training.checkpoint import generator_name
    from render3d.volume import scene_names

    from ._args import (UsageError, check_fps, check_positive, check_writable_dir, checkpoint_hint,
                        checkpoint_styles, load_checkpoint_generator, parse_seeds, report, split_scene_options)

    try:
        split_scene_options("render", args, {"size": 256, "impl": "auto"}, {"seeds": "0-3", "truncation": 1.0})
    except UsageError as error:
        return report(error)
    outputs = args.outputs or ["grid", "video"]
    if not args.list_scenes:
        try:
            unknown = [o for o in outputs if o not in OUTPUTS]
            if unknown:
                raise UsageError(f"render3d render: OUTPUT expected any of {said_choices(OUTPUTS)}, got {unknown[0]!r}"
                                 + checkpoint_hint(unknown[0]))
            check_positive("render", args, ("size", "views", "video_size", "frames", "fps"))
            check_fps("render", args.fps, "gif" if args.gif else "mp4")
            if args.video_size < 2:                     # H.264 frames are whole 2 x 2 blocks
                raise UsageError(f"render3d render: --video-size expected at least 2 pixels, got {args.video_size}")
            if args.checkpoint is None and args.scene not in scene_names():
                raise UsageError(f"render3d render: --scene expected one of {said_choices(scene_names())}, "
                                 f"got {args.scene!r}")
            if args.checkpoint is not None:
                seeds = parse_seeds("render", args.seeds)
                # loaded whole before the folder is made: a damaged file leaves nothing behind
                G, meta = load_checkpoint_generator("render", args.checkpoint)
                ws = checkpoint_styles("render", G, meta, seeds, args.truncation)
                out = args.out or Path("outputs/render") / generator_name(args.checkpoint)   # two runs' apart
            else:
                out = args.out or Path("outputs/render") / args.scene
            check_writable_dir("render", "--out", out)          # the folder is made once the rest is known good
            if args.checkpoint is not None:
                return _render_generator(args, outputs, out, seeds, G, meta, ws)
        except UsageError as error:
            return report(error)

    from render3d._files import npz_bytes, write_file
    from render3d.visualize import depth_to_rgb, make_grid, save_image, save_video, views_grid
    from render3d.volume import describe_scenes, make_scene, render_orbit, render_views

    if args.list_scenes:
        print(describe_scenes())
        return 0
    started = time.perf_counter()
    scene = make_scene(args.scene)
    written: list[Path] = []
    if "grid" in outputs or "depth" in outputs:
        cameras = scene.framing.cameras(args.views, args.size)
        views = render_views(scene, cameras, impl=args.impl, progress=True)
        if "grid" in outputs:
            written.append(save_image(views_grid(views), out / "views.png"))
        if "depth" in outputs:
            written.append(write_file(out / "depth.npz", npz_bytes(
                depth=views["depth"][:, 0].numpy(), alpha=views["alpha"][:, 0].numpy(),
                normals=views["normals"].numpy(), cam2world=cameras.cam2world.numpy(),
                intrinsics=cameras.intrinsics.numpy())))
            written.append(save_image(make_grid([depth_to_rgb(views["depth"], views["alpha"])]), out / "depth.png"))
    if "video" in outputs:
        frames = render_orbit(scene, scene.framing.cameras(args.frames, args.video_size), impl=args.impl,
                              progress=True)
        written.append(save_video(frames, out / ("orbit.gif" if args.gif else "orbit.mp4"), fps=args.fps))
    print(f"render3d render: scene {args.scene}: wrote {', '.join(str(p.resolve()) for p in written)}; "
          f"{time.perf_counter() - started:.1f} s")
    return 0


def _render_generator(args, outputs: list[str], out: Path, seeds: list[int], G, meta: dict, ws) -> int:
    """`render3d render --checkpoint`: grid, orbit video and depth of a generator's subjects
    (`G` and its metadata `meta` as `load_generator` returns them, `ws` the styles of `seeds`)."""
    import numpy as np

    from render3d._files import npz_bytes, write_file
    from render3d.generators.sampling import orbit_frames, render_views, view_cameras, views_grid_image
    from render3d.visualize import depth_to_rgb, make_grid, save_image, save_video

    started = time.perf_counter()
    view = meta["view"]
    written: list[Path] = []
    if "grid" in outputs or "depth" in outputs:
        cameras = view_cameras(view, args.views, G.resolutions[-1])
        views = render_views(G, ws, cameras, progress=True)
        if "grid" in outputs:
            written.append(save_image(views_grid_image(views), out / "views.png"))
        if "depth" in outputs:
            written.append(write_file(out / "depth.npz", npz_bytes(
                depth=views["depth"][:, :, 0].numpy(), alpha=views["alpha"][:, :, 0].numpy(), seeds=np.array(seeds),
                cam2world=cameras.cam2world.numpy(), intrinsics=cameras.intrinsics.numpy())))
            depth_rows = [depth_to_rgb(views["depth"][s], views["alpha"][s]) for s in range(len(seeds))]
            written.append(save_image(make_grid(depth_rows), out / "depth.png"))
    if "video" in outputs:
        frames = orbit_frames(G, ws, view, args.frames, G.resolutions[-1], progress=True)
        written.append(save_video(frames, out / ("orbit.gif" if args.gif else "orbit.mp4"), fps=args.fps))
    print(f"render3d render: {args.checkpoint} seeds {args.seeds}: wrote "
          f"{', '.join(str(p.resolve()) for p in written)}; {time.perf_counter() - started:.1f} s")
    return 0
