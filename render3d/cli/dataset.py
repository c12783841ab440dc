"""`render3d dataset check | synth`: validate a posed-image dataset, or write a synthetic one
with ground-truth geometry."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

CHECK_EPILOG = """examples:
  render3d dataset check data/ffhq.zip
  render3d dataset check data/my_capture/transforms.json --out outputs/check
exit status: 0 when every entry is well formed, 1 when any is malformed (each is listed), 2 on
bad arguments."""


def _writable(prog: str, folder: Path) -> bool:
    """Create `folder` and prove it writable; print why not and return False otherwise."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".write-test").touch()
        (folder / ".write-test").unlink()
    except OSError as exc:
        print(f"{prog}: cannot write to --out {folder}: {exc.strerror}", file=sys.stderr)
        return False
    return True


def add_check(sub) -> None:
    p = sub.add_parser(
        "check", help="validate a dataset: every malformed entry, counts, sizes, pose statistics, camera picture",
        description="Validate an EG3D dataset (a folder or zip with dataset.json) or a nerfstudio transforms.json. "
                    "Every malformed entry (missing file, wrong label length, non-rigid rotation, NaN, bad "
                    "intrinsics, unlabelled image, wrong size) is listed with its index and file name. Writes "
                    "cameras.png (frustums, yaw/pitch histogram) and report.json to --out.",
        epilog=CHECK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", type=Path, help="dataset folder or zip (EG3D), or transforms.json or its folder")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for cameras.png and report.json (default: outputs/dataset-check/<name>)")
    p.set_defaults(run=run_check)


def run_check(args) -> int:
    from render3d.datasets.check import check_dataset, histogram_lines
    from render3d.visualize import draw_cameras

    prog = "render3d dataset check"
    if not args.path.exists():
        print(f"{prog}: PATH {args.path} does not exist", file=sys.stderr)
        return 2
    out = args.out or Path("outputs/dataset-check") / args.path.resolve().stem
    if not _writable(prog, out):
        return 2
    try:
        report = check_dataset(args.path)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    summary = report.to_dict()
    print(f"{report.path} ({report.format}): {report.entries} entries, {summary['well_formed']} well formed, "
          f"{len(report.problems)} problems")
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
    (out / "report.json").write_text(json.dumps(summary, indent=1))
    if stats:
        print(f"  cameras {picture.resolve()}")
    print(f"  report  {(out / 'report.json').resolve()}")
    return 1 if report.problems else 0


def add_dataset(sub) -> None:
    p = sub.add_parser("dataset", help="check posed-image datasets; write a synthetic one with ground truth",
                       description="Posed-image datasets.", formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  render3d dataset check data/ffhq.zip\n"
                              "  render3d dataset synth outputs/synth --objects 100 --views 8")
    inner = p.add_subparsers(dest="dataset_command", metavar="COMMAND")
    add_check(inner)
    p.set_defaults(run=lambda args: p.print_help() or 0)
