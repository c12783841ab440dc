"""A measured run keeps the EMA generator of its best measurement in RUN/best/ (checkpoints
rotate out): the lowest FID, or without image metrics the lowest shape MMD; across a resume;
and what the commands make from it is named RUN_best."""

import json

import pytest
import torch
from _gan import stand_in_inception, tiny_train_config
from safetensors.torch import load_file

from render3d.datasets import SynthConfig, generate_synthetic
from render3d.training import load_generator, training_loop
from render3d.training.checkpoint import GENERATOR_FILE, generator_name, read_generator_metadata
from render3d.training.evaluation import RunMetrics

SHAPES = {"shapes": 2, "mesh_resolution": 8, "points": 16, "images": 0}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("best")
    generate_synthetic(root / "synth", SynthConfig(subjects=2, views=2, resolution=32, supersample=1,
                                                   mesh_resolution=16), progress=False)
    stand_in_inception(root / "net.pt")
    return root / "synth", root / "net.pt"


def scripted(monkeypatch, values: list[dict]) -> list[int]:
    """RunMetrics.measure returns the next of `values` (a scripted score per measurement); the
    steps it was called at are returned, filled in as the run goes."""
    steps = []

    def measure(self, G, view, step, *, progress=False):
        steps.append(step)
        self.step = step
        return dict(values[len(steps) - 1]), 0.0

    monkeypatch.setattr(RunMetrics, "measure", measure)
    return steps


def best_of(run):
    return read_generator_metadata(run / "best" / GENERATOR_FILE)["best"]


def same_weights(run, step) -> bool:
    best = load_file(str(run / "best" / GENERATOR_FILE))
    checkpoint = load_file(str(run / "checkpoints" / f"step-{step:07d}" / GENERATOR_FILE))
    return best.keys() == checkpoint.keys() and all(torch.equal(best[k], checkpoint[k]) for k in best)


def test_the_lowest_fid_is_kept_and_a_resume_goes_on_from_it(synth, tmp_path, monkeypatch, capsys):
    data, network = synth
    run = tmp_path / "run"
    metrics = {**SHAPES, "every": 1, "images": 6, "inception": str(network)}
    config = dict(checkpoint_every=1, keep_checkpoints=0, metrics=metrics)
    # FID ranks, not MMD (which would pick step 1); the first of equal scores stays
    steps = scripted(monkeypatch, [{"shapes/mmd": 9, "images/fid": 5}, {"shapes/mmd": 1, "images/fid": 3},
                                   {"shapes/mmd": 9, "images/fid": 4}, {"shapes/mmd": 9, "images/fid": 2},
                                   {"shapes/mmd": 9, "images/fid": 2}])
    training_loop(run, tiny_train_config(data, total_kimg=0.016, **config), progress=False)    # 4 steps
    assert steps == [0, 1, 2, 3, 4]
    best = best_of(run)
    assert (best["metric"], best["value"], best["step"]) == ("images/fid", 2, 3)
    assert best["metrics"] == {"shapes/mmd": 9, "images/fid": 2}
    assert same_weights(run, 3)
    err = capsys.readouterr().err
    assert err.count("the best images/fid so far") == 3          # steps 0, 1 and 3
    assert f"train: step 3: the best images/fid so far; the generator is in {run / 'best' / GENERATOR_FILE}" in err

    # Resumed: a worse score leaves it, a better one replaces it.
    steps = scripted(monkeypatch, [{"images/fid": 2.5}, {"images/fid": 1.5}])
    training_loop(run, tiny_train_config(data, total_kimg=0.024, **config), resume=run, progress=False)
    assert steps == [5, 6]
    assert (best_of(run)["step"], best_of(run)["value"]) == (6, 1.5) and same_weights(run, 6)
    G, meta = load_generator(run / "best")                         # a generator folder like a checkpoint's
    assert meta["training"]["step"] == 6 and generator_name(run / "best") == "run_best"


def test_without_image_metrics_the_lowest_shape_mmd_is_kept_and_nan_never(synth, tmp_path, monkeypatch):
    data, _ = synth
    run = tmp_path / "run"
    scripted(monkeypatch, [{"shapes/mmd": float("nan")}, {"shapes/mmd": 0.7}, {"shapes/mmd": 0.2},
                           {"shapes/empty": 1.0}])
    config = tiny_train_config(data, total_kimg=0.012, checkpoint_every=1, keep_checkpoints=0,
                               metrics={**SHAPES, "every": 1})
    training_loop(run, config, progress=False)                      # 3 steps: measured at 0, 1, 2, 3
    assert (best_of(run)["metric"], best_of(run)["step"]) == ("shapes/mmd", 2) and same_weights(run, 2)


def test_a_fresh_run_replaces_a_best_it_did_not_make(synth, tmp_path, monkeypatch):
    """A best/ left by an earlier run in a folder whose checkpoints were deleted does not rank a
    new run's measurements."""
    data, _ = synth
    run = tmp_path / "run"
    config = tiny_train_config(data, total_kimg=0.004, checkpoint_every=1, metrics={**SHAPES, "every": 1})
    scripted(monkeypatch, [{"shapes/mmd": 0.1}, {"shapes/mmd": 0.2}])
    training_loop(run, config, progress=False)
    assert best_of(run)["value"] == 0.1
    for folder in (run / "checkpoints").iterdir():
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    scripted(monkeypatch, [{"shapes/mmd": 0.5}, {"shapes/mmd": 0.6}])
    training_loop(run, config, progress=False)
    assert best_of(run)["value"] == 0.5


def test_a_real_run_keeps_the_step_of_its_lowest_fid(synth, tmp_path):
    """Unscripted: the kept step is the first with the lowest FID in metrics.jsonl."""
    data, network = synth
    run = tmp_path / "run"
    metrics = {**SHAPES, "every": 1, "images": 6, "inception": str(network)}
    training_loop(run, tiny_train_config(data, total_kimg=0.012, checkpoint_every=1, keep_checkpoints=0,
                                         metrics=metrics), progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    fids = [row["images/fid"] for row in rows]
    expected = rows[fids.index(min(fids))]["step"]
    assert best_of(run)["step"] == expected and best_of(run)["value"] == min(fids)
    if expected > 0:                                                # step 0 has no checkpoint
        assert same_weights(run, expected)


def test_a_damaged_best_is_replaced_when_resumed(synth, tmp_path, monkeypatch):
    data, _ = synth
    run = tmp_path / "run"
    metrics = {**SHAPES, "every": 1}
    scripted(monkeypatch, [{"shapes/mmd": 0.1}, {"shapes/mmd": 0.2}])
    training_loop(run, tiny_train_config(data, total_kimg=0.004, checkpoint_every=1, metrics=metrics), progress=False)
    (run / "best" / GENERATOR_FILE).write_bytes(b"cut off")
    scripted(monkeypatch, [{"shapes/mmd": 0.9}])
    training_loop(run, tiny_train_config(data, total_kimg=0.008, checkpoint_every=1, metrics=metrics), resume=run,
                  progress=False)
    assert (best_of(run)["step"], best_of(run)["value"]) == (2, 0.9) and same_weights(run, 2)
