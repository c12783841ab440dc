"""Gaussian-splat rasterization benchmarks: forward and forward+backward with peak memory.

Cases (seeded synthetic scenes; no data is downloaded):
  garden   ~112k Gaussians in [-2, 2]^3, one 648x420 camera (gsplat's test-scene size)
  big      2.8M Gaussians, 1920x1080 (GPU only)
  gan      32 sets x 87k Gaussians, each seen by its own 256x256 camera (the 3D-GAN case)
  cpu64k   64k Gaussians, 256x256 (the CPU target: native vs the PyTorch twin)
Backends: native (our kernels), torch (the twin; small cases only), gsplat 1.5.3 (GPU only).
Each (case, backend) runs in its own process; results go to bench/results/splat_<device>.json.

    python bench/splat.py --device cpu
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

from volume import device_info, time_forward_backward, write_result  # noqa: E402

# name: (sets, gaussians per set, width, height, backends per device, (runs, warmup) per device)
CASES = {
    "garden": (1, 112_000, 648, 420, {"cpu": ("native", "torch"), "cuda": ("native", "gsplat")},
               {"cpu": (5, 1), "cuda": (20, 5)}),
    "big": (1, 2_800_000, 1920, 1080, {"cuda": ("native", "gsplat")}, {"cuda": (20, 5)}),
    "gan": (32, 87_000, 256, 256, {"cpu": ("native",), "cuda": ("native", "gsplat")}, {"cpu": (3, 1), "cuda": (20, 5)}),
    "cpu64k": (1, 65_536, 256, 256, {"cpu": ("native", "torch")}, {"cpu": (5, 1)}),
}


def make_scene(case: str, device: str):
    """Seeded Gaussians and cameras for a case: means, quats, scales, opacities, colours
    [S, N, ...], cam2world [S, 4, 4], normalised intrinsics [S, 3, 3], width, height."""
    from render3d.cameras import Cameras

    sets, n, width, height, _, _ = CASES[case]
    g = torch.Generator().manual_seed(0)
    if case == "gan":  # object-centric sets like GSGAN's, EG3D-like cameras (radius 2.7, focal 4.26)
        means = (torch.randn(sets, n, 3, generator=g) * 0.3).clamp(-1, 1)
        scales = torch.exp(torch.empty(sets, n, 3).uniform_(math.log(1 / 256), math.log(1 / 32), generator=g))
        yaw = math.pi / 2 + (torch.rand(sets, generator=g) - 0.5) * 0.8
        pitch = math.pi / 2 + (torch.rand(sets, generator=g) - 0.5) * 0.4
        eyes = 2.7 * torch.stack([torch.sin(pitch) * torch.cos(math.pi - yaw), torch.cos(pitch),
                                  torch.sin(pitch) * torch.sin(math.pi - yaw)], -1)
        fov = 2 * math.degrees(math.atan(0.5 / 4.2647))
    else:
        extent = 2.0 if case != "big" else 10.0
        means = (torch.rand(sets, n, 3, generator=g) * 2 - 1) * extent
        scales = torch.rand(sets, n, 3, generator=g) * (0.02 if case != "big" else 0.05)
        eyes = torch.tensor([[0.0, -1.0, -3.0 * extent]]).expand(sets, 3)
        fov = 60.0
    quats = torch.randn(sets, n, 4, generator=g)
    opacities = torch.rand(sets, n, generator=g)
    colors = torch.rand(sets, n, 3, generator=g)
    cameras = Cameras.look_at(eyes.contiguous(), torch.zeros(sets, 3), width=width, height=height, fov_degrees=fov)
    tensors = [t.to(device) for t in (means, quats, scales, opacities, colors)]
    return tensors, cameras.to(device)


def step(backend: str, tensors, cameras):
    means, quats, scales, opacities, colors = tensors
    if backend == "gsplat":
        from gsplat import rasterization

        k = cameras.intrinsics.clone()
        k[:, 0] *= cameras.width
        k[:, 1] *= cameras.height
        image, alpha, _ = rasterization(means, quats, scales, opacities, colors, cameras.world2cam[:, None], k[:, None],
                                        cameras.width, cameras.height, packed=False, render_mode="RGB+ED",
                                        eps2d=0.3, near_plane=0.01)
        return image.sum() + alpha.sum()
    from render3d.splat import rasterize

    out = rasterize(means, quats, scales, opacities, colors, cameras.cam2world, cameras.intrinsics, cameras.width,
                    cameras.height, impl=backend, check_values=False)
    return out["image"].sum() + out["depth"].sum() + out["alpha"].sum()


def worker(case: str, backend: str, device: str) -> dict:
    if backend == "native":
        from render3d.ops import _build

        _build.load_native(raise_errors=True)
    runs, warmup = CASES[case][5][device]
    tensors, cameras = make_scene(case, device)
    leaves = [t.requires_grad_() for t in tensors]
    return time_forward_backward(lambda: step(backend, leaves, cameras), leaves, device, runs, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--out", default=str(ROOT / "results"))
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--worker", nargs=3, metavar=("CASE", "BACKEND", "DEVICE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device == "cuda" and not args.worker and not torch.cuda.is_available():
        parser.error("--device cuda: no GPU is visible here (torch.cuda.is_available() is False)")
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    for device in devices:
        result = {"bench": "splat", "info": device_info(device), "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "cases": {}}
        for case in args.cases.split(","):
            sets, n, width, height, backends, runs = CASES[case]
            if device not in backends:
                continue
            entry = {"sizes": {"sets": sets, "gaussians_per_set": n, "width": width, "height": height},
                     "runs": runs[device][0], "warmup": runs[device][1]}
            for backend in backends[device]:
                cmd = [sys.executable, __file__, "--worker", case, backend, device]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode == 0:
                    entry[backend] = json.loads(proc.stdout.strip().splitlines()[-1])
                else:
                    entry[backend] = {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
                print(f"{device} {case:<8} {backend:<7} {entry[backend]}", flush=True)
            native = entry.get("native", {})
            for peer in ("torch", "gsplat"):
                other = entry.get(peer, {})
                if "forward_backward_ms" in native and "forward_backward_ms" in other:
                    entry[f"native_speedup_vs_{peer}"] = {
                        "forward": round(other["forward_ms"]["median"] / native["forward_ms"]["median"], 2),
                        "forward_backward": round(
                            other["forward_backward_ms"]["median"] / native["forward_backward_ms"]["median"], 2),
                    }
            result["cases"][case] = entry
        write_result(result, args.out, f"splat_{device}")


if __name__ == "__main__":
    main()
