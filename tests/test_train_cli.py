"""`render3d train`, and `render`, `export-mesh` and `eval generator` from its checkpoint, as a
user runs them: on a tiny synthetic dataset with ground-truth meshes and a tiny VolumeGAN
(conftest's `trained`). `eval generator`'s scores and refusals: test_eval_generator_cli.py."""

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import yaml
from _cli import run_cli, start_cli
from _gan import tiny_config, tiny_generator
from _storage import size_limit

from render3d.mesh import load_mesh


@pytest.fixture(scope="module")
def conditioned(trained, tmp_path_factory):
    """A 2-step run of a tiny camera-conditioned VolumeGAN (c_dim=25, as EG3D) with image
    grids and an orbit video, on the same data."""
    data = trained[0]
    root = tmp_path_factory.mktemp("conditioned")
    config = tiny_config(data, total_kimg=0.008, image_every=1, video_every=2)
    config["generator"]["c_dim"] = 25
    (root / "tiny.yaml").write_text(yaml.safe_dump(config))
    result = run_cli("train", str(root / "tiny.yaml"), "--out", str(root / "run"), "--no-progress")
    assert result.returncode == 0, result.stderr
    return root / "run"


def test_a_camera_conditioned_generator_works_wherever_a_seed_is_sampled(trained, conditioned, tmp_path):
    """Training snapshots, render, export-mesh, eval and the viewer map its seeds with the
    front view's camera label (styles_from_seeds)."""
    import torch
    from render3d_viewer.sources import open_source

    from render3d.cameras import Cameras

    images = conditioned / "images"
    assert (images / "step-0000001.png").is_file() and (images / "orbit-0000002.mp4").is_file()
    result = run_cli("render", "grid", "--checkpoint", str(conditioned), "--seeds", "0-1", "--views", "2",
                     "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    result = run_cli("export-mesh", "--checkpoint", str(conditioned), "--resolution", "20",
                     "--out", str(tmp_path / "m.glb"))
    assert result.returncode == 0, result.stderr
    result = run_cli("eval", "generator", str(conditioned), str(trained[0]), "--shapes", "2",
                     "--mesh-resolution", "20", "--points", "128", "--inception", str(tmp_path / "absent.pt"),
                     "--out", str(tmp_path / "eval.json"))
    assert result.returncode == 0, result.stderr
    source = open_source(conditioned)
    cameras = Cameras.look_at(torch.tensor([[0.0, 0.0, 2.4]]), torch.zeros(1, 3), width=16, height=16, fov_degrees=32.0)
    assert source.render(cameras, "rgb", {"seed": 1}, lambda: False)["image"].shape[-2:] == (16, 16)


def test_train_writes_a_run_folder(trained):
    data, run_dir, result = trained
    checkpoint = run_dir / "checkpoints" / "step-0000002"
    assert f"render3d train: wrote {checkpoint.resolve()}" in result.stdout
    assert f"train: volumegan at 16 px, batch 4 on 1 CPU process, to 0.008 kimg, into {run_dir}" in result.stderr
    assert f"train: data: 6 images (12 with x-flips) of 32 px in {data}, box-filtered to 16 px; cameras from " \
        "its labels" in result.stderr
    assert f"train: watch it with `tensorboard --logdir {run_dir / 'tensorboard'}`" in result.stderr
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["generator"]["feature_dim"] == 8
    lines = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]
    assert all(np.isfinite(line["loss/G"]) and np.isfinite(line["loss/D"]) for line in lines)


def test_train_rejects_unknown_keys_and_presets(tmp_path):
    result = run_cli("train", "volumegan/synth64", "generator.widht=3", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "render3d train: generator: unknown key 'widht'; valid keys: z_dim, w_dim" in result.stderr
    result = run_cli("train", "volumegan/nope", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "CONFIG expected a YAML file or a preset (volumegan/ffhq256, volumegan/synth64), got 'volumegan/nope'" \
        in result.stderr


def test_a_run_given_as_config_is_pointed_at_resume(trained, tmp_path, capsys):
    """`render3d train RUN` was told that --out was missing, then that RUN is no YAML file."""
    from render3d.cli.main import main

    run_dir = trained[1]
    checkpoint = run_dir / "checkpoints" / "step-0000002"
    for config, what in ((run_dir, "a run folder with checkpoints"), (checkpoint, "a checkpoint")):
        for out in ([], ["--out", str(tmp_path / "out")]):
            assert main(["train", str(config), *out]) == 2
            assert capsys.readouterr().err.strip() == (
                f"render3d train: CONFIG expected a YAML file or a preset (e.g. volumegan/synth64), got "
                f"{str(config)!r}, {what}: to continue training it, pass --resume {config}")
    assert not (tmp_path / "out").exists()
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "out")]) == 2   # a folder without checkpoints
    assert capsys.readouterr().err.strip() == ("render3d train: CONFIG expected a YAML file or a preset "
                                               f"(volumegan/ffhq256, volumegan/synth64), got {str(tmp_path)!r}")


def test_train_refuses_what_it_cannot_train_on_before_writing_anything(trained, tmp_path, capsys):
    """Each case fails with exit status 2 and one line naming the key or option, without a
    traceback, without leaving the --out folder behind and without touching an existing run
    (a fresh run into it would have overwritten its checkpoints)."""
    from render3d.cli.main import main

    data, run_dir, _ = trained                          # 32 px images; the tiny generator makes 16 px
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data)))
    absent, empty, out = tmp_path / "absent", tmp_path / "empty", tmp_path / "run"
    empty.mkdir()
    two = tmp_path / "two"                              # checkpoints after steps 1 and 2
    assert main(["train", str(config), "--out", str(two), "--max-steps", "1", "--no-progress"]) == 0
    assert main(["train", str(config), "--out", str(two), "--resume", str(two), "--max-steps", "2",
                 "--no-progress"]) == 0
    capsys.readouterr()
    cases = [
        ([f"data.path={absent}"], f"render3d train: data.path expected an EG3D dataset (a folder or zip with "
         f"dataset.json), got '{absent}' (nothing there): pass data.path=PATH, or write a synthetic one with "
         f"`render3d dataset synth {absent}`"),
        # a relative path is made absolute, so it is said with the folder it was taken relative to
        (["data.path=no/such/data"], f"got '{Path.cwd() / 'no/such/data'}' (nothing there): pass data.path=PATH"),
        ([f"data.path={empty}"], f"render3d train: data.path expected an EG3D dataset (a folder or zip with "
         f"dataset.json), got no dataset.json in {empty}\n"),
        (["generator.resolution=64", "discriminator.resolution=64"], "render3d train: data.path expected images of "
         "at least the generator's 64 px (smaller ones would be up-sampled), got 32 x 32 in "),
        (["progressive.start_resolution=12"], "render3d train: progressive.start_resolution expected 0 or one of "
         "8, 16 (the generator's resolutions), got 12"),
        (["discriminator.mbstd_group=3"], "render3d train: discriminator.mbstd_group expected a divisor of the 4 "
         "images that each process scores at once (its share of batch, or batch_gpu), or a number above it, got 3"),
        (["generator.c_dim=7"], "render3d train: generator.c_dim expected 0 (no camera conditioning) or 25 (the "
         "camera labels' length, as EG3D), got 7"),
        (["generator.n_coarse=0"], "render3d train: generator.n_coarse: expected a "
         "positive int, got 0"),
        (["discriminator.resolution=32"],
         "render3d train: discriminator.resolution expected the generator's output size 16, got 32"),
        (["--resume", str(tmp_path)], "render3d train: --resume expected a checkpoint folder (RUN/checkpoints/step-N) "
         f"or a run folder with checkpoints, got '{tmp_path}' (no complete checkpoint in it)"),
        (["--resume", str(run_dir), "generator.feature_dim=4"], "render3d train: resume: the checkpoint "
         f"{run_dir / 'checkpoints' / 'step-0000002'} does not fit this config's networks (resume with the config "
         f"it was trained with, which {run_dir / 'checkpoints' / 'step-0000002' / 'state.json'} holds: `render3d "
         f"train --resume` without CONFIG does): Error(s) in loading state_dict for VolumeGAN: size mismatch for "
         "feature_head.weight"),
        # a resumed run's refusal ends with what its config changes from the checkpoint's: often why
        (["--resume", str(run_dir), "generator.feature_dim=4"], " (resumed with settings changed from the config it "
         "was trained with: generator.feature_dim 8 -> 4, total_kimg 0.008 -> 0.032, log_every 1 -> 2)\n"),
        (["--resume", str(run_dir), f"data.path={absent}"], "(nothing there): pass data.path=PATH, or write a "
         f"synthetic one with `render3d dataset synth {absent}` (resumed with settings changed from the config it "
         f"was trained with: data.path '{data}' -> '{absent}', total_kimg 0.008 -> 0.032, log_every 1 -> 2)\n"),
        (["--out", str(run_dir)], f"render3d train: the run folder {run_dir} already holds checkpoints (newest: "
         f"step-0000002): continue that run with --resume {run_dir}, or train into another folder"),
        (["--out", str(two), "--resume", str(two / "checkpoints" / "step-0000001")],
         f"render3d train: the run folder {two} holds checkpoints past the one resumed (step-0000001): "
         f"step-0000002; move them out of {two / 'checkpoints'} or resume into another folder"),
        (["--out", str(two), "--resume", str(run_dir)], f"render3d train: the run folder {two} holds checkpoints of "
         f"another run (newest: step-0000002) than the one resumed ({run_dir / 'checkpoints' / 'step-0000002'}): "
         f"resume into that run's folder (--out {run_dir}) or into a folder without checkpoints"),
    ]
    before = {run: sorted(p.relative_to(run) for p in run.rglob("*")) for run in (run_dir, two)}
    for args, message in cases:
        assert main(["train", str(config), "--out", str(out), *args, "--no-progress"]) == 2, args
        stderr = capsys.readouterr().err
        assert message in stderr and len(stderr.strip().splitlines()) == 1, stderr
        assert not out.exists(), args
    assert {run: sorted(p.relative_to(run) for p in run.rglob("*")) for run in (run_dir, two)} == before


def test_under_torchrun_a_refusal_is_said_once(trained, tmp_path):
    data = trained[0]
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data, batch=3)))
    result = run_cli("train", config, "--out", tmp_path / "run", "--no-progress", torchrun=True)
    assert result.returncode != 0
    assert result.stderr.count("render3d train: config.batch expected a multiple of the 2 processes, got 3") == 1, \
        result.stderr[-3000:]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("case", ["dataset", "resume", "config", "resume-config"])
def test_under_torchrun_one_process_refusing_stops_them_all(trained, tmp_path, case):
    """Inputs that differ between machines (a dataset, checkpoint or config copied to some only):
    the process that refuses says why through process 0, and none is left waiting for it. A
    config (or, without one, the resumed checkpoint's) is read before the device it names is
    taken: process 1's refusal of it was silent, and torchrun stopped process 0 unexplained."""
    data, run_dir, _ = trained
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data)))
    absent = tmp_path / "absent"
    args = {"dataset": [str(config), f"data.path={absent}"], "resume": [str(config), "--resume", str(absent)],
            "config": [str(absent)], "resume-config": ["--resume", str(absent)]}[case]
    usual = {"dataset": [str(config)], "resume": [str(config), "--resume", str(run_dir)], "config": [str(config)],
             "resume-config": ["--resume", str(run_dir)]}[case]
    launcher = tmp_path / "per_rank.py"                 # process 1 alone gets the missing path
    launcher.write_text("import os, sys\nfrom render3d.cli.main import main\n"
                        f"words = {args!r} if os.environ['RANK'] == '1' else {usual!r}\n"
                        "sys.exit(main(['train', *words, *sys.argv[1:]]))\n")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(launcher), "--out", str(tmp_path / "run"), "--no-progress"],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode != 0
    missing = (f"render3d train: --resume expected a checkpoint folder (RUN/checkpoints/step-N) or a run folder with "
               f"checkpoints, got '{absent}' (nothing there)")
    said = {"dataset": f"render3d train: data.path expected an EG3D dataset (a folder or zip with dataset.json), "
                       f"got '{absent}' (nothing there)",
            "resume": missing, "resume-config": missing,
            "config": f"render3d train: CONFIG expected a YAML file or a preset (volumegan/ffhq256, "
                      f"volumegan/synth64), got '{absent}'"}[case]
    lines = [line for line in result.stderr.splitlines() if line.startswith("render3d train:")]
    assert len(lines) == 1 and lines[0].startswith(said), result.stderr[-3000:]
    assert lines[0].endswith(f"(said by process 1 of 2, on {socket.gethostname()})"), lines
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("extra, said", [
    ([], "where the run ends (total_kimg=0.008); pass a larger total_kimg (an override: total_kimg=N) to train on"),
    (["--max-steps", "1"], "where the run ends (--max-steps 1); pass a larger --max-steps to train on"),
])
def test_resuming_a_finished_run_writes_nothing(trained, tmp_path, capsys, extra, said):
    """Resuming a run that is already where it ends (its total_kimg, or a --max-steps it is past)
    says so and leaves the checkpoint as it is; it rewrote it and said "wrote"."""
    from render3d.cli.main import main

    data, run_dir, _ = trained
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    checkpoint = run / "checkpoints" / "step-0000002"
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in checkpoint.iterdir()}
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data, total_kimg=0.008)))
    assert main(["train", str(config), "--out", str(run), "--resume", str(run), "--no-progress", *extra]) == 0
    out, err = capsys.readouterr()
    assert f"train: nothing to train: {checkpoint} is at step 2 (0.008 kimg), {said}" in err
    assert out.splitlines()[0] == f"render3d train: nothing written; the checkpoint is {checkpoint.resolve()}"
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in checkpoint.iterdir()} == before
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-0000002"]


def test_resume_without_config_continues_with_the_checkpoints_own(trained, tmp_path, capsys):
    """`render3d train --resume RUN` (no CONFIG, no --out) continues RUN with the config its
    checkpoint was trained with, overrides on top: the same weights as resuming with that config
    given, and the settings that differ from the checkpoint's are listed."""
    from safetensors.torch import load_file

    from render3d.cli.main import main

    data, run_dir, _ = trained                          # trained by CONFIG tiny.yaml plus log_every=1
    own, given = tmp_path / "own", tmp_path / "given"
    for run in (own, given):
        shutil.copytree(run_dir, run)
    assert main(["train", "--resume", str(own), "total_kimg=0.016", "--max-steps", "3", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"render3d train: wrote {(own / 'checkpoints' / 'step-0000003').resolve()}"
    assert "train: 1 setting changed from the config step-0000002 was trained with: total_kimg 0.008 -> 0.016\n" \
        in err
    config = tmp_path / "tiny.yaml"                     # the same config, written out; log_every differs
    config.write_text(yaml.safe_dump(tiny_config(data, total_kimg=0.016)))
    assert main(["train", str(config), "--resume", str(given), "--out", str(given), "--max-steps", "3",
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert ("train: 2 settings changed from the config step-0000002 was trained with: total_kimg 0.008 -> 0.016, "
            "log_every 1 -> 2\n") in err
    ours, theirs = (load_file(str(run / "checkpoints" / "step-0000003" / "training.safetensors"))
                    for run in (own, given))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert yaml.safe_load((own / "config.yaml").read_text())["total_kimg"] == 0.016
    assert main(["train", "--resume", str(own), "--no-progress"]) == 0          # the config as it is: no list
    out, err = capsys.readouterr()
    assert f"wrote {(own / 'checkpoints' / 'step-0000004').resolve()}" in out
    assert "from step 3 (0.012 kimg)" in err and "changed from the config" not in err


def test_a_relative_data_path_is_kept_absolute_so_resume_works_from_anywhere(trained, tmp_path, capsys,
                                                                             monkeypatch):
    """data.path typed relative to the folder training starts in is saved absolute (config.yaml,
    state.json), so `render3d train --resume RUN` from another folder finds the dataset; it
    was refused there, as the relative path pointed nowhere."""
    from render3d.cli.main import main

    data, _, _ = trained
    shutil.copytree(data, tmp_path / "project" / "data")
    (tmp_path / "elsewhere").mkdir()
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(Path("data"), total_kimg=0.016)))
    monkeypatch.chdir(tmp_path / "project")
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--max-steps", "1", "--no-progress"]) == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["data"]["path"]
    assert saved == str(tmp_path / "project" / "data")
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "run"), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert f"wrote {(tmp_path / 'run' / 'checkpoints' / 'step-0000004').resolve()}" in out
    assert f"of 32 px in {tmp_path / 'project' / 'data'}, box-filtered" in err and "changed from the config" not in err


@pytest.mark.parametrize("words, said", [
    ([], "CONFIG expected a YAML file or a preset (e.g. volumegan/synth64), got none; only --resume, which "
         "continues with the checkpoint's own config, goes without one"),
    (["lr_g=1e-3"], "CONFIG expected a YAML file or a preset (e.g. volumegan/synth64), got none; only --resume"),
    (["volumegan/synth64"], "--out expected the run folder to train into, got none (only --resume has a default: "
                            "the resumed run's folder)"),
    (["--resume", "{lone}"], "--out expected the run folder to train into, got none, and --resume {lone} is not in "
                             "a run's checkpoints/ folder to take it from: pass --out"),
    (["--resume", "{damaged}"], "--resume: {damaged}/checkpoints/step-0000002/state.json holds no config (a "
                                "state.json of render3d's holds the one it was trained with); without CONFIG the "
                                "config comes from it: pass the config to train with as CONFIG"),
    (["--resume", "{absent}"], "--resume expected a checkpoint folder (RUN/checkpoints/step-N) or a run folder with "
                               "checkpoints, got '{absent}' (nothing there)"),
])
def test_train_without_config_or_out_says_what_is_missing(trained, tmp_path, capsys, words, said):
    from render3d.cli.main import main

    paths = {"lone": tmp_path / "lone", "damaged": tmp_path / "damaged", "absent": tmp_path / "absent"}
    shutil.copytree(trained[1] / "checkpoints" / "step-0000002", paths["lone"])
    shutil.copytree(trained[1], paths["damaged"])
    state = paths["damaged"] / "checkpoints" / "step-0000002" / "state.json"
    state.write_text(json.dumps({k: v for k, v in json.loads(state.read_text()).items() if k != "config"}))
    before = sorted(tmp_path.rglob("*"))
    assert main(["train", *(w.format(**paths) for w in words), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip().startswith("render3d train: " + said.format(**paths))
    assert sorted(tmp_path.rglob("*")) == before


def test_render_from_a_checkpoint(trained, tmp_path):
    _, run_dir, _ = trained
    result = run_cli("render", "grid", "video", "depth", "--checkpoint", str(run_dir), "--seeds", "0-2", "--views", "3",
                     "--frames", "4", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    grid = iio.imread(tmp_path / "views.png")
    assert grid.shape == (2 + 6 * 18, 2 + 3 * 18, 3)          # per seed a row of 16 px views and one of depth
    frames = iio.imread(tmp_path / "orbit.mp4")
    assert frames.shape == (4, 16, 48, 3)                     # 3 seeds side by side
    depth = np.load(tmp_path / "depth.npz")
    assert depth["depth"].shape == depth["alpha"].shape == (3, 3, 8, 8) and list(depth["seeds"]) == [0, 1, 2]


def test_export_mesh_from_a_checkpoint(trained, tmp_path):
    _, run_dir, _ = trained
    generator = run_dir / "checkpoints" / "step-0000002" / "generator.safetensors"
    out, resolution = tmp_path / "seed1.glb", 24
    result = run_cli("export-mesh", "--checkpoint", str(generator), "--seed", "1", "--resolution", str(resolution),
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"render3d export-mesh: wrote {out.resolve()}" in result.stdout and "seed 1" in result.stdout
    assert "colours from its renders" in result.stdout
    mesh = load_mesh(out)                                      # our reader: GLB COLOR_0 as vertex colours
    assert len(mesh.faces) > 0
    colors = mesh.visual.vertex_colors
    assert colors.shape == (len(mesh.vertices), 4) and len(np.unique(colors[:, :3], axis=0)) > 1
    field = tmp_path / "field.glb"
    result = run_cli("export-mesh", "--checkpoint", str(generator), "--seed", "1", "--resolution", str(resolution),
                     "--colors-from", "field", "--out", str(field))
    assert result.returncode == 0 and "colours from its field" in result.stdout, result.stderr
    other = load_mesh(field)
    # The same surface, other colours. In one process the two meshes are equal to the bit
    # (test_mesh_bake); across two processes CI once saw every vertex moved along its grid
    # edge by up to 7.8e-5 (0.2% of a cell: the density differing by ~1e-5 between the
    # processes), so here the bound is 1% of a cell, far below what another surface moves.
    lo, hi = np.array(tiny_generator()["bounds"])
    cell = float((hi - lo).max()) / (resolution - 1)
    assert len(other.vertices) == len(mesh.vertices) and len(other.faces) == len(mesh.faces)
    np.testing.assert_allclose(other.vertices, mesh.vertices, rtol=0, atol=0.01 * cell)
    assert not np.array_equal(other.visual.vertex_colors, colors)
    for bad, expected in ((["--no-color"], "got --no-color"), ([], "got the scene 'demo', coloured by its field")):
        args = bad + (["--checkpoint", str(generator)] if bad else [])
        result = run_cli("export-mesh", *args, "--colors-from", "field", "--out", str(tmp_path / "x.glb"))
        assert result.returncode == 2 and "--colors-from expected --checkpoint without --no-color, " + expected \
            in result.stderr, result.stderr
    bad = run_cli("export-mesh", "--checkpoint", str(tmp_path / "missing"), "--out", str(out))
    assert bad.returncode == 2 and "render3d export-mesh: --checkpoint" in bad.stderr


def test_what_is_made_from_a_checkpoint_is_named_after_it(trained, tmp_path):
    """Without --out, the renders, meshes and scores of every run went to one name
    (outputs/render/generator, outputs/mesh/seed<N>.glb, outputs/eval/generator.json), so
    the second run's overwrote the first's."""
    from render3d.training.checkpoint import generator_name

    data, run_dir, _ = trained
    folder = run_dir / "checkpoints" / "step-0000002"
    for path in (run_dir, folder, folder / "generator.safetensors"):
        assert generator_name(path) == "run_step-0000002"
    shutil.copy(folder / "generator.safetensors", tmp_path / "mine.safetensors")
    shutil.copytree(folder, tmp_path / "kept")
    assert generator_name(tmp_path / "mine.safetensors") == "mine" and generator_name(tmp_path / "kept") == "kept"

    result = run_cli("render", "grid", "--checkpoint", str(run_dir), "--seeds", "0", "--views", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "outputs" / "render" / "run_step-0000002" / "views.png").is_file()
    result = run_cli("export-mesh", "--checkpoint", str(tmp_path / "mine.safetensors"), "--seed", "1", "--resolution",
                     "20", "--colors-from", "field", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"wrote {tmp_path / 'outputs' / 'mesh' / 'mine_seed1.glb'}" in result.stdout
    result = run_cli("eval", "generator", str(folder), str(data), "--shapes", "2", "--mesh-resolution", "20",
                     "--points", "64", "--inception", str(tmp_path / "absent.pt"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "outputs" / "eval" / "run_step-0000002.json").read_text())["metrics"]


@pytest.mark.parametrize("failing, fitting", [("training.safetensors", "generator.safetensors"),
                                              ("optimizer.pt", "training.safetensors")])
def test_a_checkpoint_that_cannot_be_written_is_said_in_one_line_and_leaves_nothing(trained, tmp_path, failing,
                                                                                    fitting):
    """A full disk (here a file-size limit, just above the size of the file written before)
    while a checkpoint is written was a traceback: safetensors' own SafetensorError, or
    torch.save's "unexpected pos"; and it left the half-written folder taking the space."""
    data, run_dir, _ = trained
    sizes = {f.name: f.stat().st_size for f in (run_dir / "checkpoints" / "step-0000002").iterdir()}
    assert sizes[fitting] < sizes[failing]           # what the limit relies on
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data, total_kimg=0.008)))
    out = tmp_path / "run"
    result = run_cli("train", str(config), "--out", str(out), "--no-progress",
                     preexec_fn=size_limit(sizes[fitting] + 1))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-2:] == [
        f"render3d train: cannot write {out / 'checkpoints' / 'step-0000002' / failing}: File too large; free space "
        "or write elsewhere", "train: failed after step 2. No checkpoint was written."]
    assert list((out / "checkpoints").iterdir()) == []


def test_a_full_disk_while_logging_stops_training_in_one_line(trained, tmp_path):
    """The disk fills (here a file-size limit) while stats.jsonl or TensorBoard's event file
    grows: the line named no file, TensorBoard's thread added a traceback and the note came
    twice (once on each, as both held the same error)."""
    data, _, _ = trained
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data, total_kimg=0.4, log_every=1)))
    out = tmp_path / "run"
    result = run_cli("train", str(config), "--out", str(out), "--no-progress",
                     preexec_fn=size_limit(4000))     # a few rows
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    said, note = result.stderr.splitlines()[-2:]
    assert re.fullmatch(rf"render3d train: cannot write ({re.escape(str(out / 'stats.jsonl'))}|"
                        rf"{re.escape(str(out / 'tensorboard'))}): File too large; free space or write elsewhere", said)
    assert re.fullmatch(r"train: failed after step \d+\. No checkpoint was written\.", note)
    assert result.stderr.count("train: failed after step") == 1


def test_ctrl_c_stops_after_the_step_with_a_checkpoint(trained, tmp_path):
    data, _, _ = trained
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data, total_kimg=100)))
    process = start_cli("train", config, "--out", tmp_path / "run", "--no-progress", "log_every=1")
    stats = tmp_path / "run" / "stats.jsonl"
    deadline = time.monotonic() + 120
    while not (stats.is_file() and stats.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    (checkpoint,) = (tmp_path / "run" / "checkpoints").iterdir()
    step = json.loads((checkpoint / "state.json").read_text())["step"]
    assert step >= 1 and f"train: stopped after step {step}; wrote {checkpoint}" in stderr


_start = None


def _share_start(barrier) -> None:
    global _start
    _start = barrier


def _check_output_folder_repeatedly(folder: str):
    from render3d.cli._args import UsageError, check_writable_dir

    _start.wait()  # all at once, as torchrun's processes
    for _ in range(500):
        try:
            check_writable_dir("train", "--out", Path(folder))
        except UsageError as error:
            return str(error)
    return None


def test_processes_of_one_torchrun_check_the_output_folder_at_once(tmp_path):
    """Every torchrun process checks --out before training; their write probes must not
    collide (one process deleting another's probe made DDP runs fail at random)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(4, initializer=_share_start, initargs=(context.Barrier(4),)) as pool:
        assert pool.map(_check_output_folder_repeatedly, [str(tmp_path)] * 4, chunksize=1) == [None] * 4
    assert list(tmp_path.iterdir()) == []  # no probe left behind
