"""``render3d export-splat``: Gaussian-splat files converted between the 3DGS PLY that splat
viewers and trainers read and antimatter15's compact ``.splat``, optionally pruned."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

SPLAT_FORMATS = (".ply", ".splat")

EPILOG = """examples:
  render3d export-splat point_cloud.ply --out scene.splat           # for web splat viewers
  render3d export-splat scene.splat --out scene.ply                 # back to a 3DGS PLY (degree-0 colour)
  render3d export-splat point_cloud.ply --out small.ply --min-opacity 0.05

A .splat keeps only the degree-0 colour, quantised to 8 bits, and sorts splats by size x
opacity; a PLY keeps every spherical-harmonics coefficient.
"""


def add_export_splat(sub) -> None:
    p = sub.add_parser(
        "export-splat", help="convert Gaussian splats between 3DGS PLY and .splat, optionally pruned",
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("splats", type=Path, help="a Gaussian set: 3DGS .ply or .splat")
    p.add_argument("--out", type=Path, required=True, help="the file to write: .ply or .splat")
    p.add_argument("--min-opacity", type=float, default=0.0,
                   help="drop splats less opaque than this, in [0, 1) (default: 0, keep all)")
    p.set_defaults(run=run_export_splat)


def _format(option: str, path: Path) -> str:
    from ._args import UsageError

    suffix = path.suffix.lower()
    if suffix not in SPLAT_FORMATS:
        raise UsageError(f"render3d export-splat: {option} expected a file ending in "
                         f"{' or '.join(SPLAT_FORMATS)}, got {path}")
    return suffix


def run_export_splat(args) -> int:
    from render3d.mesh.export import check_writable
    from render3d.splat import load_ply, load_splat, save_ply, save_splat

    from ._args import UsageError, report, restated

    try:
        source = _format("SPLATS", args.splats)
        target = _format("--out", args.out)
        if not args.splats.is_file():
            raise UsageError(f"render3d export-splat: SPLATS expected an existing file, got {args.splats}")
        if not 0 <= args.min_opacity < 1:
            raise UsageError(f"render3d export-splat: --min-opacity expected a value in [0, 1), got {args.min_opacity}")
        if args.out.resolve() == args.splats.resolve():
            raise UsageError(f"render3d export-splat: --out expected a file other than SPLATS, got {args.out}")
        check_writable("render3d export-splat", "--out", args.out)
    except (UsageError, ValueError) as error:
        return report(error)
    started = time.perf_counter()
    try:
        splats = load_ply(args.splats) if source == ".ply" else load_splat(args.splats)
    except ValueError as error:
        return report(restated("export-splat", error, {"path": "SPLATS"}))
    count = len(splats["opacities"])
    if not count:
        return report(UsageError(f"render3d export-splat: SPLATS expected Gaussian splats, got {args.splats} "
                                 f"holding none; nothing written"))
    keep = splats["opacities"] >= args.min_opacity
    splats = {name: value[keep] for name, value in splats.items()}
    if not len(splats["opacities"]):
        return report(UsageError(f"render3d export-splat: --min-opacity {args.min_opacity} drops all {count} "
                                 f"splats of {args.splats}; nothing written"))
    try:
        (save_ply if target == ".ply" else save_splat)(args.out, **splats)
    except ValueError as error:  # a set that breaks the format's rules, e.g. non-positive scales
        return report(restated("export-splat", error, {"path": "--out"}))
    degree = round(splats["sh"].shape[1] ** 0.5) - 1 if target == ".ply" else 0
    low, high = splats["means"].amin(0).tolist(), splats["means"].amax(0).tolist()
    bounds = " to ".join("(" + ", ".join(f"{v:.3g}" for v in corner) + ")" for corner in (low, high))
    pruned = f" ({count - int(keep.sum())} below opacity {args.min_opacity} dropped)" if args.min_opacity else ""
    print(f"render3d export-splat: wrote {args.out.resolve()}: {int(keep.sum())} splats{pruned}, "
          f"SH degree {degree}, bounds {bounds}; {time.perf_counter() - started:.1f} s")
    return 0
