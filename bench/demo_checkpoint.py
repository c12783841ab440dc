"""The record of the shipped demo checkpoint: how it was trained (config, steps, images,
time), its training curve, and its 3D metrics against the synthetic dataset's meshes next to
those of the same network at initialization.

The initial network is rebuilt exactly as `training_loop` builds it (torch seeded with
config.seed, then the generator built from the config), so "at initialization" is the very
network training started from. Both are scored by `render3d.metrics.generators.shape_metrics`
(COV / MMD / 1-NNA over Chamfer distances), as `render3d eval generator` does; `--previous`
scores an earlier checkpoint beside them. Each also gets opacity statistics of its renders
(how much of the silhouette is solid, how much half-transparent fog).

    python bench/demo_checkpoint.py --run RUN --checkpoint assets/volumegan_synth64.safetensors \\
        --data outputs/synth64 [--previous OLD.safetensors]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CURVE_KEYS = ("loss/G", "loss/D", "loss/r1", "loss/opacity_entropy", "scores/real", "scores/fake",
              "progress/resolution")


def initial_generator(config):
    import torch

    from render3d.registry import GENERATORS

    torch.manual_seed(config.seed)               # as training_loop, process 0
    return GENERATORS.build(config.generator_type, config.generator).eval().requires_grad_(False)


def opacity_stats(G, view: dict, subjects: int = 16, views: int = 4) -> dict:
    """Of the rendered opacity of `subjects` seeds (truncation 1) from `views` cameras around
    each: the share of covered pixels (opacity > 0.1) that are solid (> 0.9) and that are fog
    (0.1 to 0.9), and the mean over renders of the largest opacity."""
    from render3d.generators.sampling import render_views, styles_from_seeds, view_cameras

    ws = styles_from_seeds(G, range(subjects), view)
    alpha = render_views(G, ws, view_cameras(view, views, G.resolutions[-1]))["alpha"]
    covered = alpha > 0.1
    return {"solid_share": round(float((alpha > 0.9).sum() / covered.sum().clamp_min(1)), 4),
            "fog_share": round(float((covered & (alpha < 0.9)).sum() / covered.sum().clamp_min(1)), 4),
            "max_opacity_mean": round(float(alpha.flatten(2).max(-1).values.mean()), 4),
            "renders": subjects * views}


def curve(stats: list[dict], points: int = 200) -> dict:
    """`points` evenly spaced log lines (each the mean over its logging interval)."""
    step = max(1, len(stats) // points)
    picked = stats[::step] + ([stats[-1]] if (len(stats) - 1) % step else [])
    return {"kimg": [round(s["progress/kimg"], 3) for s in picked],
            **{k: [round(s.get(k, float("nan")), 4) for s in picked] for k in CURVE_KEYS}}


def curve_svg(data: dict, path: Path, width: int = 720, height: int = 300) -> Path:
    """A plain SVG plot of the G and D losses over thousands of images."""
    kimg = data["kimg"]
    series = {"loss/G": "#d62728", "loss/D": "#1f77b4"}
    values = [v for k in series for v in data[k] if v == v]
    lo, hi = min(values), max(values)
    x0, x1, y0, y1 = 50, width - 10, height - 30, 10

    def xy(k, v):
        return (x0 + (x1 - x0) * k / max(kimg[-1], 1e-9), y0 - (y0 - y1) * (v - lo) / max(hi - lo, 1e-9))

    lines = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/>',
             f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="black"/>',
             f'<text x="{x1 - 90}" y="{height - 8}">kimg ({kimg[-1]:.1f})</text>',
             f'<text x="4" y="{y1 + 10}">{hi:.2f}</text><text x="4" y="{y0}">{lo:.2f}</text>']
    for i, (key, colour) in enumerate(series.items()):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(k, v) for k, v in zip(kimg, data[key]) if v == v))
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.2" points="{points}"/>')
        lines.append(f'<text x="{x0 + 10 + 80 * i}" y="{y1 + 12}" fill="{colour}">{key}</text>')
    path.write_text("\n".join(lines + ["</svg>"]) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="the training run folder")
    parser.add_argument("--checkpoint", type=Path, required=True, help="the shipped generator file")
    parser.add_argument("--previous", type=Path, help="an earlier generator file to score beside it")
    parser.add_argument("--data", type=Path, required=True, help="the synthetic dataset it was trained on")
    parser.add_argument("--shapes", type=int, default=32)
    parser.add_argument("--reference", type=int, default=64, help="reference meshes (the first N objects)")
    parser.add_argument("--mesh-resolution", type=int, default=64)
    parser.add_argument("--points", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    import yaml

    from render3d.metrics import load_points
    from render3d.metrics.generators import dataset_meshes, shape_metrics
    from render3d.training import load_generator, resolve_config
    from volume import device_info

    config = resolve_config(yaml.safe_load((args.run / "config.yaml").read_text()))
    trained, meta = load_generator(args.checkpoint)
    stats = [json.loads(line) for line in (args.run / "stats.jsonl").read_text().splitlines()]
    stats = [s for s in stats if s["step"] <= meta["training"]["step"]]   # up to the shipped checkpoint
    files = dataset_meshes(args.data)[:args.reference]
    if not files:
        sys.exit(f"bench/demo_checkpoint.py: {args.data}: no synthetic dataset with meshes there")
    reference = [load_points(f, args.points, seed=0) for f in files]
    metrics, opacity = {}, {}
    generators = [("initialization", initial_generator(config)), ("trained", trained)]
    if args.previous:
        previous, previous_meta = load_generator(args.previous)
        generators.append(("previous", previous))
    for name, G in generators:
        started = time.perf_counter()
        metrics[name] = shape_metrics(G, range(args.shapes), reference, view=meta["view"],
                                      resolution=args.mesh_resolution, points=args.points, progress=True)
        metrics[name]["seconds"] = round(time.perf_counter() - started, 1)
        opacity[name] = opacity_stats(G, meta["view"])
        print(name, metrics[name], opacity[name], flush=True)
    last = stats[-1]
    record = {
        "bench": "demo_checkpoint", "info": device_info("cpu"), "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "checkpoint": {"file": str(args.checkpoint.relative_to(ROOT)) if args.checkpoint.is_relative_to(ROOT)
                       else str(args.checkpoint), "bytes": args.checkpoint.stat().st_size,
                       "parameters": sum(p.numel() for p in trained.parameters())},
        "training": {**meta["training"], "hours": round(meta["training"]["seconds"] / 3600, 3),
                     "images_per_s": round(meta["training"]["nimg"] / max(meta["training"]["seconds"], 1e-9), 2),
                     "final_log": {k: last[k] for k in ("loss/G", "loss/D", "scores/real", "scores/fake",
                                                        "progress/resolution", "progress/blend")},
                     "machine": "2 shared CPU cores, niced, alongside other work"},
        "config": yaml.safe_load((args.run / "config.yaml").read_text()),
        "dataset": {"path": str(args.data), "images": len(json.loads((args.data / "dataset.json").read_text())
                                                          ["labels"])},
        "shape_metrics": {"settings": {"shapes": args.shapes, "reference_meshes": len(reference),
                                       "mesh_resolution": args.mesh_resolution, "points": args.points,
                                       "truncation": 1.0, "distance": "Chamfer (squared, both directions)"},
                          **metrics},
        "opacity": opacity,
        **({"previous": {"file": str(args.previous), "training": previous_meta["training"]}}
           if args.previous else {}),
        "curve": curve(stats),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "demo_checkpoint.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path} and {curve_svg(record['curve'], args.out / 'demo_checkpoint_curve.svg')}")


if __name__ == "__main__":
    main()
