"""Training throughput of VolumeGAN: images per second and peak memory of full training steps
(generator phase, discriminator phase with lazy R1, EMA; data loading included), measured by
`render3d.training.training_loop` itself (its per-step time in stats.jsonl).

Cases (each in its own process, so that peak memory is its own):
- "demo": configs/volumegan/synth64.yaml, the shipped demo model (64 px, batch 8), CPU only;
- "volumegan": configs/volumegan/ffhq256.yaml, the official model sizes, at each --sizes
  resolution (neural rendering at 32 px, 12 + 12 samples, no progressive growing), batch
  --batch (default 8 per GPU, as the official runs; 2 on CPU);
- "volumegan_<size>_bf16": the same with precision=bfloat16, at each --bf16-sizes resolution;
- "volumegan_<size>_tf32": the same in float32 with tf32=true (TF32 matmuls and convolutions on
  the GPU's tensor cores), at each --tf32-sizes resolution.
- "volumegan_<size>_passes": the same with 4 x --batch images per step in passes of --batch
  (batch_gpu): the larger batch in the memory of the smaller one, at each --passes-sizes resolution.

Timings: --steps steps after --warmup steps; images/s is over all of them (total images / total
time), so the lazy regularization is paid as in training: the default step counts are multiples
of 16, which hold one R1 step (every 16) and four path-length steps (every 4) of the ffhq256
config wherever they start. Median, mean and interquartile range of the step times are kept
too (the median is a plain step's). Peak memory: CPU peak RSS of the process; GPU
torch.cuda.max_memory_allocated. The data are random posed images of the right size (the
speed does not depend on what they show).

    python bench/train.py                                     # CPU, 64 px
    python bench/train.py --device cuda --sizes 64 128 256    # a GPU machine
    python bench/train.py --bf16-sizes 64                     # and again with precision=bfloat16
    python bench/train.py --device cuda --sizes 256 --bf16-sizes 256 --tf32-sizes 256
    python bench/train.py --sizes 64 --passes-sizes 64        # batch 8 in passes of 2 vs batch 2

The results file is rewritten after each case, so a run cut short keeps the cases it finished.
"""

from __future__ import annotations

import argparse
import json
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

from volume import device_info, write_result  # noqa: E402


def write_dataset(folder: Path, size: int, count: int = 64) -> Path:
    """`count` random posed images of `size` px (EG3D format)."""
    import numpy as np
    import torch
    from PIL import Image

    from render3d.cameras import sample_yaw_pitch
    from render3d.datasets import write_labels

    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        names.append(f"images/{i:04d}.png")
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / names[-1])
    cameras = sample_yaw_pitch(count, yaw_spread=0.3, pitch_spread=0.155, radius=1.0, width=size, height=size,
                               fov_degrees=12.0, generator=torch.Generator().manual_seed(0))
    write_labels(folder, names, cameras.to_eg3d_label())
    return folder


def case_overrides(case: str, size: int, batch: int, device: str) -> tuple[str, list[str]]:
    if case == "demo":
        return "configs/volumegan/synth64.yaml", [f"device={device}"]
    passes = [f"batch={PASSES * batch}", f"batch_gpu={batch}"] if case == "passes" else [f"batch={batch}"]
    return "configs/volumegan/ffhq256.yaml", [
        f"generator.resolution={size}", f"discriminator.resolution={size}", "progressive.start_resolution=0",
        *passes, f"device={device}", "data.workers=2"]


PASSES = 4                         # a "passes" case's passes per step


# a case's arithmetic mode: (config.precision, config.tf32)
MODES = {"float32": ("float32", False), "bfloat16": ("bfloat16", False), "tf32": ("float32", True)}


def worker(case: str, size: int, mode: str, batch: int, device: str, steps: int, warmup: int) -> dict:
    import torch

    from render3d.config import apply_overrides, load_yaml
    from render3d.training import resolve_config, training_loop

    with tempfile.TemporaryDirectory() as tmp:
        data = write_dataset(Path(tmp) / "data", size)
        config_file, overrides = case_overrides(case, size, batch, device)
        overrides += [f"data.path={data}", "log_every=1", "image_every=0", "video_every=0",
                      f"checkpoint_every={10 ** 9}", f"total_kimg={(steps + warmup + 1) * 256 / 1000}",
                      f"precision={MODES[mode][0]}", f"tf32={str(MODES[mode][1]).lower()}"]
        config = resolve_config(apply_overrides(load_yaml(ROOT / config_file), overrides))
        run = Path(tmp) / "run"
        started = time.perf_counter()
        training_loop(run, config, max_steps=warmup + steps, progress=False)
        wall = time.perf_counter() - started
        lines = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    times = [line["speed/step_s"] for line in lines[warmup:]]
    q = statistics.quantiles(times, n=4)
    result = {"sizes": {"resolution": size, "batch": config.batch, "batch_gpu": config.batch_gpu,
                        "neural_resolution": config.generator.neural_resolution,
                        "samples_per_ray": config.generator.n_coarse + config.generator.n_fine},
              "config": config_file, "precision": config.precision, "tf32": config.tf32,
              "step_s": {"median": round(statistics.median(times), 4), "mean": round(statistics.mean(times), 4),
                         "iqr": round(q[2] - q[0], 4), "runs": len(times)},
              "images_per_s": round(config.batch / statistics.mean(times), 2), "wall_s": round(wall, 1)}
    if device == "cuda":
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64])
    parser.add_argument("--batch", type=int, default=None, help="volumegan batch (default: 8 on cuda, 2 on cpu)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 32 cuda, 16 cpu)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 5 cuda, 2 cpu)")
    parser.add_argument("--bf16-sizes", type=int, nargs="*", default=[],
                        help="volumegan resolutions measured again with precision=bfloat16")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--tf32-sizes", type=int, nargs="*", default=[],
                        help="volumegan resolutions measured again with tf32=true (GPU only)")
    parser.add_argument("--passes-sizes", type=int, nargs="*", default=[],
                        help=f"volumegan resolutions measured again at {PASSES} x --batch in passes of --batch")
    parser.add_argument("--worker", nargs=3, metavar=("CASE", "SIZE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    if args.device == "cuda" and not args.worker and not torch.cuda.is_available():
        parser.error("--device cuda: no GPU is visible here (torch.cuda.is_available() is False)")
    if args.tf32_sizes and args.device != "cuda":
        parser.error("--tf32-sizes: tf32 is a GPU setting (the CPU ignores it), got --device cpu")
    gpu = args.device == "cuda"
    batch = args.batch or (8 if gpu else 2)
    steps, warmup = args.steps or (32 if gpu else 16), args.warmup or (5 if gpu else 2)
    if args.worker:
        case, size, mode = args.worker
        print(json.dumps(worker(case, int(size), mode, batch, args.device, steps, warmup)))
        return
    cases = ([("volumegan", size, "float32") for size in args.sizes] + ([("demo", 64, "float32")] if not gpu else [])
             + [("volumegan", size, "bfloat16") for size in args.bf16_sizes]
             + [("volumegan", size, "tf32") for size in args.tf32_sizes]
             + [("passes", size, "float32") for size in args.passes_sizes])
    result = {"bench": "train", "info": device_info(args.device), "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "cases": {}}
    for case, size, mode in cases:
        cmd = [sys.executable, __file__, "--worker", case, str(size), mode, "--device", args.device,
               "--batch", str(batch), "--steps", str(steps), "--warmup", str(warmup)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        key = (f"volumegan_{size}_passes" if case == "passes" else
               f"{case}_{size}" + {"float32": "", "bfloat16": "_bf16", "tf32": "_tf32"}[mode])
        if proc.returncode != 0:
            result["cases"][key] = {"error": proc.stderr.strip().splitlines()[-1]}
        else:
            result["cases"][key] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{key}: {result['cases'][key]}", flush=True)
        write_result(result, args.out, f"train_{args.device}")


if __name__ == "__main__":
    main()
