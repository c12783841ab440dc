"""``render3d export-mesh`` and ``render3d preview-mesh``: meshes out of scenes, and pictures
of mesh files without a GPU."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ._args import finite_float

EXPORT_EPILOG = """examples:
  render3d export-mesh --scene demo --out outputs/mesh/demo.glb
  render3d export-mesh --scene sphere --field sdf --resolution 512 --out sphere.ply
  render3d export-mesh --scene gyroid --target-faces 100000 --out gyroid.obj   # writes gyroid.mtl too
  render3d export-mesh --list-scenes
  render3d export-mesh --checkpoint assets/volumegan_synth64.safetensors --seed 3 --out seed3.glb
  render3d export-mesh --checkpoint runs/ffhq --colors-from field --out seed0.glb

Files are in world units (1 unit = 1 metre), right-handed, +Y up; GLB carries vertex colours
as COLOR_0, OBJ as "v x y z r g b" with an MTL, PLY as uchar red/green/blue/alpha.
"""

PREVIEW_EPILOG = """examples:
  render3d preview-mesh outputs/mesh/demo.glb
  render3d preview-mesh sphere.ply --out previews/ --frames 24 --size 192 --axes
"""


def _level(text: str):
    if text == "auto":
        return text
    try:
        return finite_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a finite number, got {text!r}") from None


# The cleaning options of export-mesh and their defaults (None: target_faces keeps all faces).
CLEAN_DEFAULTS = {"min_component": 0.01, "smooth": 10}
CLEAN_OPTIONS = ("min_component", "smooth", "target_faces")


# extract_mesh's and clean_mesh's arguments that export-mesh's options set
MESH_OPTIONS = {"resolution": "--resolution", "level": "--level", "min_component_share": "--min-component",
                "smooth_iterations": "--smooth", "target_faces": "--target-faces"}


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def _clean(args) -> dict | bool:
    """export-mesh's cleaning settings for extract_mesh, or False for --no-clean."""
    return False if args.no_clean else {"min_component_share": args.min_component, "smooth_iterations": args.smooth,
                                        "target_faces": args.target_faces}


def add_export_mesh(sub) -> None:
    p = sub.add_parser(
        "export-mesh", help="extract a coloured mesh from a scene: GLB, OBJ+MTL or PLY",
        description="Sample a scene's field on a grid, run marching cubes, clean the mesh (drop floaters, Taubin "
                    "smoothing, optional decimation), colour its vertices from the field and write it.",
        epilog=EXPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scene", default=None, help="a built-in scene (default: demo; see --list-scenes)")
    p.add_argument("--list-scenes", action="store_true", help="list the scenes and exit")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="mesh a trained generator's subject instead of a scene (generator file, checkpoint or run)")
    p.add_argument("--seed", type=int, default=None, help="with --checkpoint: the subject's seed (default: 0)")
    p.add_argument("--truncation", type=finite_float, default=None,
                   help="with --checkpoint: truncation psi (default: 1)")
    p.add_argument("--out", type=Path, default=None,
                   help="mesh file: .glb, .obj or .ply (default: outputs/mesh/<scene>.glb, or "
                        "<run>_step-<N>_seed<S>.glb for a run's checkpoint, <name>_seed<S>.glb for a generator file)")
    p.add_argument("--resolution", type=int, default=None,
                   help="grid samples along the box's longest side (default: 256; 128 with --checkpoint)")
    p.add_argument("--level", type=_level, default="auto",
                   help="iso-level, or 'auto' (density: Otsu's threshold; sdf: 0) (default: auto)")
    p.add_argument("--field", choices=["density", "sdf"], default="density",
                   help="mesh the density (what generators have) or the signed distance (default: density)")
    p.add_argument("--no-clean", action="store_true", help="keep the raw marching-cubes mesh")
    p.add_argument("--min-component", type=float, default=None,
                   help="drop pieces with less than this share of the faces "
                        f"(default: {CLEAN_DEFAULTS['min_component']})")
    p.add_argument("--smooth", type=int, default=None,
                   help=f"Taubin smoothing iterations (default: {CLEAN_DEFAULTS['smooth']})")
    p.add_argument("--target-faces", type=int, default=None,
                   help="decimate to about this many faces (default: keep all)")
    p.add_argument("--no-color", action="store_true", help="leave the vertices uncoloured")
    p.add_argument("--colors-from", choices=["renders", "field"], default=None,
                   help="with --checkpoint: 'renders' projects the generator's pictures from 36 views around the "
                        "subject onto the vertices they see, so the mesh looks like the renders; 'field' takes "
                        "its colour head at each vertex (patchier, more saturated) (default: renders)")
    p.set_defaults(run=run_export_mesh)


def run_export_mesh(args) -> int:
    from render3d._checks import said_choices
    from render3d.generators.sampling import SEED_LIMIT
    from render3d.mesh import export_mesh, extract_mesh, mesh_summary
    from render3d.mesh.export import check_writable, mesh_files, mesh_format
    from render3d.training.checkpoint import generator_name
    from render3d.volume import describe_scenes, make_scene, scene_names

    from ._args import (UsageError, checkpoint_styles, load_checkpoint_generator, report, restated,
                        split_scene_options)

    if args.list_scenes:
        print(describe_scenes())
        return 0
    try:
        split_scene_options("export-mesh", args, {}, {"seed": 0, "truncation": 1.0})
    except UsageError as error:
        return report(error)
    if args.resolution is None:
        args.resolution = 128 if args.checkpoint is not None else 256
    try:
        if args.resolution < 2:
            raise UsageError(f"render3d export-mesh: --resolution expected an int >= 2, got {args.resolution}")
        if args.target_faces is not None and args.target_faces < 4:
            raise UsageError(f"render3d export-mesh: --target-faces expected an int >= 4, got {args.target_faces}")
        cleaning = [option for option in CLEAN_OPTIONS if getattr(args, option) is not None]
        if args.no_clean and cleaning:
            raise UsageError(f"render3d export-mesh: {', '.join(_flag(o) for o in cleaning)} "
                             f"{'applies' if len(cleaning) == 1 else 'apply'} to cleaning, not to --no-clean")
        for option, default in CLEAN_DEFAULTS.items():
            if getattr(args, option) is None:
                setattr(args, option, default)
        if not 0 <= args.min_component <= 1 or args.smooth < 0:
            raise UsageError("render3d export-mesh: --min-component expected a share in [0, 1] and --smooth an int "
                             f">= 0, got {args.min_component} and {args.smooth}")
        if args.colors_from is not None and (args.checkpoint is None or args.no_color):
            raise UsageError("render3d export-mesh: --colors-from expected --checkpoint without --no-color, got "
                             + ("--no-color" if args.no_color else f"the scene {args.scene!r}, coloured by its field"))
        if args.checkpoint is not None:                 # what a generator takes, before folders are made
            if args.field == "sdf":
                raise UsageError("render3d export-mesh: --field sdf expected a scene with a signed distance, got a "
                                 "generator, which has a density")
            if not 0 <= args.seed < SEED_LIMIT:
                raise UsageError(f"render3d export-mesh: --seed expected an int in 0..2**64-1, got {args.seed}")
            # loaded whole before the folder is made: a damaged file leaves nothing behind
            G, meta = load_checkpoint_generator("export-mesh", args.checkpoint)
            ws = checkpoint_styles("export-mesh", G, meta, [args.seed], args.truncation)
            out = args.out or Path("outputs/mesh") / f"{generator_name(args.checkpoint)}_seed{args.seed}.glb"
        else:
            out = args.out or Path("outputs/mesh") / f"{args.scene}.glb"
        for file in mesh_files(*mesh_format("render3d export-mesh", out, name="--out")):
            check_writable("render3d export-mesh", "--out", file)
        if args.checkpoint is not None:
            return _export_generator_mesh(args, out, G, meta, ws)
        if args.scene not in scene_names():
            raise UsageError(f"render3d export-mesh: --scene expected one of {said_choices(scene_names())}, "
                             f"got {args.scene!r}")
        scene = make_scene(args.scene)
        if args.field == "sdf" and not callable(getattr(scene.field, "sdf", None)):
            raise UsageError(f"render3d export-mesh: --field sdf expected a scene with a signed distance, "
                             f"got {args.scene!r}, which has none")
    except (UsageError, ValueError) as error:
        return report(error)
    started = time.perf_counter()
    field_fn = scene.field.sdf if args.field == "sdf" else scene.field.density
    try:
        mesh = extract_mesh(field_fn, scene.bbox, args.resolution, args.level, field_type=args.field,
                            color_fn=None if args.no_color else scene.field.color, clean=_clean(args), progress=True)
    except ValueError as error:  # no surface at that level, a grid too big, NaN in the field
        return report(restated("export-mesh", error, MESH_OPTIONS))
    written = export_mesh(mesh, out)
    info = mesh.metadata["render3d"]
    level = f"level {info['level']:.4g}" + (" (auto)" if info["level_mode"] == "auto" else "")
    paths = " + ".join(str(p.resolve()) for p in written)
    print(f"render3d export-mesh: wrote {paths}: {mesh_summary(mesh)}; {level}; "
          f"{time.perf_counter() - started:.1f} s")
    return 0


def _export_generator_mesh(args, out: Path, G, meta: dict, ws) -> int:
    """`render3d export-mesh --checkpoint`: one subject of a trained generator (`G` and its
    metadata `meta` as `load_generator` returns them, `ws` the styles of `args.seed`)."""
    from render3d.generators.sampling import extract_generator_mesh
    from render3d.mesh import NoSurfaceError, export_mesh, mesh_summary

    from ._args import UsageError, report, restated

    started = time.perf_counter()
    try:
        mesh = extract_generator_mesh(G, ws, resolution=args.resolution, level=args.level, clean=_clean(args),
                                      color=None if args.no_color else args.colors_from or "renders",
                                      view=meta["view"], progress=True)
    except NoSurfaceError as error:
        if not error.auto:                               # --level outside the density's range: say so
            return report(restated("export-mesh", error, MESH_OPTIONS))
        return report(UsageError(f"render3d export-mesh: seed {args.seed} of --checkpoint has no surface: its density "
                                 f"{error.field_said()} inside the generator's box (an empty subject; did its "
                                 f"training collapse?)"))
    except ValueError as error:  # a grid too big
        return report(restated("export-mesh", error, MESH_OPTIONS))
    written = export_mesh(mesh, out)
    level = mesh.metadata["render3d"]["level"]
    colors = f", colours from its {mesh.metadata['render3d']['colors']}" if mesh.metadata["render3d"]["colors"] else ""
    print(f"render3d export-mesh: wrote {' + '.join(str(p.resolve()) for p in written)}: {mesh_summary(mesh)}; "
          f"seed {args.seed}, level {level:.4g}{colors}; {time.perf_counter() - started:.1f} s")
    return 0


def add_preview_mesh(sub) -> None:
    p = sub.add_parser(
        "preview-mesh", help="pictures of a mesh file without a GPU: a grid of views and a turntable video",
        description="Render a mesh file (GLB, OBJ, PLY, ...) with open3d's ray casting, shaded by its normals and "
                    "vertex colours: a PNG grid (colour, depth, normals) and a turntable MP4 (GIF without ffmpeg).",
        epilog=PREVIEW_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("mesh", type=Path, help="the mesh file")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: the mesh's folder)")
    p.add_argument("--size", type=int, default=256, help="pixels per side (default: 256)")
    p.add_argument("--views", type=int, default=4, help="views in the grid (default: 4)")
    p.add_argument("--frames", type=int, default=48, help="frames of the turntable (default: 48)")
    p.add_argument("--fps", type=int, default=24, help="video frame rate (default: 24)")
    p.add_argument("--format", choices=["mp4", "gif"], default="mp4", help="turntable format (default: mp4)")
    p.add_argument("--axes", action="store_true", help="draw the world axes (X red, Y green, Z blue) at the origin")
    p.add_argument("--backend", choices=["open3d", "nvdiffrast"], default="open3d",
                   help="open3d ray casting (CPU), or nvdiffrast (CUDA, if installed) (default: open3d)")
    p.set_defaults(run=run_preview_mesh)


def run_preview_mesh(args) -> int:
    from render3d.mesh import load_mesh

    from ._args import UsageError, check_fps, check_positive, check_writable_dir, report, restated, said_as

    out = args.out or args.mesh.parent
    try:
        check_positive("preview-mesh", args, ("size", "views", "frames", "fps"))
        check_fps("preview-mesh", args.fps, args.format)
        if args.size < 2:                               # the turntable's H.264 frames are whole 2 x 2 blocks
            raise UsageError(f"render3d preview-mesh: --size expected at least 2 pixels, got {args.size}")
        if not args.mesh.is_file():
            raise UsageError(f"render3d preview-mesh: MESH expected an existing mesh file, got {args.mesh}")
        started = time.perf_counter()
        with said_as("preview-mesh", {"path": "MESH"}):     # read before the folder is made
            mesh = load_mesh(args.mesh)
        check_writable_dir("preview-mesh", "--out", out)
    except UsageError as error:
        return report(error)

    import torch

    from render3d.cameras import Framing
    from render3d.mesh import draw_axis_labels, mesh_summary, render_mesh, with_axes
    from render3d.visualize import save_image, save_video, views_grid

    shown, bounds, length = mesh, mesh.bounds, 0.0
    if args.axes:
        length = 1.25 * float(abs(mesh.bounds).max()) or 1.0     # a mesh all at the origin gets unit axes
        shown = with_axes(mesh, length)
        bounds = [[min(b, 0.0) for b in mesh.bounds[0]], [max(b, length) for b in mesh.bounds[1]]]
    framing = Framing.around(*bounds)

    def render(n: int) -> dict:
        cameras = framing.cameras(n, args.size)
        views = render_mesh(shown, cameras, backend=args.backend, progress=True)
        if args.axes:
            views["image"] = torch.stack([draw_axis_labels(image, cameras[i], length)
                                          for i, image in enumerate(views["image"])])
        return views

    try:
        views = render(args.views)
    except ValueError as error:  # nvdiffrast asked for but missing
        return report(restated("preview-mesh", error, {"backend": "--backend"}))
    written = [save_image(views_grid(views, rows=("image", "depth", "normals")), out / f"{args.mesh.stem}_views.png"),
               save_video(render(args.frames)["image"], out / f"{args.mesh.stem}_turntable.{args.format}",
                          fps=args.fps)]
    print(f"render3d preview-mesh: {args.mesh.resolve()}: {mesh_summary(mesh)}; wrote "
          f"{', '.join(str(p.resolve()) for p in written)}; {time.perf_counter() - started:.1f} s")
    return 0
