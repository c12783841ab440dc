"""Volume-rendering benchmarks: compositing forward+backward, the renderer's compositing of
coarse and fine samples (two ways, "merge"), and occupancy marching.

Each (case, backend) runs in its own process, so that peak memory is that backend's alone
(CPU: peak RSS above the process's size once inputs exist; GPU: max_memory_allocated above
the allocated baseline). Timings: median and interquartile range of >= 20 runs after 5
warm-up runs; CUDA timings synchronise around each run. Results go to
bench/results/volume_<device>.json with the device, commit and versions.

    python bench/volume.py                 # CPU (and CUDA when available)
    python bench/volume.py --device cpu --out bench/results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name: (batch, rays per batch element, samples per ray, channels)
COMPOSITE_CASES = {
    "gan": (8, 64 * 64, 96, 32),        # EG3D-like neural rendering at 64x64
    "volumegan": (8, 32 * 32, 24, 512),  # VolumeGAN's 32x32 feature map, 12+12 samples, 512 channels
    "nerf": (1, 1 << 18, 64, 3),        # a NeRF training batch
}
BACKENDS = ("native", "torch", "nerfacc")
# The renderer's coarse + fine compositing at VolumeGAN's sizes (batch, rays, samples per set,
# channels): "sorted" puts every sample's values in depth order (merge_samples) before the
# kernel, as the renderer did before 32c53a5; "sets" composites the sorted densities alone and
# sums each set's values with their weights (VolumeRenderer._composite_sets, what it does now).
MERGE_CASE = (8, 32 * 32, 12, 512)
MERGE_WAYS = ("sorted", "sets")


def make_inputs(case: str, device: str):
    B, R, S, C = COMPOSITE_CASES[case]
    g = torch.Generator(device="cpu").manual_seed(0)
    densities = (torch.rand(B, R, S, generator=g) * 4).to(device)
    values = torch.rand(B, R, S, C, generator=g).to(device)
    edges = torch.sort(torch.rand(B, R, S + 1, generator=g) * 4 + 1, dim=-1).values.to(device)
    return densities, values, edges[..., :-1].contiguous(), edges[..., 1:].contiguous()


def composite_step(backend: str, inputs):
    densities, values, t_starts, t_ends = inputs
    if backend == "nerfacc":
        import nerfacc

        B, R, S, C = values.shape
        d, v = densities.reshape(B * R, S), values.reshape(B * R, S, C)
        weights, _, _ = nerfacc.render_weight_from_density(t_starts.reshape(B * R, S), t_ends.reshape(B * R, S), d)
        color = nerfacc.accumulate_along_rays(weights, v)
        opacity = nerfacc.accumulate_along_rays(weights, None)
        depth = nerfacc.accumulate_along_rays(weights, ((t_starts + t_ends) / 2).reshape(B * R, S, 1))
        return color.sum() + opacity.sum() + depth.sum()
    from render3d.volume import composite

    out = composite(densities, values, t_starts, t_ends, impl=backend, check_values=False)
    return out["values"].sum() + out["opacity"].sum() + out["depth"].sum()


def merge_inputs(device: str):
    B, R, S, C = MERGE_CASE
    g = torch.Generator(device="cpu").manual_seed(0)
    points = [torch.sort(torch.rand(B, R, S, generator=g) * 3 + 1, dim=-1).values.to(device) for _ in range(2)]
    densities = [(torch.rand(B, R, S, generator=g) * 4).to(device) for _ in range(2)]
    values = [torch.rand(B, R, S, C, generator=g).to(device) for _ in range(2)]
    near, far = torch.ones(B, R, device=device), torch.full((B, R), 4.0, device=device)
    return points, densities, values, near, far


def merge_step(way: str, points, densities, values, near, far):
    from render3d.rays import intervals_from_points, merge_samples
    from render3d.volume import VolumeRenderer, composite

    if way == "sorted":
        t, density, value = merge_samples(points, densities, values)
        t_starts, t_ends = intervals_from_points(t, near, far)
        out = composite(density, value, t_starts.contiguous(), t_ends.contiguous(), check_values=False)
    else:
        renderer = VolumeRenderer(n_coarse=MERGE_CASE[2], n_fine=MERGE_CASE[2], check_values=False)
        out = renderer._composite_sets(points, densities, values, near, far, None)
    return out["values"].sum() + out["opacity"].sum() + out["depth"].sum()


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_forward_backward(forward, inputs, device: str, runs: int, warmup: int) -> dict:
    """Median and spread of `forward()` (a scalar loss) alone and with the gradients of
    `inputs`, after `warmup` runs, and the peak memory the runs add.

    CPU: memory is measured from the process's size before any run (peak RSS never decreases,
    so the runs' working set is what the peak adds to it). GPU: from the memory allocated
    after warm-up."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run():
        sync()
        t0 = time.perf_counter()
        loss = forward()
        sync()
        t1 = time.perf_counter()
        torch.autograd.grad(loss, inputs)
        sync()
        return t1 - t0, time.perf_counter() - t0

    baseline = rss_mb()
    for _ in range(warmup):
        run()
    if device == "cuda":
        baseline = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    forward_ms, total_ms = [], []
    for _ in range(runs):
        f, t = run()
        forward_ms.append(f * 1e3)
        total_ms.append(t * 1e3)
    peak = (torch.cuda.max_memory_allocated() - baseline) / 2**20 if device == "cuda" else peak_rss_mb() - baseline
    return {"forward_ms": summary(forward_ms), "forward_backward_ms": summary(total_ms), "peak_mb": round(peak, 1)}


def worker(case: str, backend: str, device: str, runs: int, warmup: int) -> dict:
    if backend == "nerfacc":
        import nerfacc  # noqa: F401 - fail early if missing
    if backend in ("native", *MERGE_WAYS):
        from render3d.ops import _build

        _build.load_native(raise_errors=True)
    if case == "merge":
        points, densities, values, near, far = merge_inputs(device)
        leaves = [t.requires_grad_() for t in densities + values]
        return time_forward_backward(lambda: merge_step(backend, points, leaves[:2], leaves[2:], near, far), leaves,
                                     device, runs, warmup)
    inputs = make_inputs(case, device)
    leaves = [inputs[0].requires_grad_(), inputs[1].requires_grad_(), inputs[2], inputs[3]]
    return time_forward_backward(lambda: composite_step(backend, leaves), leaves[:2], device, runs, warmup)


def summary(samples: list[float]) -> dict:
    q = statistics.quantiles(samples, n=4)
    return {"median": round(statistics.median(samples), 3), "iqr": round(q[2] - q[0], 3), "runs": len(samples)}


def march_counts(device: str) -> dict:
    """Sample counts of our occupancy marching vs nerfacc's traverse_grids on the same grid."""
    import math

    from render3d.rays import OccupancyGrid

    res, step = 128, 1e-3

    def shell(points):  # density 100 in a 0.02-thick spherical shell of radius 0.6
        return torch.where((points.norm(dim=-1) - 0.6).abs() < 0.01, 100.0, 0.0)

    grid = OccupancyGrid(([-1, -1, -1], [1, 1, 1]), resolution=res).to(device)
    grid.build(shell, step_size=step, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    n = 81920
    azimuth, elevation = torch.rand(n, generator=g) * 2 * math.pi, (torch.rand(n, generator=g) - 0.5) * 0.6
    origins = 3 * torch.stack([torch.cos(elevation) * torch.cos(azimuth), torch.sin(elevation),
                               torch.cos(elevation) * torch.sin(azimuth)], -1)
    directions = torch.nn.functional.normalize(torch.rand(n, 3, generator=g) - 0.5 - origins / 3, dim=-1)
    origins, directions = origins.to(device), directions.to(device)
    out = {"rays": n, "resolution": res, "step_size": step}
    for cone in (0.0, 1 / 256):
        ours = grid.march(origins, directions, 0.0, 1e10, step_size=step, cone_angle=cone)
        entry = {"render3d": len(ours)}
        try:
            import nerfacc
            from nerfacc.grid import traverse_grids

            binaries = torch.zeros(1, res**3, dtype=torch.bool, device=device)
            bits = torch.stack([(grid.bitfield[0] >> b) & 1 for b in range(8)], -1).reshape(-1).bool()
            binaries[0] = bits
            _, samples, _ = traverse_grids(
                origins, directions, binaries.reshape(1, res, res, res),
                torch.tensor([[-1.0, -1, -1, 1, 1, 1]], device=device),
                near_planes=torch.zeros(n, device=device), far_planes=torch.full((n,), 1e10, device=device),
                step_size=step, cone_angle=cone,
            )
            entry["nerfacc"] = int(samples.vals.numel())
            entry["nerfacc_version"] = nerfacc.__version__
        except Exception as exc:  # nerfacc's grid marching needs its CUDA extension
            first_line = str(exc).splitlines()[0][:200] if str(exc) else ""
            entry["nerfacc"] = f"unavailable: {type(exc).__name__}: {first_line}"
        out[f"cone_{cone:g}"] = entry
    return out


def write_result(result: dict, out, name: str) -> Path:
    """Write a benchmark's result to OUT/NAME.json and say where."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}", flush=True)
    return path


def device_info(device: str) -> dict:
    info = {"device": device, "torch": torch.__version__, "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            # other work on the machine slows every backend; ratios within one run stay comparable
            "load_average_1min": round(os.getloadavg()[0], 2)}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    try:
        def git(*words: str) -> str:
            return subprocess.run(["git", *words], cwd=ROOT, capture_output=True, text=True).stdout

        info["commit"] = git("rev-parse", "HEAD").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no")
        info["dirty"] = bool(dirty.strip())
    except OSError:
        info["commit"] = "unknown"
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--cases", default=",".join(COMPOSITE_CASES))
    parser.add_argument("--worker", nargs=3, metavar=("CASE", "BACKEND", "DEVICE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device == "cuda" and not args.worker and not torch.cuda.is_available():
        parser.error("--device cuda: no GPU is visible here (torch.cuda.is_available() is False)")
    if args.worker:
        print(json.dumps(worker(*args.worker, args.runs, args.warmup)))
        return
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    for device in devices:
        result = {"bench": "volume", "info": device_info(device), "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "composite": {}, "settings": {"runs": args.runs, "warmup": args.warmup}}
        for case in args.cases.split(","):
            B, R, S, C = COMPOSITE_CASES[case]
            entry = {"sizes": {"batch": B, "rays": R, "samples": S, "channels": C}}
            for backend in BACKENDS:
                cmd = [sys.executable, __file__, "--worker", case, backend, device, "--runs", str(args.runs),
                       "--warmup", str(args.warmup)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode == 0:
                    entry[backend] = json.loads(proc.stdout.strip().splitlines()[-1])
                else:
                    entry[backend] = {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
                print(f"{device} {case:<10} {backend:<8} {entry[backend]}", flush=True)
            native, twin = entry.get("native", {}), entry.get("torch", {})
            if "forward_backward_ms" in native and "forward_backward_ms" in twin:
                entry["native_speedup_vs_torch"] = round(
                    twin["forward_backward_ms"]["median"] / native["forward_backward_ms"]["median"], 2)
                if native["peak_mb"] > 0:
                    entry["native_peak_fraction_of_torch"] = round(native["peak_mb"] / max(twin["peak_mb"], 1e-9), 3)
            result["composite"][case] = entry
        B, R, S, C = MERGE_CASE
        merge = {"sizes": {"batch": B, "rays": R, "samples": [S, S], "channels": C}}
        for way in MERGE_WAYS:
            cmd = [sys.executable, __file__, "--worker", "merge", way, device, "--runs", str(args.runs),
                   "--warmup", str(args.warmup)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            merge[way] = (json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0
                          else {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]})
            print(f"{device} merge      {way:<8} {merge[way]}", flush=True)
        if all("forward_backward_ms" in merge[way] for way in MERGE_WAYS):
            merge["sets_speedup_vs_sorted"] = round(merge["sorted"]["forward_backward_ms"]["median"]
                                                    / merge["sets"]["forward_backward_ms"]["median"], 2)
        result["merge"] = merge
        result["march"] = march_counts(device)
        print(f"{device} march {result['march']}", flush=True)
        write_result(result, args.out, f"volume_{device}")


if __name__ == "__main__":
    main()
