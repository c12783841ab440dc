"""Mesh-extraction benchmark: field -> grid -> marching cubes -> cleanup -> colours -> GLB.

Shapes: the analytic sphere (radius 0.5) and gyroid (render3d.volume.GyroidField, much more
surface) in [-1, 1]^3, at 128^3, 256^3 and 512^3. Each stage is timed on its own, with the
functions render3d.mesh.extract_mesh runs; PyMCubes (what render3d uses) and scikit-image's
Lewiner marching cubes run side by side on the same padded grid. `grid_to_glb` is marching
cubes + cleanup + colours + GLB export from a sampled grid; `end_to_end` times extract_mesh
plus export_mesh as a user calls them. Each (shape, size) runs in its own process so that
its peak RSS is its own. Timings: median, interquartile range, min and max over the runs,
after one warm-up run. Results: bench/results/mesh_<device>.json with the device, commit
and versions.

    python bench/mesh.py
    python bench/mesh.py --sizes 128,256 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from volume import device_info, write_result  # noqa: E402  (bench/volume.py: device, commit, versions)

SHAPES = ("sphere", "gyroid")
SIZES = (128, 256, 512)
BOX = ([-1.0, -1.0, -1.0], [1.0, 1.0, 1.0])


def summary(samples: list[float]) -> dict:
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return {"median": round(statistics.median(samples), 1), "iqr": round(q[2] - q[0], 1),
            "min": round(min(samples), 1), "max": round(max(samples), 1), "runs": len(samples)}


def make_field(shape: str):
    from render3d.volume import GyroidField, make_scene

    if shape == "sphere":
        return make_scene("sphere").field
    return GyroidField()


def worker(shape: str, size: int, runs: int) -> dict:
    import numpy as np
    import torch
    import trimesh
    from skimage.measure import marching_cubes as skimage_marching_cubes

    from render3d.mesh import clean_mesh, export_mesh, extract_mesh, sample_grid, vertex_colors
    from render3d.mesh.extract import auto_level, march

    field = make_field(shape)
    lo, hi = np.array(BOX[0]), np.array(BOX[1])
    times: dict[str, list[float]] = {}
    counts: dict[str, dict] = {}

    def timed(name, fn, *args, **kwargs):
        started = time.perf_counter()
        out = fn(*args, **kwargs)
        times.setdefault(name, []).append((time.perf_counter() - started) * 1e3)
        return out

    def skimage_lewiner(values, level):
        border = float(values.min()) - 1e3 * max(float(values.max() - values.min()), abs(level), 1.0)
        padded = np.pad(values, 1, constant_values=border)
        vertices, faces, _, _ = skimage_marching_cubes(padded, level, method="lewiner")
        return np.clip(lo + (vertices - 1.0) * (hi - lo) / (np.array(values.shape) - 1), lo, hi), faces

    with tempfile.TemporaryDirectory() as folder:
        for run in range(runs + 1):  # run 0 warms up
            values = timed("field", sample_grid, field.density, BOX, size)
            level = timed("level", auto_level, values)
            vertices, faces = timed("mc_pymcubes", march, values, level, lo, hi)
            sk_vertices, sk_faces = timed("mc_skimage_lewiner", skimage_lewiner, values, level)
            mesh = timed("mesh", trimesh.Trimesh, vertices, faces, process=False)
            cleaned = timed("cleanup", clean_mesh, mesh)
            colors = timed("colors", vertex_colors, field.color, cleaned.vertices)
            cleaned.visual = trimesh.visual.ColorVisuals(cleaned, vertex_colors=colors)
            timed("export_glb", export_mesh, cleaned, Path(folder) / "mesh.glb")
            started = time.perf_counter()
            end_to_end = extract_mesh(field.density, BOX, size, color_fn=field.color)
            export_mesh(end_to_end, Path(folder) / "end_to_end.glb")
            times.setdefault("end_to_end", []).append((time.perf_counter() - started) * 1e3)
            if run == 0:
                times = {}
                counts = {
                    "pymcubes": {
                        "vertices": len(vertices), "faces": len(faces),
                        "signed_volume": round(float(trimesh.Trimesh(vertices, faces, process=False).volume), 6)},
                    "skimage_lewiner": {"vertices": len(sk_vertices), "faces": len(sk_faces)},
                    "cleaned": {"vertices": len(cleaned.vertices), "faces": len(cleaned.faces),
                                "watertight": bool(cleaned.is_watertight)},
                    "glb_mb": round((Path(folder) / "mesh.glb").stat().st_size / 2**20, 1),
                }
            del values, vertices, faces, sk_vertices, sk_faces, mesh, cleaned, end_to_end
    stages = ("level", "mc_pymcubes", "mesh", "cleanup", "colors", "export_glb")
    times["grid_to_glb"] = [sum(times[k][i] for k in stages) for i in range(runs)]
    result = {f"{name}_ms": summary(samples) for name, samples in times.items()}
    result.update(counts)
    result["grid"] = [size] * 3
    result["threads"] = torch.get_num_threads()
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def versions() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in ("trimesh", "PyMCubes", "scikit-image", "fast-simplification", "numpy")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case (default: 5; 3 at 512^3)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--worker", nargs=2, metavar=("SHAPE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.runs)))
        return
    # The load average says whether other work shared the CPU while this ran.
    info = {**device_info("cpu"), **versions(), "load_average_1m": round(os.getloadavg()[0], 2)}
    result = {"bench": "mesh", "info": info, "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "settings": {"box": BOX, "warmup": 1}, "cases": {}}
    for shape in args.shapes.split(","):
        result["cases"][shape] = {}
        for size in map(int, args.sizes.split(",")):
            runs = min(args.runs, 3) if size >= 512 else args.runs
            cmd = [sys.executable, __file__, "--worker", shape, str(size), "--runs", str(runs)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode == 0:
                entry = json.loads(proc.stdout.strip().splitlines()[-1])
            else:
                entry = {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
            result["cases"][shape][str(size)] = entry
            brief = {k: v["median"] for k, v in entry.items() if k.endswith("_ms")} if "error" not in entry else entry
            print(f"{shape} {size}^3 {brief}", flush=True)
    result["info"]["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    write_result(result, args.out, "mesh_cpu")


if __name__ == "__main__":
    main()
