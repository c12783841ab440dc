"""`render3d dataset check | synth`: validate a posed-image dataset, or write a synthetic one
with ground-truth geometry."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

CHECK_EPILOG = """examples:
  render3d dataset check data/ffhq.zip
  render3d dataset check data/my_capture/transforms.json --out outputs/check
exit status: 0 when every entry is well formed, 1 when any is malformed (each is listed), 2 on
bad arguments."""


def _writable(prog: str, folder: Path, option: str = "--out") -> bool:
    """`check_writable_dir` for the commands that print why and return False instead of
    raising (`prog` is "render3d <command>")."""
    from ._args import UsageError, check_writable_dir, report

    try:
        check_writable_dir(prog.removeprefix("render3d "), option, folder)
    except UsageError as error:
        report(error)
        return False
    return True


def add_check(sub) -> None:
    p = sub.add_parser(
        "check", help="validate a dataset: every malformed entry, counts, sizes, pose statistics, camera picture",
        description="Validate an EG3D dataset (a folder or zip with dataset.json) or a nerfstudio transforms.json. "
                    "Every malformed entry (missing file, wrong label length, non-rigid rotation, NaN, bad "
                    "intrinsics, unlabelled image, wrong size, damaged or truncated image) is listed with its index "
                    "and file name. Writes cameras.png (frustums, yaw/pitch histogram) and report.json to --out.",
        epilog=CHECK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", type=Path, help="dataset folder or zip (EG3D), or transforms.json or its folder")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for cameras.png and report.json (default: outputs/dataset-check/<name>)")
    p.set_defaults(run=run_check)


def run_check(args) -> int:
    from render3d._files import write_file
    from render3d.datasets.check import check_dataset, histogram_lines
    from render3d.visualize import draw_cameras

    from ._args import UsageError, check_writable_dir, remove_made, restated
    from ._args import report as refuse               # `report` is the dataset's report here

    prog = "render3d dataset check"
    if not args.path.exists():
        print(f"{prog}: PATH {args.path} does not exist", file=sys.stderr)
        return 2
    out = args.out or Path("outputs/dataset-check") / args.path.resolve().stem
    try:                                                # before the long check: writable?
        made = check_writable_dir("dataset check", "--out", out)
    except UsageError as error:
        return refuse(error)
    try:
        report = check_dataset(args.path, progress=True)
    except ValueError as exc:                           # not a dataset: leave no empty --out behind
        remove_made(made)
        return refuse(restated("dataset check", exc, {"path": "PATH"}))
    summary = report.to_dict()
    print(f"{report.path} ({report.format}): {report.entries} entries, {summary['well_formed']} well formed, "
          f"{len(report.problems)} problem{'' if len(report.problems) == 1 else 's'}")
    sizes = ", ".join(f"{size} ({n})" for size, n in summary["image_sizes"].items()) or "none readable"
    print(f"image sizes: {sizes}")
    stats = summary["statistics"]
    if stats:
        yaw, pitch = (t.numpy() for t in report.cameras.to_yaw_pitch()[:2])
        print("yaw (EG3D convention: 90 is frontal, on +z), degrees:")
        print("\n".join(histogram_lines(yaw * 180 / math.pi, -180, 180)))
        print("pitch (90 is level, 0 looks down from +y), degrees:")
        print("\n".join(histogram_lines(pitch * 180 / math.pi, 0, 180)))
        for key in ("radius", "fx", "fy", "cx", "cy"):
            s = stats[key]
            print(f"{key:<7} min {s['min']:.4g}  median {s['median']:.4g}  max {s['max']:.4g}  std {s['std']:.3g}")
        print("look-at (point nearest every optical axis): " + ", ".join(f"{v:.4g}" for v in stats["look_at"]))
        picture = draw_cameras(report.cameras, out / "cameras.png", yaw=yaw, pitch=pitch)
    for problem in report.problems:
        print(f"malformed: {problem}")
    write_file(out / "report.json", json.dumps(summary, indent=1).encode())
    if stats:
        print(f"  cameras {picture.resolve()}")
    print(f"  report  {(out / 'report.json').resolve()}")
    return 1 if report.problems else 0


SYNTH_EPILOG = """examples:
  render3d dataset synth outputs/synth                               16 objects x 8 views, 64 px
  render3d dataset synth outputs/synth-big --subjects 400 --views 8   3200 images
  render3d dataset synth outputs/scenes --kind scenes --resolution 128 --pitch-mean 55
angles are degrees in EG3D's convention: yaw 90 looks from +z, pitch 90 is level, 0 looks down
from +y. Unset pose options take the kind's defaults (objects: yaw 90 +- 180 uniform, pitch
72.8 +- 17.2, radius 2.4, fov 32; scenes: pitch 58.5 +- 11.5, radius 3.6, fov 40, pivot y 0.15).
Writes dataset.json, images/, geometry/ (depth, normals, mask, object ids), meshes/ and
ground_truth.json; see `python -c "import render3d.datasets.synth as s; help(s)"`."""


def add_synth(sub) -> None:
    p = sub.add_parser(
        "synth", help="write a synthetic posed dataset with ground-truth depth, normals, masks, meshes and boxes",
        description="Render procedural objects (or scenes of objects on a floor) with open3d's ray casting from "
                    "random cameras, in EG3D's dataset format plus ground-truth geometry. Deterministic in --seed.",
        epilog=SYNTH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", type=Path, help="output folder (created)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a synthetic dataset already in OUT (only one that render3d wrote)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="single-threaded worker processes; the files do not depend on it (default: CPU count)")
    p.add_argument("--kind", choices=["objects", "scenes"], default="objects", help="what to render (default: objects)")
    p.add_argument("--subjects", type=int, default=16, help="how many objects or scenes (default: 16)")
    p.add_argument("--views", type=int, default=8, help="images of each subject (default: 8)")
    p.add_argument("--resolution", type=int, default=64, help="pixels per side, 32 to 256 (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--supersample", type=int, default=3, help="odd rays per pixel side, anti-aliasing (default: 3)")
    p.add_argument("--mesh-resolution", type=int, default=96,
                   help="marching-cubes grid points per side of each object, 8 or more (default: 96)")
    p.add_argument("--objects-per-scene", type=int, nargs=2, default=(2, 4), metavar=("MIN", "MAX"),
                   help="objects in each scene (default: 2 4)")
    poses = p.add_argument_group("camera poses (default: the kind's)")
    for name, what in (("yaw-mean", "degrees"), ("yaw-spread", "degrees"), ("pitch-mean", "degrees"),
                       ("pitch-spread", "degrees"), ("radius", "world units"), ("fov", "vertical, degrees")):
        poses.add_argument(f"--{name}", type=float, default=None, help=what)
    poses.add_argument("--distribution", choices=["uniform", "gaussian"], default=None,
                       help="uniform in mean +- spread, or Gaussian with std spread")
    p.set_defaults(run=run_synth)


# the pose options given in degrees (PoseDistribution holds radians)
ANGLES = ("yaw_mean", "yaw_spread", "pitch_mean", "pitch_spread")


def _synth_config(args):
    import dataclasses
    import types

    from render3d.cameras import pose_prior_problem
    from render3d.datasets.synth import DEFAULT_POSES, SynthConfig

    defaults = DEFAULT_POSES[args.kind]
    given = {"radius": args.radius, "distribution": args.distribution, "fov_degrees": args.fov}
    given = {name: value for name, value in given.items() if value is not None}
    angles = {name: getattr(args, name) for name in ANGLES if getattr(args, name) is not None}
    # checked as typed, in degrees (PoseDistribution checks, and says, radians)
    typed = dataclasses.asdict(defaults) | {name: math.degrees(getattr(defaults, name)) for name in ANGLES}
    problem = pose_prior_problem(types.SimpleNamespace(**typed | given | angles), unit="degrees")
    if problem is not None:
        name, expected, value = problem
        raise ValueError(f"PoseDistribution: argument '{name}' expected {expected}, got {value!r}")
    poses = dataclasses.replace(defaults, **given, **{name: math.radians(value) for name, value in angles.items()})
    return SynthConfig(kind=args.kind, subjects=args.subjects, views=args.views, resolution=args.resolution,
                       seed=args.seed, supersample=args.supersample, mesh_resolution=args.mesh_resolution,
                       objects_per_scene=tuple(args.objects_per_scene), poses=poses)


def run_synth(args) -> int:
    from render3d.datasets.synth import generate_synthetic

    from ._args import report, restated

    prog = "render3d dataset synth"
    # SynthConfig's and PoseDistribution's fields, and generate_synthetic's arguments, as options
    options = {name: "--" + name.replace("_", "-") for name in vars(args)} | {"fov_degrees": "--fov", "out": "OUT"}
    try:
        config = _synth_config(args)
    except ValueError as exc:
        return report(restated("dataset synth", exc, options))
    if not _writable(prog, args.out, "OUT"):
        return 2
    try:
        summary = generate_synthetic(args.out, config, overwrite=args.overwrite, workers=args.workers)
    except ValueError as exc:
        return report(restated("dataset synth", exc, options))
    rate = summary["images"] / summary["seconds"]
    print(f"{prog}: {summary['images']} images of {summary['objects']} meshes in {summary['seconds']:.0f} s "
          f"({rate:.1f} images/s)")
    for name in ("dataset.json", "ground_truth.json", "images", "geometry", "meshes"):
        print(f"  {name:<17} {(args.out / name).resolve()}")
    return 0


def add_dataset(sub) -> None:
    p = sub.add_parser("dataset", help="check posed-image datasets; write a synthetic one with ground truth",
                       description="Posed-image datasets.", formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  render3d dataset check data/ffhq.zip\n"
                              "  render3d dataset synth outputs/synth --subjects 100 --views 8")
    inner = p.add_subparsers(dest="dataset_command", metavar="COMMAND")
    add_check(inner)
    add_synth(inner)
    p.set_defaults(run=lambda args: p.print_help() or 0)
