"""float32 against precision=bfloat16 in training: the demo model (configs/volumegan/synth64.yaml,
the same seed and data) trained both ways for --kimg thousand images, then side by side: the
training curves (means over --windows stretches of the run), the time per step, non-finite
gradient steps, and the 3D metrics (COV / MMD / 1-NNA, as `render3d eval generator` computes
them) and opacity statistics of the two EMA generators.

    render3d dataset synth DATA --subjects 200 --views 8 --mesh-resolution 64
    python bench/precision.py --data DATA --work WORK         # -> bench/results/precision_cpu.json

A run that WORK already holds to --kimg is scored again, not trained again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from demo_checkpoint import CURVE_KEYS, opacity_stats  # noqa: E402
from volume import device_info, write_result  # noqa: E402

PRECISIONS = ("float32", "bfloat16")


def windows(stats: list[dict], count: int) -> list[dict]:
    """The run cut into `count` stretches of log lines: for each, its last step and the mean of
    each curve key over it."""
    size = max(1, len(stats) // count)
    out = []
    for lo in range(0, len(stats), size):
        part = stats[lo:lo + size]
        out.append({"to_step": part[-1]["step"],
                    **{k: round(statistics.mean(s[k] for s in part if k in s), 4)
                       for k in CURVE_KEYS if any(k in s for s in part)}})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a synthetic dataset (render3d dataset synth)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the two runs")
    parser.add_argument("--kimg", type=float, default=12.0, help="thousands of images per run")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--shapes", type=int, default=32)
    parser.add_argument("--reference", type=int, default=64, help="reference meshes (the first N objects)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    from render3d.config import apply_overrides, load_yaml
    from render3d.metrics import load_points
    from render3d.metrics.generators import dataset_meshes, shape_metrics
    from render3d.training import load_generator, resolve_config, training_loop
    from render3d.training.checkpoint import latest_checkpoint

    files = dataset_meshes(args.data)[:args.reference]
    if not files:
        sys.exit(f"bench/precision.py: {args.data}: no synthetic dataset with meshes there")
    reference = [load_points(f, 2048, seed=0) for f in files]
    runs = {}
    for precision in PRECISIONS:
        run = args.work / precision
        overrides = [f"data.path={args.data}", f"precision={precision}", f"device={args.device}",
                     f"total_kimg={args.kimg}", "image_every=0", "video_every=0", "checkpoint_every=1000000"]
        config = resolve_config(apply_overrides(load_yaml(ROOT / "configs/volumegan/synth64.yaml"), overrides))
        if latest_checkpoint(run) is None:
            training_loop(run, config, progress=True)
        G, meta = load_generator(run)
        if meta["training"]["nimg"] < args.kimg * 1000:
            parser.error(f"--work: {run} holds a run of {meta['training']['nimg']} images, short of --kimg "
                         f"{args.kimg:g}: move it away to train it again")
        stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
        started = time.perf_counter()
        metrics = shape_metrics(G, range(args.shapes), reference, view=meta["view"], resolution=64, points=2048,
                                progress=True)
        metrics["seconds"] = round(time.perf_counter() - started, 1)
        runs[precision] = {
            "training": meta["training"],
            "step_s_mean": round(meta["training"]["seconds"] / meta["training"]["step"], 4),
            "nonfinite_steps": {k: round(sum(s.get(f"nonfinite/{k}", 0) * (s["step"] - before["step"])
                                             for before, s in zip([{"step": 0}] + stats, stats)))
                                for k in ("G", "D")},
            "curve": windows(stats, args.windows),
            "shape_metrics": metrics,
            "opacity": opacity_stats(G, meta["view"]),
        }
        print(precision, {k: v for k, v in runs[precision].items() if k != "curve"}, flush=True)
    record = {"bench": "precision", "info": device_info(args.device), "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "settings": {"config": "configs/volumegan/synth64.yaml", "kimg": args.kimg,
                           "dataset": {"path": str(args.data), "images": len(
                               json.loads((args.data / "dataset.json").read_text())["labels"])},
                           "shapes": args.shapes, "reference_meshes": len(reference), "mesh_resolution": 64},
              "runs": runs}
    write_result(record, args.out, f"precision_{args.device}")


if __name__ == "__main__":
    main()
