"""Progressive growing as a run pictures it: the EMA generator's stage (VolumeGAN.set_stage)
travels with its checkpoints, so that image grids, metrics and every command that loads a
checkpoint from early in a run show what was trained, not the untrained blocks above it."""

import json

import imageio.v3 as iio
import numpy as np
from _gan import SIZE, stand_in_inception, tiny_train_config

from render3d.cli.main import main
from render3d.datasets import SynthConfig, generate_synthetic
from render3d.generators.sampling import render_views, styles_from_seeds, view_cameras, views_grid_image
from render3d.training import load_generator, training_loop
from render3d.training.logs import SNAPSHOT_SEEDS, SNAPSHOT_VIEWS
from render3d.visualize import save_image

# The stage each of 5 steps of 4 images trains: 8 px for 8 images, the 16 px block fading in
# over the next 8, then grown (no stage).
GROWING = {"start_resolution": 8, "stage_kimg": 0.008, "fade_kimg": 0.008}
STAGES = [(8, 1.0), (8, 1.0), (16, 0.0), (16, 0.5), None]


def test_checkpoints_grids_and_metrics_of_a_growing_run_show_its_stage(tmp_path, capsys):
    data = tmp_path / "synth"                          # eval generator scores against a synthetic dataset
    generate_synthetic(data, SynthConfig(subjects=3, views=2, resolution=32, supersample=1, mesh_resolution=24),
                       progress=False)
    network = stand_in_inception(tmp_path / "net.pt")
    metrics = {"every": 2, "shapes": 3, "mesh_resolution": 16, "points": 128, "images": 6, "inception": str(network)}
    config = tiny_train_config(data, total_kimg=0.02, checkpoint_every=1, keep_checkpoints=0, image_every=1,
                               progressive=GROWING, metrics=metrics)
    run = tmp_path / "run"
    training_loop(run, config, progress=False)
    assert ("train: progressive growing: 8 px, then 16 px from 0.008 kimg (each fading in over 0.008 kimg); grown "
            "at 0.016 kimg") in capsys.readouterr().err
    rows = {row["step"]: row for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}
    for step, stage in enumerate(STAGES, start=1):
        checkpoint = run / "checkpoints" / f"step-{step:07d}"
        G, meta = load_generator(checkpoint)
        assert G.stage == stage and meta.get("stage") == (stage and dict(zip(("resolution", "blend"), stage)))
        # the grid written at this step is the loaded generator's default picture, which is its stage's
        ws = styles_from_seeds(G, SNAPSHOT_SEEDS, meta["view"])
        cameras = view_cameras(meta["view"], SNAPSHOT_VIEWS, SIZE)
        save_image(views_grid_image(render_views(G, ws, cameras)), tmp_path / "expected.png")
        written = iio.imread(run / "images" / f"step-{step:07d}.png")
        assert np.array_equal(written, iio.imread(tmp_path / "expected.png")), step
        if stage is not None:                           # and not the untrained blocks' picture
            G.set_stage(SIZE, 1.0)
            save_image(views_grid_image(render_views(G, ws, cameras)), tmp_path / "full.png")
            assert np.abs(written.astype(int) - iio.imread(tmp_path / "full.png")).max() > 8, step
        if step in rows:                                # metrics score the stage too, as eval does
            out = tmp_path / f"eval-{step}.json"
            assert main(["eval", "generator", str(checkpoint), str(data), "--shapes", "3", "--mesh-resolution", "16",
                         "--points", "128", "--images", "6", "--inception", str(network), "--out", str(out)]) == 0
            expected = json.loads(out.read_text())["metrics"]
            assert rows[step]["images/fid"] == expected["images/fid"], step
    assert main(["render", "grid", "--checkpoint", str(run / "checkpoints" / "step-0000004"), "--seeds", "0",
                 "--views", "1", "--out", str(tmp_path / "render")]) == 0
    assert ("was saved while progressive growing had reached 16 px (fading in at 0.50): its pictures are that "
            "stage's, up-sampled to 16 px") in capsys.readouterr().err
