"""`render3d eval generator` as a user runs it: 3D metrics of a trained run against the
synthetic dataset's meshes, FID/KID with a stand-in Inception file, and the refusals of what
cannot be scored (bad numbers, a dataset that is none, NaN or empty generators, damaged
references and checkpoints), each before any work and in one line. `trained` is conftest's."""

import json
import shutil

import numpy as np
import pytest
from _cli import run_cli
from _gan import collapsed_generator, diverged_generator, partly_collapsed_generator, stand_in_inception


def test_eval_generator_scores_shapes_against_the_dataset(trained, tmp_path):
    data, run_dir, _ = trained
    out = tmp_path / "eval.json"
    result = run_cli("eval", "generator", str(run_dir), str(data), "--shapes", "3", "--mesh-resolution", "20",
                     "--points", "256", "--inception", str(tmp_path / "absent.pt"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "FID/KID skipped" in result.stdout
    record = json.loads(out.read_text())
    metrics = record["metrics"]
    assert 0 < metrics["shapes/coverage"] <= 1 and metrics["shapes/mmd"] > 0
    assert 0.5 <= metrics["shapes/one_nn_accuracy"] <= 1
    assert record["inputs"]["training"]["step"] == 2


@pytest.mark.parametrize("option, value, message", [
    ("--mesh-resolution", "1", "--mesh-resolution expected an integer >= 2, got 1"),   # was a traceback after loading
    ("--shapes", "0", "--shapes expected an integer >= 1, got 0"),
    ("--images", "1", "--images expected an integer >= 2, got 1"),     # a traceback in KID after the shapes
    ("--max-reference", "0", "--max-reference expected an integer >= 1, got 0"),
])
def test_eval_generator_refuses_bad_numbers_before_any_work(tmp_path, capsys, option, value, message):
    from render3d import DEMO_CHECKPOINT
    from render3d.cli.main import main

    out = tmp_path / "eval.json"
    assert main(["eval", "generator", str(DEMO_CHECKPOINT), str(tmp_path / "absent"), option, value,
                 "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"render3d eval generator: {message}"
    assert not out.exists()


def test_eval_generator_names_a_dataset_that_is_none_as_dataset(tmp_path, capsys):
    """It said SyntheticDataset's argument 'path', which is DATASET on the command line, after the
    results' folder was made."""
    from render3d import DEMO_CHECKPOINT
    from render3d.cli.main import main

    (tmp_path / "empty").mkdir()
    assert main(["eval", "generator", str(DEMO_CHECKPOINT), str(tmp_path / "empty"),
                 "--out", str(tmp_path / "results" / "eval.json")]) == 2
    assert capsys.readouterr().err.strip().startswith(
        f"render3d eval generator: DATASET expected an EG3D dataset (a folder or zip with dataset.json), got no "
        f"dataset.json in {tmp_path / 'empty'}")
    assert not (tmp_path / "results").exists()          # found before the results' folder is made


def test_eval_generator_names_a_generator_whose_densities_are_nan(trained, tmp_path, capsys):
    """A diverged generator (NaN in its density head) was a traceback from deep in marching
    cubes, after the results' folder was made."""
    from render3d.cli.main import main

    diverged = diverged_generator(tmp_path / "diverged.safetensors")
    assert main(["eval", "generator", str(diverged), str(trained[0]), "--shapes", "2",
                 "--out", str(tmp_path / "results" / "eval.json")]) == 2
    assert capsys.readouterr().err.strip() == (
        "render3d eval generator: CHECKPOINT expected a generator whose densities are finite, got one whose density "
        "at the centre of seed 0's subject is nan (did its training diverge?)")
    assert not (tmp_path / "results").exists()


def test_eval_generator_names_a_subject_without_a_surface(trained, tmp_path, capsys):
    """A collapsed generator (density 0 everywhere) was a traceback from marching cubes."""
    from render3d.cli.main import main

    collapsed = collapsed_generator(tmp_path / "collapsed.safetensors")
    assert main(["eval", "generator", str(collapsed), str(trained[0]), "--shapes", "2", "--mesh-resolution", "8",
                 "--out", str(tmp_path / "results" / "eval.json")]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "render3d eval generator: CHECKPOINT expected subjects that have a surface, got none of 2 (seed 0's density "
        "is 0 everywhere inside the generator's box)")
    assert not (tmp_path / "results" / "eval.json").exists()


def test_eval_generator_scores_a_generator_with_some_empty_subjects(trained, tmp_path, capsys):
    """A barely trained generator leaves a few subjects without a surface; eval stopped at the
    first with a refusal. They are named, and scored as covering nothing and told apart."""
    from render3d.cli.main import main
    from render3d.metrics import compare_shape_sets, load_points
    from render3d.metrics.generators import generator_shapes
    from render3d.training import load_generator

    path, empty = partly_collapsed_generator(tmp_path / "partly.safetensors", range(4), 8)
    assert main(["eval", "generator", str(path), str(trained[0]), "--shapes", "4", "--mesh-resolution", "8",
                 "--points", "64", "--out", str(tmp_path / "eval.json")]) == 0
    out = capsys.readouterr().out
    assert (f"render3d eval generator: 2 of 4 subjects have no surface (seeds {empty[0]}, {empty[1]}): they cover no "
            f"reference mesh and count as told apart in 1-NNA (shapes/empty)") in out
    results = json.loads((tmp_path / "eval.json").read_text())
    assert results["settings"]["empty_seeds"] == empty and results["metrics"]["shapes/empty"] == 0.5
    G, meta = load_generator(path)                      # the same numbers from the library, seed by seed
    shapes = [None if seed in empty else generator_shapes(G, [seed], view=meta["view"], resolution=8, points=64)[0]
              for seed in range(4)]
    truth = json.loads((trained[0] / "ground_truth.json").read_text())
    files = [trained[0] / entry["mesh"] for entry in truth["objects"] if entry["kind"] == "object"]
    expected = compare_shape_sets(shapes, [load_points(f, 64, seed=0) for f in files])
    assert {k: results["metrics"][f"shapes/{k}"] for k in expected} == pytest.approx(expected)


def test_eval_generator_names_a_damaged_reference_or_checkpoint(trained, tmp_path, capsys):
    """A reference mesh that cannot be read, a dataset without object meshes and a checkpoint
    that is not one are one line each with exit status 2 (the first two were tracebacks), naming
    the positional CHECKPOINT, not an option."""
    from render3d.cli.main import main

    data, run_dir, _ = trained
    copy = tmp_path / "synth"
    shutil.copytree(data, copy)
    truth = json.loads((copy / "ground_truth.json").read_text())
    mesh = copy / truth["objects"][1]["mesh"]
    mesh.write_text("junk")
    out = tmp_path / "eval.json"
    args = ["--shapes", "1", "--mesh-resolution", "8", "--points", "16", "--out", str(out)]
    assert main(["eval", "generator", str(run_dir), str(copy), *args]) == 2
    assert capsys.readouterr().err.startswith(
        f"render3d eval generator: load_points: argument 'path' expected a mesh or points [N, 3], got {mesh}, which "
        f"cannot be read (")
    (copy / "ground_truth.json").write_text(json.dumps({**truth, "objects": []}))
    assert main(["eval", "generator", str(run_dir), str(copy), *args]) == 2
    assert capsys.readouterr().err.strip() == (
        f"render3d eval generator: {copy} holds no shapes (expected a synthetic dataset or a folder of meshes or .npy "
        f"points)")
    assert main(["eval", "generator", str(tmp_path / "nowhere"), str(data), *args]) == 2
    assert capsys.readouterr().err.strip() == (f"render3d eval generator: CHECKPOINT expected a generator file "
                                               f"(.safetensors), a checkpoint folder or a run folder with "
                                               f"checkpoints, got {tmp_path / 'nowhere'}, which does not exist")
    assert not out.exists()


def test_eval_generator_runs_fid_and_kid_when_the_network_is_there(trained, tmp_path):
    """With a stand-in for the Inception file (same TorchScript interface, colour statistics and
    the image width as features) the image metrics run: the generator's images from the
    dataset's cameras against the dataset's images, box-filtered from 32 px to the generator's
    16 px (unequal widths would add 16^2 to the FID)."""
    network = stand_in_inception(tmp_path / "inception-2015-12-05.pt")
    data, run_dir, _ = trained
    out = tmp_path / "eval.json"
    result = run_cli("eval", "generator", str(run_dir), str(data), "--shapes", "2", "--mesh-resolution", "16",
                     "--points", "128", "--images", "6", "--inception", str(network), "--out", str(out))
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert 0 < record["metrics"]["images/fid"] < 16 and np.isfinite(record["metrics"]["images/kid"])
    assert record["settings"]["images"] == 6 and record["settings"]["resolution"] == 16
    assert record["settings"]["reals"] == "32 px, box-filtered to the generator's 16 px"
