"""Metrics while training (config.metrics): the EMA generator scored as `render3d eval
generator` scores a checkpoint, every few steps, into metrics.jsonl and TensorBoard; and the
generator of the best measurement kept in RUN/best/ (ranked by metrics.best: by default the
lowest FID, or without image metrics the lowest shape MMD), across a resume, and named RUN_best
by the commands."""

import json
import re
import shutil

import pytest
import torch
from _cli import terminal_rows
from _gan import collapsed_generator, nan_after_update, stand_in_inception, tiny_train_config, write_tiny_dataset
from safetensors.torch import load_file

from render3d.cli.main import main
from render3d.datasets import EG3DDataset, SynthConfig, generate_synthetic
from render3d.training import SetupError, load_generator, training_loop
from render3d.training.checkpoint import GENERATOR_FILE, TRAINING_FILE, generator_name, read_generator_metadata
from render3d.training.distributed import Distributed
from render3d.training.evaluation import RunMetrics

SMALL = {"shapes": 3, "mesh_resolution": 16, "points": 128, "images": 6}
SHAPES_ONLY = {"shapes": 2, "mesh_resolution": 8, "points": 16, "images": 0}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A synthetic dataset (32 px, 3 objects with meshes) and the stand-in network."""
    root = tmp_path_factory.mktemp("metrics")
    generate_synthetic(root / "synth", SynthConfig(subjects=3, views=2, resolution=32, supersample=1,
                                                   mesh_resolution=24), progress=False)
    stand_in_inception(root / "net.pt")
    return root / "synth", root / "net.pt"


def rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_run_scores_its_generator_as_eval_generator_does(synth, tmp_path, capsys):
    """Rows at the start, every 2 steps and at the end; each checkpoint's row is what `render3d
    eval generator` gives that checkpoint with the same settings; TensorBoard has them; and the
    weights are those of the same run without metrics (measuring draws no random numbers)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data, network = synth
    metrics = {**SMALL, "every": 2, "inception": str(network)}
    config = tiny_train_config(data, total_kimg=0.02, checkpoint_every=2, keep_checkpoints=0, metrics=metrics)
    training_loop(tmp_path / "run", config, progress=False)      # 5 steps of 4 images
    err = capsys.readouterr().err
    assert "train: metrics every 2 steps into metrics.jsonl: COV/MMD/1-NNA of 3 shapes against 3 meshes, " \
           "FID/KID of 6 images" in err
    assert "" not in terminal_rows(err)[:-1]          # without a bar, no empty line before each said measurement
    logged = rows(tmp_path / "run")
    said = re.findall(r"train: step (\d+): shapes/coverage .*, images/kid \S+ \((\d+\.\d) s\)\n", err)  # "0 s" was said
    assert [int(step) for step, _ in said] == [row["step"] for row in logged]
    assert all(abs(float(seconds) - row["measure_seconds"]) <= 0.051 for (_, seconds), row in zip(said, logged))
    assert [row["step"] for row in logged] == [0, 2, 4, 5]
    keys = ["shapes/coverage", "shapes/mmd", "shapes/one_nn_accuracy", "shapes/empty", "images/fid", "images/kid"]
    assert all(list(row)[2:-1] == keys and row["nimg"] == 4 * row["step"] and row["measure_seconds"] > 0
               for row in logged)
    for row in logged[1:]:
        out = tmp_path / f"eval-{row['step']}.json"
        checkpoint = tmp_path / "run" / "checkpoints" / f"step-{row['step']:07d}"
        assert main(["eval", "generator", str(checkpoint), str(data), "--shapes", "3", "--mesh-resolution", "16",
                     "--points", "128", "--images", "6", "--inception", str(network), "--out", str(out)]) == 0
        expected = json.loads(out.read_text())["metrics"]
        assert {key: row[key] for key in keys} == pytest.approx(expected, rel=1e-9, abs=1e-12), row["step"]
    assert logged[0]["images/fid"] != logged[-1]["images/fid"]     # step 0 is the generator before training
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert [event.step for event in events.Scalars("metrics/images/fid")] == [0, 2, 4, 5]
    assert events.Scalars("metrics/shapes/mmd")[-1].value == pytest.approx(logged[-1]["shapes/mmd"], rel=1e-6)

    training_loop(tmp_path / "plain", tiny_train_config(data, total_kimg=0.02), progress=False)
    with_metrics = load_file(str(tmp_path / "run" / "checkpoints" / "step-0000005" / TRAINING_FILE))
    without = load_file(str(tmp_path / "plain" / "checkpoints" / "step-0000005" / TRAINING_FILE))
    assert [k for k in without if not torch.equal(with_metrics[k], without[k])] == []


def test_a_resumed_run_drops_rows_past_its_checkpoint_and_does_not_repeat_its_start(synth, tmp_path):
    data, network = synth
    metrics = {**SMALL, "every": 2, "images": 0}
    run = tmp_path / "run"
    training_loop(run, tiny_train_config(data, total_kimg=0.016, metrics=metrics), progress=False)   # 4 steps
    with (run / "metrics.jsonl").open("a") as file:                 # as if a process ran on past it, then died
        file.write(json.dumps({"step": 6, "nimg": 24, "shapes/mmd": 1.0}) + "\n" + '{"step": 7, "nim')
    training_loop(run, tiny_train_config(data, total_kimg=0.024, metrics=metrics), resume=run, progress=False)
    logged = rows(run)
    assert [row["step"] for row in logged] == [0, 2, 4, 6]
    assert logged[-1]["shapes/mmd"] != 1.0 and "images/fid" not in logged[-1]


@pytest.mark.parametrize("case", ["missing inception", "junk inception", "nothing to measure", "not synthetic",
                                  "best without inception", "best without meshes"])
def test_a_run_that_cannot_measure_anything_is_refused_before_the_first_step(synth, tmp_path, monkeypatch, case):
    data, network = synth
    monkeypatch.setenv("RENDER3D_INCEPTION", str(tmp_path / "absent.pt"))
    metrics = {**SMALL, "every": 2}
    if case == "missing inception":
        metrics["inception"] = str(tmp_path / "typo.pt")
        said = (f"train: metrics.inception expected the TorchScript Inception file inception-2015-12-05.pt, got no "
                f"file at {tmp_path / 'typo.pt'}")
    elif case == "junk inception":
        metrics["inception"] = str(tmp_path / "junk.pt")
        (tmp_path / "junk.pt").write_text("junk")
        said = (f"train: metrics: InceptionFeatures: argument 'path' expected a TorchScript file "
                f"(inception-2015-12-05.pt), got {tmp_path / 'junk.pt'} which torch.jit.load cannot read")
    elif case == "nothing to measure":
        metrics["shapes"] = 0
        said = (f"train: metrics.every=2 expected something to measure, got nothing: metrics.shapes=0, and no "
                f"Inception file at {tmp_path / 'absent.pt'} (metrics.inception=FILE or $RENDER3D_INCEPTION names "
                f"one)")
    elif case == "not synthetic":
        data = write_tiny_dataset(tmp_path / "posed")
        said = (f"train: metrics.every=2 expected something to measure, got nothing: data.path {data} is not a "
                f"synthetic dataset with meshes (`render3d dataset synth`), and no Inception file at")
    elif case == "best without inception":                         # shapes are measured, KID cannot be
        metrics["best"] = "images/kid"
        said = (f"train: metrics.best=images/kid expected FID/KID to be measured, got no Inception file at "
                f"{tmp_path / 'absent.pt'} (metrics.inception=FILE or $RENDER3D_INCEPTION names one)")
    else:                                                           # FID/KID are measured, coverage cannot be
        data = write_tiny_dataset(tmp_path / "posed")
        metrics.update(inception=str(network), best="shapes/coverage")
        said = (f"train: metrics.best=shapes/coverage expected shapes to be measured, got none: data.path {data} "
                f"is not a synthetic dataset with meshes (`render3d dataset synth`)")
    with pytest.raises(SetupError) as caught:
        training_loop(tmp_path / "run", tiny_train_config(data, metrics=metrics), progress=False)
    assert str(caught.value).startswith(said), str(caught.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("key, value, expected", [
    ("every", -1, "an int >= 0"), ("mesh_resolution", 1, "an int >= 2"), ("points", 0, "an int >= 1"),
    ("max_reference", 0, "null or an int >= 1"),
    ("images", 1, "0 or an int >= 2 (FID's covariances need two images)")])
def test_metrics_settings_out_of_range_are_named_by_their_key(synth, key, value, expected):
    with pytest.raises(ValueError, match=rf"^config\.metrics\.{key}: expected {re.escape(expected)}, got {value}$"):
        tiny_train_config(synth[0], metrics={key: value})


@pytest.mark.parametrize("settings, expected", [
    ({"best": "fid"}, "'' or one of 'images/fid', 'images/kid', 'shapes/mmd', 'shapes/coverage', "
                      "'shapes/one_nn_accuracy', got 'fid'"),
    ({"best": "images/kid", "images": 0}, "a metric that is measured (metrics.images=0 measures no images/...), "
                                          "got 'images/kid'"),
    ({"best": "shapes/mmd", "shapes": 0}, "a metric that is measured (metrics.shapes=0 measures no shapes/...), "
                                          "got 'shapes/mmd'")])
def test_metrics_best_must_name_a_measured_metric(synth, settings, expected):
    with pytest.raises(ValueError, match=rf"^config\.metrics\.best: expected {re.escape(expected)}$"):
        tiny_train_config(synth[0], metrics=settings)


def test_a_generator_without_any_surface_yet_scores_all_shapes_empty(synth, tmp_path):
    """Early in training no subject may have a surface: the row says so instead of stopping
    the run (`render3d eval generator` refuses such a generator)."""
    data, network = synth
    G, meta = load_generator(collapsed_generator(tmp_path / "collapsed.safetensors"))
    config = tiny_train_config(data, metrics={**SMALL, "every": 1, "inception": str(network)}).metrics
    measured, seconds = RunMetrics(config, str(data), EG3DDataset(data)).measure(G, meta["view"], 3)
    assert measured["shapes/empty"] == 1.0 and "shapes/coverage" not in measured
    assert measured["images/fid"] > 0 and seconds > 0


def test_a_damaged_reference_mesh_is_said_before_the_first_step(synth, tmp_path):
    data = tmp_path / "synth"
    shutil.copytree(synth[0], data)
    mesh = data / json.loads((data / "ground_truth.json").read_text())["objects"][1]["mesh"]
    mesh.write_text("junk")
    config = tiny_train_config(data, metrics={**SMALL, "every": 2, "images": 0})
    with pytest.raises(SetupError, match=rf"^train: metrics: load_points: argument 'path' expected a mesh or points "
                                         rf"\[N, 3\], got {re.escape(str(mesh))}, which cannot be read"):
        training_loop(tmp_path / "run", config, progress=False)
    assert not (tmp_path / "run").exists()


def test_a_diverged_generator_is_said_as_such_instead_of_measured(synth, tmp_path, monkeypatch):
    """G's weights turn NaN in step 2 behind the gradient guard's back, and the EMA's with them:
    the measurement of step 2 stops training as a checkpoint would, naming the tensors, instead
    of failing in marching cubes on NaN densities."""
    nan_after_update(monkeypatch, 3, lambda G: G.volume.const)     # G's update in step 2
    config = tiny_train_config(synth[0], metrics={**SMALL, "every": 2, "images": 0})
    with pytest.raises(FloatingPointError, match=r"^train: at step 2 weights are not finite \(NaN or inf\): "
                                                 r"G\.volume\.const, G_ema\.volume\.const; no metrics measured\. "
                                                 r"No checkpoint was written"):
        training_loop(tmp_path / "run", config, progress=False)
    assert [row["step"] for row in rows(tmp_path / "run")] == [0]


def test_shares_of_the_processes_merge_back_in_order(monkeypatch):
    """Process r measures subjects r, r + world, ... (unequal shares when world does not
    divide the count, none for a process past the count); process 0 puts them back in seed
    order. The gather itself is faked here (two real processes: test_two_processes_match_one)."""
    for count, world in ((7, 3), (2, 3), (5, 1)):
        processes = [Distributed(rank, world) for rank in range(world)]
        made = [[f"subject {i}" for i in process.share(count)] for process in processes]
        assert sorted(i for process in processes for i in process.share(count)) == list(range(count))
        monkeypatch.setattr(Distributed, "gather", lambda self, value: made if self.main else None)
        assert processes[0].gather_shares(made[0], count) == [f"subject {i}" for i in range(count)]
        assert all(process.gather_shares(part, count) is None for process, part in zip(processes[1:], made[1:]))
    assert [list(Distributed(rank, 3).share(7)) for rank in range(3)] == [[0, 3, 6], [1, 4], [2, 5]]


def test_a_measurement_shows_a_bar_over_its_subjects_while_it_runs(synth, tmp_path, capsys):
    """With the training bar on, a measurement shows its own over the shapes and images it
    makes (they can take minutes on large settings), gone when it is done."""
    data, network = synth
    metrics = {**SMALL, "every": 2, "inception": str(network)}
    training_loop(tmp_path / "run", tiny_train_config(data, total_kimg=0.008, metrics=metrics), progress=True)
    err = capsys.readouterr().err
    for step in (0, 2):
        assert re.search(rf"metrics at step {step}: +\d+%\|[^|]*\| \d/9 ", err), err[-2000:]   # 3 shapes + 6 images
    # and its lines go above the training bar, which stays at the bottom: a newline before each
    # left a copy of the bar behind on the terminal, above every line said while it ran
    rows = [row for row in terminal_rows(err) if row]
    assert [row for row in rows if "%|" in row] == rows[-1:], "\n".join(rows)
    said = [row[:15] for row in rows if row.startswith("train: step")]
    assert said == ["train: step 0: ", "train: step 0: ", "train: step 2: ", "train: step 2: "]   # scores, best


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
    metrics = {**SHAPES_ONLY, "every": 1, "images": 6, "inception": str(network)}
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
    err = capsys.readouterr().err                                  # 2.5 at step 5 ranked against step 3's 2
    assert "train: step 5: the best" not in err and "train: step 6: the best images/fid so far" in err
    G, meta = load_generator(run / "best")                         # a generator folder like a checkpoint's
    assert meta["training"]["step"] == 6 and generator_name(run / "best") == "run_best"


def test_without_image_metrics_the_lowest_shape_mmd_is_kept_and_nan_never(synth, tmp_path, monkeypatch):
    data, _ = synth
    run = tmp_path / "run"
    scripted(monkeypatch, [{"shapes/mmd": float("nan")}, {"shapes/mmd": 0.7}, {"shapes/mmd": 0.2},
                           {"shapes/empty": 1.0}])
    config = tiny_train_config(data, total_kimg=0.012, checkpoint_every=1, keep_checkpoints=0,
                               metrics={**SHAPES_ONLY, "every": 1})
    training_loop(run, config, progress=False)                      # 3 steps: measured at 0, 1, 2, 3
    assert (best_of(run)["metric"], best_of(run)["step"]) == ("shapes/mmd", 2) and same_weights(run, 2)


def test_a_fresh_run_replaces_a_best_it_did_not_make(synth, tmp_path, monkeypatch, capsys):
    """A best/ left by an earlier run in a folder whose checkpoints were deleted does not rank a
    new run's measurements; the run says so, and says when it leaves that file there."""
    data, _ = synth
    run = tmp_path / "run"
    config = tiny_train_config(data, total_kimg=0.004, checkpoint_every=1, metrics={**SHAPES_ONLY, "every": 1})
    scripted(monkeypatch, [{"shapes/mmd": 0.1}, {"shapes/mmd": 0.2}])
    training_loop(run, config, progress=False)
    assert best_of(run)["value"] == 0.1
    earlier = f"train: {run / 'best'} holds the best generator of an earlier run in this folder; "
    assert earlier not in capsys.readouterr().err
    shutil.rmtree(run / "checkpoints")
    scripted(monkeypatch, [{"shapes/mmd": 0.5}, {"shapes/mmd": 0.6}])
    training_loop(run, config, progress=False)
    assert best_of(run)["value"] == 0.5
    assert earlier + "this run's first ranked measurement replaces it" in capsys.readouterr().err
    shutil.rmtree(run / "checkpoints")
    training_loop(run, tiny_train_config(data, total_kimg=0.004, checkpoint_every=1), progress=False)
    assert best_of(run)["value"] == 0.5
    assert earlier + "this run measures nothing (metrics.every=0), so it stays there, not this run's" in \
        capsys.readouterr().err


def test_a_real_run_keeps_the_step_of_its_lowest_fid(synth, tmp_path):
    """Unscripted: the kept step is the first with the lowest FID in metrics.jsonl."""
    data, network = synth
    run = tmp_path / "run"
    metrics = {**SHAPES_ONLY, "every": 1, "images": 6, "inception": str(network)}
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
    metrics = {**SHAPES_ONLY, "every": 1}
    scripted(monkeypatch, [{"shapes/mmd": 0.1}, {"shapes/mmd": 0.2}])
    training_loop(run, tiny_train_config(data, total_kimg=0.004, checkpoint_every=1, metrics=metrics), progress=False)
    (run / "best" / GENERATOR_FILE).write_bytes(b"cut off")
    scripted(monkeypatch, [{"shapes/mmd": 0.9}])
    training_loop(run, tiny_train_config(data, total_kimg=0.008, checkpoint_every=1, metrics=metrics), resume=run,
                  progress=False)
    assert (best_of(run)["step"], best_of(run)["value"]) == (2, 0.9) and same_weights(run, 2)


@pytest.mark.parametrize("metric, values, step", [
    ("images/kid", [0.3, 0.1, 0.2, 0.1], 1),                      # lower is better, the first of equals stays
    ("shapes/coverage", [0.2, 0.5, 0.7, 0.6], 2),                 # higher is better
    ("shapes/one_nn_accuracy", [0.875, 0.25, 0.625, 0.375], 2)])   # closest to 50% is best (0.625 before 0.375)
def test_metrics_best_names_what_ranks_the_best(synth, tmp_path, monkeypatch, capsys, metric, values, step):
    data, network = synth
    run = tmp_path / "run"
    metrics = {**SHAPES_ONLY, "every": 1, "images": 6, "inception": str(network), "best": metric}
    scripted(monkeypatch, [{"shapes/mmd": 0.1 * i, "images/fid": 10 - i, metric: value} for i, value in
                           enumerate(values)])
    training_loop(run, tiny_train_config(data, total_kimg=0.012, checkpoint_every=1, keep_checkpoints=0,
                                         metrics=metrics), progress=False)    # 3 steps: measured at 0..3
    assert (best_of(run)["metric"], best_of(run)["value"], best_of(run)["step"]) == (metric, values[step], step)
    if step:
        assert same_weights(run, step)
    assert f"the generator of the best {metric} goes to best/" in capsys.readouterr().err


def test_the_header_names_what_ranks_the_best_by_default(synth, tmp_path, monkeypatch, capsys):
    data, _ = synth
    scripted(monkeypatch, [{"shapes/mmd": 0.1}] * 2)
    config = tiny_train_config(data, total_kimg=0.004, metrics={**SHAPES_ONLY, "every": 1})    # 1 step
    training_loop(tmp_path / "run", config, progress=False)
    assert "COV/MMD/1-NNA of 2 shapes against 3 meshes, no FID/KID (metrics.images=0); the generator of the best " \
           "shapes/mmd goes to best/" in capsys.readouterr().err


def test_a_resume_that_ranks_by_another_metric_starts_its_best_over(synth, tmp_path, monkeypatch):
    data, network = synth
    run = tmp_path / "run"
    metrics = {**SHAPES_ONLY, "every": 1, "images": 6, "inception": str(network)}
    scripted(monkeypatch, [{"images/fid": 5, "images/kid": 0.1}, {"images/fid": 4, "images/kid": 0.2}])
    training_loop(run, tiny_train_config(data, total_kimg=0.004, checkpoint_every=1, metrics=metrics),
                  progress=False)
    assert (best_of(run)["metric"], best_of(run)["step"]) == ("images/fid", 1)
    scripted(monkeypatch, [{"images/fid": 3, "images/kid": 0.3}])      # a KID worse than step 0's
    training_loop(run, tiny_train_config(data, total_kimg=0.008, checkpoint_every=1,
                                         metrics={**metrics, "best": "images/kid"}), resume=run, progress=False)
    assert (best_of(run)["metric"], best_of(run)["value"], best_of(run)["step"]) == ("images/kid", 0.3, 2)
