"""config.batch_gpu: each process's share of the batch in passes whose gradients add up. Two
passes of 2 images give the weights, losses and gradient norms of one pass of 4, with every
loss term on (R1, path length, opacity entropy, style mixing, minibatch stddev)."""

import json

import pytest
import torch
import yaml
from _cli import run_cli
from _gan import tiny_config, tiny_train_config
from safetensors.torch import load_file

from render3d.training import SetupError, training_loop
from render3d.training.checkpoint import TRAINING_FILE
from render3d.training.config import resolve_config
from render3d.training.step import passes

# In-model randomness (jitter, noise) is drawn per pass, so it is off; with pl_decay 0 the
# path-length mean stays put (it moves once per pass, not once per step).
LOSS = {"r1_gamma": 1.0, "r1_interval": 2, "pl_weight": 1.0, "pl_interval": 2, "pl_decay": 0.0, "style_mixing": 0.5,
        "opacity_entropy": 0.1}
STATS = ("loss/G", "loss/D", "loss/r1", "loss/path_length", "loss/opacity_entropy", "grad_norm/G", "grad_norm/D",
         "scores/real", "scores/fake")


def passes_config(data, batch_gpu, device="cpu"):
    config = tiny_config(data, total_kimg=0.016, checkpoint_every=2, keep_checkpoints=0, log_every=1, loss=LOSS,
                         batch_gpu=batch_gpu, device=device)
    config["generator"].update(jitter=False, use_noise=False)
    return resolve_config(config)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_passes_of_batch_gpu_images_train_as_one_pass(data, tmp_path, capsys, device):
    tolerance, rel = (1e-5, 1e-4) if device == "cpu" else (1e-4, 1e-3)     # GPU kernels' atomic sums: any order
    runs = {}
    for batch_gpu in (None, 2):
        run = tmp_path / f"batch_gpu_{batch_gpu}"
        training_loop(run, passes_config(data, batch_gpu, device), progress=False)      # 4 steps of 4 images
        runs[batch_gpu] = run
    assert f"train: volumegan at 16 px, batch 4 on 1 {device.upper()} process in passes of 2, " in \
        capsys.readouterr().err
    weights = {batch_gpu: load_file(str(run / "checkpoints" / "step-0000004" / TRAINING_FILE))
               for batch_gpu, run in runs.items()}
    one, two = weights[None], weights[2]
    worst = {k: float((one[k] - two[k]).abs().max()) for k in one}
    assert max(worst.values()) < tolerance, sorted(worst.items(), key=lambda kv: -kv[1])[:5]
    earlier = load_file(str(runs[2] / "checkpoints" / "step-0000002" / TRAINING_FILE))
    for key in ("G.mapping_network.layers.0.weight", "G.mapping_network.w_avg"):   # it learns through the passes
        assert not torch.equal(earlier[key], two[key]), key
    rows = {batch_gpu: [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
            for batch_gpu, run in runs.items()}
    assert [row["step"] for row in rows[2]] == [1, 2, 3, 4]
    for a, b in zip(rows[None], rows[2]):
        for key in STATS:
            if key in a or key in b:
                assert b[key] == pytest.approx(a[key], rel=rel, abs=1e-6), (a["step"], key)
    assert {key for row in rows[2] for key in row} >= set(STATS)                 # every term ran


def test_passes_split_a_share_evenly():
    assert passes(8, None) == [slice(0, 8)]
    assert passes(8, 2) == [slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8)]
    assert passes(8, 8) == [slice(0, 8)]


@pytest.mark.parametrize("value", [3, 0, 8])
def test_batch_gpu_must_divide_the_batch(data, value):
    with pytest.raises(ValueError, match=rf"^config\.batch_gpu: expected null or a divisor of config\.batch \(4\), "
                                         rf"got {value}$"):
        tiny_train_config(data, batch_gpu=value)


def test_under_torchrun_batch_gpu_must_divide_each_process_share(data, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data, batch=4, batch_gpu=4)))
    result = run_cli("train", config, "--out", tmp_path / "run", "--no-progress", torchrun=True)
    assert result.returncode != 0
    assert result.stderr.count("render3d train: config.batch_gpu expected a divisor of each process's 2 images "
                               "(config.batch 4 over 2 processes), got 4") == 1, result.stderr[-3000:]
    assert not (tmp_path / "run").exists()


def test_minibatch_stddev_groups_must_fit_a_pass(data, tmp_path):
    """Groups of 3 divide the share of 12 images, not a pass of 4."""
    config = tiny_config(data, batch=12, batch_gpu=4)
    config["discriminator"]["mbstd_group"] = 3
    with pytest.raises(SetupError, match=r"discriminator\.mbstd_group expected a divisor of the 4 images that each "
                                         r"process scores at once \(its share of batch, or batch_gpu\)"):
        training_loop(tmp_path / "run", resolve_config(config), progress=False)
    config["batch_gpu"] = None
    training_loop(tmp_path / "run", resolve_config(config), max_steps=1, progress=False)
