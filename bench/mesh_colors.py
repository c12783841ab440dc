"""Generator mesh colours against the generator's own pictures: vertex colours baked from its
renders (`extract_generator_mesh(color="renders")`) and its colour head (`color="field"`),
both compared with its pictures from new views, between the 36 baking views.

For each subject and each of 4 new cameras (yaw half a baking step off, pitch 0.15 rad above
or below the mean): the vertices facing the camera (cosine > 0.8) are projected into its
picture, and the mean absolute RGB difference (colours in [0, 1]) between their colour and
the picture there is the error. Also the extra time that baking takes over meshing alone.

    python bench/mesh_colors.py                       # the shipped demo model -> bench/results/mesh_colors.json
    python bench/mesh_colors.py --picture assets/readme/generator_meshes.png
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from volume import device_info, write_result  # noqa: E402


def new_views(view: dict, size: int):
    from render3d.cameras import Cameras
    from render3d.generators.sampling import view_cameras

    # 24 around: the odd ones lie half-way between the 12 baking views of a ring
    return Cameras.cat([view_cameras(view, 24, size, pitch_offset=offset)[[1, 13]] for offset in (-0.15, 0.15)])


def color_error(mesh, G, ws, camera) -> float:
    size = camera.width
    with torch.no_grad():
        picture = ((G.synthesis(ws, camera, noise_mode="const")["image"] + 1) / 2).clamp(0, 1)
    vertices = torch.tensor(mesh.vertices, dtype=torch.float32)
    normals = torch.tensor(mesh.vertex_normals, dtype=torch.float32)
    toward = torch.nn.functional.normalize(camera.centers - vertices, dim=-1)
    facing = (normals * toward).sum(-1) > 0.8
    uv, _ = camera.project(vertices[None])
    sampled = torch.nn.functional.grid_sample(picture, (uv / size * 2 - 1)[:, facing, None], align_corners=False)
    truth = sampled[0, :, :, 0].T.numpy()
    return float(np.abs(mesh.visual.vertex_colors[facing.numpy(), :3] / 255 - truth).mean())


def main() -> None:
    from render3d import DEMO_CHECKPOINT
    from render3d.generators.sampling import extract_generator_mesh, styles_from_seeds
    from render3d.training import load_generator

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    parser.add_argument("--seeds", type=int, default=8, help="subjects 0..N-1 (default: 8)")
    parser.add_argument("--truncation", type=float, default=0.7)
    parser.add_argument("--resolution", type=int, default=128, help="marching-cubes grid (default: 128)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--picture", type=Path, help="also draw renders / field colours / baked colours of 3 subjects")
    args = parser.parse_args()

    G, meta = load_generator(args.checkpoint)
    view, size = meta["view"], G.resolutions[-1]
    cameras = new_views(view, size)
    errors = {"renders": [], "field": []}
    seconds = {"renders": [], "field": []}
    meshes = {}
    for seed in range(args.seeds):
        ws = styles_from_seeds(G, [seed], view, truncation=args.truncation)
        for color in ("field", "renders"):
            started = time.perf_counter()
            mesh = extract_generator_mesh(G, ws, resolution=args.resolution, color=color, view=view)
            seconds[color].append(time.perf_counter() - started)
            errors[color] += [color_error(mesh, G, ws, cameras[i]) for i in range(len(cameras))]
            meshes[seed, color] = mesh
        print(f"seed {seed}: error renders {np.mean(errors['renders'][-4:]):.4f}, "
              f"field {np.mean(errors['field'][-4:]):.4f}", flush=True)

    def summary(values):
        return {"mean": round(statistics.mean(values), 4), "median": round(statistics.median(values), 4),
                "max": round(max(values), 4), "n": len(values)}

    result = {"bench": "mesh_colors", "info": device_info("cpu"), "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "checkpoint": str(Path(args.checkpoint).name),
              "settings": {"seeds": args.seeds, "truncation": args.truncation, "resolution": args.resolution,
                           "new_views_per_seed": len(cameras), "picture_size": size, "facing_cosine": 0.8},
              "color_error": {k: summary(v) for k, v in errors.items()},
              "mesh_seconds": {k: summary(v) for k, v in seconds.items()}}
    write_result(result, args.out, "mesh_colors")
    print(f"colour error: {result['color_error']}")

    if args.picture:
        from render3d.mesh import render_mesh
        from render3d.visualize import make_grid, save_image

        shown = new_views(view, 160)[[0, 1, 2]]
        rows = []
        for seed in range(min(3, args.seeds)):
            ws = styles_from_seeds(G, [seed], view, truncation=args.truncation)
            with torch.no_grad():
                renders = torch.cat([G.synthesis(ws, shown.resized(size, size)[i], noise_mode="const")["image"]
                                     for i in range(len(shown))])
            renders = torch.nn.functional.interpolate(((renders + 1) / 2).clamp(0, 1), size=160, mode="bilinear")
            field = render_mesh(meshes[seed, "field"], shown)["image"]
            baked = render_mesh(meshes[seed, "renders"], shown)["image"]
            rows.append(torch.cat([renders, field, baked]))
        save_image(make_grid(rows), args.picture)
        print(f"wrote {args.picture}")


if __name__ == "__main__":
    main()
