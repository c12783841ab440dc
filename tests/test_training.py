"""The training engine on a tiny VolumeGAN (configs: test_train_config.py): checkpoints
(safetensors + JSON, optimizer state under weights_only=True), bit-exact resume, and two
gloo processes under torchrun matching one process with the same global batch, and Ctrl-C
under torchrun."""

import json
import re
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from _cli import run_cli, start_cli
from _gan import stand_in_inception, tiny_config, tiny_generator, tiny_train_config
from safetensors.torch import load_file

from render3d.training import load_generator, training_loop
from render3d.training.checkpoint import GENERATOR_FILE, OPTIMIZER_FILE, STATE_FILE, TRAINING_FILE
from render3d.training.data import (GlobalBatchSampler, conditioning_labels, gpc_swap_probability, progressive_said,
                                    progressive_stage)
from render3d.training.distributed import Distributed, cuda_math


def test_global_batches_do_not_depend_on_the_process_count():
    one = GlobalBatchSampler(10, 4, seed=3)
    halves = [GlobalBatchSampler(10, 4, seed=3, rank=r, world=2) for r in range(2)]
    stream, parts = iter(one), [iter(h) for h in halves]
    for _ in range(7):                                 # crosses epoch boundaries
        expected = [next(stream) for _ in range(4)]
        assert [next(parts[0]) for _ in range(2)] + [next(parts[1]) for _ in range(2)] == expected
    later = iter(GlobalBatchSampler(10, 4, seed=3, start_step=7))
    assert [next(later) for _ in range(4)] == [next(stream) for _ in range(4)]


def test_progressive_schedule():
    res = [8, 16, 32]
    assert progressive_stage(0, res, 8, 1, 1) == (8, 1.0)
    assert progressive_stage(1500, res, 8, 1, 1) == (16, 0.5)
    assert progressive_stage(2500, res, 8, 1, 1) == (16, 1.0)
    assert progressive_stage(3250, res, 8, 1, 1) == (32, 0.25)
    assert progressive_stage(10 ** 6, res, 8, 1, 1) == (32, 1.0)
    assert progressive_stage(0, res, 0, 1, 1) == (32, 1.0)
    # the header's words for it: a block starts fading in where the stage said so begins
    assert progressive_said(res, 8, 1, 1) == ("progressive growing: 8 px, then 16 px from 1, 32 px from 3 kimg "
                                              "(each fading in over 1 kimg); grown at 4 kimg")
    assert progressive_stage(999, res, 8, 1, 1) == (8, 1.0) and progressive_stage(1000, res, 8, 1, 1) == (16, 0.0)
    assert progressive_stage(3000, res, 8, 1, 1) == (32, 0.0) and progressive_stage(3999, res, 8, 1, 1)[1] < 1
    assert progressive_stage(4000, res, 8, 1, 1) == (32, 1.0)
    assert progressive_said(res, 0, 1, 1) is None and progressive_said(res, 32, 1, 1) is None


def test_pose_conditioning_swap_schedule_and_draws():
    """EG3D's GPC regularization: always swapped at first, fading linearly to gpc_swap; a
    swapped row takes the previous row's label (the batch rolled by one)."""
    assert gpc_swap_probability(0, 0.5, 1000) == 1.0
    assert gpc_swap_probability(250_000, 0.5, 1000) == 0.875
    assert gpc_swap_probability(1_000_000, 0.5, 1000) == gpc_swap_probability(5 * 10 ** 6, 0.5, 1000) == 0.5
    assert gpc_swap_probability(0, 0.8, 0) == 0.8
    labels = torch.arange(4000, dtype=torch.float32)[:, None].expand(4000, 25)
    assert torch.equal(conditioning_labels(labels, 0.0, torch.Generator()), labels)
    assert torch.equal(conditioning_labels(labels, 1.0, torch.Generator()), labels.roll(1, 0))
    mixed = conditioning_labels(labels, 0.3, torch.Generator().manual_seed(1))
    swapped = mixed[:, 0] == labels.roll(1, 0)[:, 0]
    assert bool((swapped | (mixed[:, 0] == labels[:, 0])).all()) and bool((mixed == mixed[:, :1]).all())
    assert abs(float(swapped.float().mean()) - 0.3) < 0.03


@pytest.mark.parametrize("swap", [0.0, 1.0])
def test_a_conditioned_generator_maps_with_the_swapped_labels_and_renders_the_true_cameras(
        data, tmp_path, monkeypatch, swap):
    from render3d.generators.volumegan import VolumeGAN
    seen = {"mapped": [], "rendered": []}
    mapping, synthesis = VolumeGAN.mapping, VolumeGAN.synthesis

    def record_mapping(self, z, c=None, **kwargs):
        if kwargs.get("update_w_avg"):                      # the training step's own call
            seen["mapped"].append(c.clone())
        return mapping(self, z, c, **kwargs)

    def record_synthesis(self, ws, cameras, *args, **kwargs):
        seen["rendered"].append(cameras.to_eg3d_label())
        return synthesis(self, ws, cameras, *args, **kwargs)

    monkeypatch.setattr(VolumeGAN, "mapping", record_mapping)
    monkeypatch.setattr(VolumeGAN, "synthesis", record_synthesis)
    config = tiny_train_config(data, total_kimg=0.008, generator=tiny_generator(c_dim=25),   # 2 steps
                               loss={"gpc_swap": swap, "gpc_fade_kimg": 0.0})
    training_loop(tmp_path, config, progress=False)
    assert len(seen["mapped"]) == 2
    for mapped, rendered in zip(seen["mapped"], seen["rendered"]):
        expected = rendered.roll(1, 0) if swap else rendered
        torch.testing.assert_close(mapped, expected, rtol=0, atol=1e-6)
        assert not torch.equal(rendered.roll(1, 0), rendered)      # the swap is visible


def _weights(run, step):
    return load_file(str(run / "checkpoints" / f"step-{step:07d}" / TRAINING_FILE))


def test_checkpoint_files_round_trip(data, tmp_path):
    config = tiny_train_config(data, total_kimg=0.008)           # 2 steps
    last = training_loop(tmp_path, config, progress=False)
    assert sorted(p.name for p in last.iterdir()) == sorted([GENERATOR_FILE, TRAINING_FILE, OPTIMIZER_FILE,
                                                             STATE_FILE])
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]   # no temp folders left
    state = json.loads((last / STATE_FILE).read_text())
    assert state["step"] == 2 and state["nimg"] == 8 and state["config"]["batch"] == 4
    saved = torch.load(last / OPTIMIZER_FILE, weights_only=True)   # plain tensors and containers, no code
    assert set(saved["optimizers"]) == {"G", "D"} and saved["optimizers"]["G"]["state"]
    weights = load_file(str(last / TRAINING_FILE))
    G, meta = load_generator(tmp_path)                            # the run folder -> newest checkpoint
    assert meta["generator_type"] == "volumegan" and meta["training"]["step"] == 2
    assert set(meta["view"]) == {"radius", "fov_degrees", "pitch", "pivot"}
    for name, tensor in G.state_dict().items():
        torch.testing.assert_close(tensor, weights[f"G_ema.{name}"], rtol=0, atol=0)
    assert not any(torch.equal(weights[f"G_ema.{k}"], weights[f"G.{k}"]) for k in ("volume.const",))
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "stats.jsonl").is_file()
    assert list((tmp_path / "tensorboard").iterdir())
    assert ((tmp_path / "images" / "step-0000002.png").is_file()
            and (tmp_path / "images" / "orbit-0000002.mp4").is_file())


def math_settings():
    return torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


def test_cuda_math_is_set_for_a_cuda_run_only_and_put_back(data):
    """cudnn_benchmark and tf32 are torch's process-wide settings: set while a CUDA run trains,
    as they were afterwards (after an error too), untouched by a CPU run."""
    before = math_settings()
    with cuda_math(torch.device("cpu"), cudnn_benchmark=True, tf32=True):
        assert math_settings() == before
    with cuda_math(torch.device("cuda", 0), cudnn_benchmark=True, tf32=True):
        assert math_settings() == (True, True, True)
    assert math_settings() == before
    with pytest.raises(KeyboardInterrupt):
        with cuda_math(torch.device("cuda"), cudnn_benchmark=False, tf32=False):
            assert math_settings() == (False, False, False)
            raise KeyboardInterrupt
    assert math_settings() == before
    defaults = tiny_train_config(data)
    assert (defaults.cudnn_benchmark, defaults.tf32) == (True, False)     # as StyleGAN2-ADA and EG3D train


@pytest.mark.cuda
@pytest.mark.parametrize("precision, tf32", [("float32", False), ("bfloat16", False), ("float32", True)])
def test_training_steps_on_a_gpu(data, tmp_path, capsys, precision, tf32):
    """A few steps on a GPU, growing from 8 px (step 1 at 8 px, step 2 fading 16 px in), with
    FID/KID measured as it trains (a stand-in network on the GPU; the images up-sampled from
    the stage while it grows)."""
    before = math_settings()
    metrics = {"every": 1, "images": 4, "inception": str(stand_in_inception(tmp_path / "net.pt"))}
    growing = {"start_resolution": 8, "stage_kimg": 0.004, "fade_kimg": 0.004}
    config = tiny_train_config(data, total_kimg=0.008, device="cuda", precision=precision, tf32=tf32, metrics=metrics,
                               progressive=growing)
    last = training_loop(tmp_path / "run", config, progress=False)
    assert math_settings() == before
    weights = load_file(str(last / TRAINING_FILE))
    assert all(bool(torch.isfinite(t).all()) for t in weights.values() if t.is_floating_point())
    lines = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert lines[-1]["memory/gpu_peak_gb"] > 0
    said = re.findall(r"^train: step 2: .* s/step, GPU ([\d.e+-]+) GB$", capsys.readouterr().err, re.MULTILINE)
    assert said == [f"{lines[-1]['memory/gpu_peak_gb']:.3g}"]                      # the console line of the row
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [0, 1, 2]
    assert all(math.isfinite(row["images/fid"]) and math.isfinite(row["images/kid"]) for row in rows)
    assert load_generator(last)[0].stage == (16, 0.0)


def test_bf16_steps_match_float32_to_bf16_precision(data, tmp_path):
    """precision=bfloat16: the first step's losses (R1 and path length due, the G and D passes
    in bf16) are float32's to bf16 precision and not to the bit (so bf16 did run), and more
    steps train with finite gradients."""
    loss = {"r1_gamma": 1.0, "r1_interval": 1, "pl_weight": 1.0, "pl_interval": 1, "style_mixing": 0.5}
    rows = {}
    for precision in ("float32", "bfloat16"):
        config = tiny_train_config(data, total_kimg=0.016, log_every=1, loss=loss, precision=precision)
        training_loop(tmp_path / precision, config, progress=False)
        rows[precision] = [json.loads(line) for line in (tmp_path / precision / "stats.jsonl").read_text().splitlines()]
    assert len(rows["bfloat16"]) == 4
    assert all(row["nonfinite/G"] == row["nonfinite/D"] == 0 for row in rows["bfloat16"])
    first = rows["float32"][0], rows["bfloat16"][0]
    for key in ("loss/G", "loss/D", "loss/r1", "loss/path_length", "scores/real", "scores/fake"):
        assert first[0][key] != first[1][key], key
        assert first[1][key] == pytest.approx(first[0][key], rel=0.02, abs=1e-4), key


@pytest.mark.parametrize("c_dim, precision", [(0, "float32"), (25, "float32"), (0, "bfloat16")])
def test_resume_is_bit_exact(data, tmp_path, c_dim, precision):
    # R1 and path length every 2 steps, the opacity entropy, style mixing and x-flip on, jitter
    # and noise on, and (c_dim 25) camera conditioning with swapped labels: every kind of state.
    config = tiny_train_config(data, total_kimg=0.024,            # 6 steps of 4 images
                               generator=tiny_generator(c_dim=c_dim), precision=precision,
                               loss={"r1_gamma": 1.0, "r1_interval": 2, "pl_weight": 1.0, "pl_interval": 2,
                                     "opacity_entropy": 0.5, "gpc_swap": 0.5, "gpc_fade_kimg": 0.012})
    training_loop(tmp_path / "straight", config, progress=False)
    training_loop(tmp_path / "resumed", config, max_steps=3, progress=False)
    training_loop(tmp_path / "resumed", config, resume=tmp_path / "resumed", progress=False)
    straight, resumed = _weights(tmp_path / "straight", 6), _weights(tmp_path / "resumed", 6)
    assert straight.keys() == resumed.keys()
    different = [k for k in straight if not torch.equal(straight[k], resumed[k])]
    assert different == []
    logged = [json.loads(line) for line in (tmp_path / "straight" / "stats.jsonl").read_text().splitlines()]
    assert all(0 < line["loss/opacity_entropy"] <= 0.5 * math.log(2) for line in logged)
    moved = _weights(tmp_path / "resumed", 3)
    assert not torch.equal(moved["G.volume.const"], straight["G.volume.const"])   # training did move the weights


def test_resume_after_a_crash_logs_each_step_once(data, tmp_path):
    """A process that ran past its last checkpoint and died mid-line: resuming drops what it
    logged after the checkpoint from stats.jsonl and TensorBoard, so steps 1..6 are there once."""
    import shutil

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny_train_config(data, total_kimg=0.024, log_every=1)   # 6 steps of 4 images
    run = tmp_path / "run"
    training_loop(run, config, max_steps=3, progress=False)
    training_loop(run, config, resume=run, max_steps=5, progress=False)
    shutil.rmtree(run / "checkpoints" / "step-0000005")                # as if it died before writing it
    with (run / "stats.jsonl").open("a") as stats:
        stats.write('{"step": 6, "nimg": 2')                           # and in the middle of a line
    training_loop(run, config, resume=run, progress=False)
    lines = (run / "stats.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5, 6]
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [event.step for event in events.Scalars("loss/G")] == [1, 2, 3, 4, 5, 6]


def test_the_last_steps_of_a_run_are_logged_too(data, tmp_path):
    """A run that ends between two rows of log_every steps logs its last steps in a row of
    their own (before, a run shorter than log_every left stats.jsonl empty); the row holds the
    means of those steps alone, as a run logging every step shows them."""
    config = tiny_train_config(data, total_kimg=0.02, log_every=2)    # 5 steps of 4 images
    training_loop(tmp_path / "every2", config, progress=False)
    training_loop(tmp_path / "every1", tiny_train_config(data, total_kimg=0.02, log_every=1), progress=False)
    training_loop(tmp_path / "short", tiny_train_config(data, log_every=100), max_steps=1, progress=False)
    rows = {name: [json.loads(line) for line in (tmp_path / name / "stats.jsonl").read_text().splitlines()]
            for name in ("every2", "every1", "short")}
    assert [row["step"] for row in rows["every2"]] == [2, 4, 5]
    assert rows["every2"][-1]["loss/G"] == pytest.approx(rows["every1"][-1]["loss/G"], rel=1e-12)
    assert rows["every2"][-1]["nimg"] == 20
    assert [row["step"] for row in rows["short"]] == [1]
    assert rows["short"][0]["loss/G"] == pytest.approx(rows["every1"][0]["loss/G"], rel=1e-12)


def test_speeds_are_those_since_the_last_row_or_the_resumed_step(data, tmp_path):
    """A run resumed at step 10 (40 images, 2 s of training): its first row's step time is that of
    the steps since then, not the whole run's mean, and it has no kimg/s (its wall time would count
    the setup; before, it was logged as 0 and pulled TensorBoard's curve down); the next row's
    kimg/s is that of the images since the row before."""
    from render3d.training.logs import RunLog

    log = RunLog(tmp_path, tiny_train_config(data), step=10, nimg=40, seconds=2.0)
    log.scalars(12, 48, 6.0, {}, 16, 1.0, torch.device("cpu"))
    time.sleep(0.05)
    log.scalars(14, 56, 8.0, {}, 16, 1.0, torch.device("cpu"))
    log.close()
    first, second = (json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines())
    assert first["speed/step_s"] == pytest.approx(2.0) and "speed/kimg_per_s" not in first
    assert second["speed/step_s"] == pytest.approx(1.0)
    assert 0 < second["speed/kimg_per_s"] <= 0.008 / 0.05


_GLOO_THREADS = """
import os, sys
import torch
from render3d.training.distributed import Distributed

def gloo_threads():
    names = [open(f"/proc/self/task/{task}/comm").read().strip() for task in os.listdir("/proc/self/task")]
    return sorted(name for name in names if "gloo" in name)

dist = Distributed.setup("cpu")
torch.optim.Adam([torch.zeros(1, requires_grad=True)])     # as training makes one: it imports torch._dynamo
dist.any(True)                                             # a collective: gloo's threads are up
before = gloo_threads()
dist.close()
with open(os.path.join(sys.argv[1], f"{dist.rank}.txt"), "w") as said:   # one file each: no interleaving
    said.write(f"process {dist.rank}: before {before}, after {gloo_threads()}")
"""


def test_the_process_group_lets_a_collective_wait_30_minutes(monkeypatch):
    """Process 0 alone measures config.metrics while the others wait in their next collective:
    the group is joined with gloo's 30 minutes for NCCL too (NCCL's own limit is 10)."""
    import datetime

    from render3d.training import distributed

    joined = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda *args, **kwargs: joined.append((args, kwargs)))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert (Distributed.join().rank, Distributed.join().world) == (1, 2)
    assert joined[0][1]["timeout"] == datetime.timedelta(minutes=30)
    assert joined[0][0][0] == ("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="lists threads through Linux's /proc")
def test_leaving_the_process_group_ends_gloos_threads(tmp_path):
    """After `Distributed.close`, gloo's threads are gone, so none is left to be torn down at
    interpreter exit, where it sometimes aborted a torchrun worker ("terminate called without
    an active exception", SIGABRT: 1 of 4 runs of the two torchrun training tests here). They
    outlived destroy_process_group when torch._dynamo was first imported after joining, as
    the first optimizer does."""
    script = tmp_path / "threads.py"
    script.write_text(_GLOO_THREADS)
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(script), str(tmp_path)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        line = (tmp_path / f"{rank}.txt").read_text()
        before, after = line.split(": before ")[1].split(", after ")
        assert "gloo" in before and after == "[]", line      # they ran, and they ended


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_two_processes_match_one(tmp_path, device):
    """Same global batch of 4: one process, or two with 2 each under torchrun (gloo on CPU,
    NCCL on two GPUs). In-model randomness (jitter, noise) is off: it is drawn per process by
    design. Metrics (shapes, and FID/KID with a stand-in network) are measured by both
    processes, each a share of the subjects (odd counts: unequal shares), and scored by
    process 0: a checkpoint's row is `render3d eval generator`'s of it in one process."""
    from render3d.cli.main import main
    from render3d.datasets import SynthConfig, generate_synthetic

    if device == "cuda" and torch.cuda.device_count() < 2:
        pytest.skip("NCCL needs two GPUs: one process per GPU")
    data = tmp_path / "synth"                          # 6 images of 32 px, 3 subjects with meshes
    generate_synthetic(data, SynthConfig(subjects=3, views=2, resolution=32, supersample=1, mesh_resolution=24),
                       progress=False)
    small = {"shapes": 3, "mesh_resolution": 16, "points": 128, "images": 5}
    metrics = {"every": 2, **small, "inception": str(stand_in_inception(tmp_path / "net.pt"))}
    config = tiny_config(data, total_kimg=0.016, checkpoint_every=2, metrics=metrics)   # 4 steps
    config["generator"].update(jitter=False, use_noise=False)
    config["device"] = device
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    # No TF32 on GPUs (cuDNN's convolutions use it by default); the GPU kernels' atomic sums
    # still add in a varying order, hence the looser bound there.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NVIDIA_TF32_OVERRIDE": "0"}
    tolerance = 1e-5 if device == "cpu" else 1e-4
    train = ["train", path, "--no-progress"]
    one = run_cli(*train, "--out", tmp_path / "one", timeout=600, env=env)
    assert one.returncode == 0, one.stderr
    two = run_cli(*train, "--out", tmp_path / "two", torchrun=True, timeout=600, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "checkpoints" / "step-0000004" / STATE_FILE).read_text())["world"] == 2
    for step in (2, 4):
        a, b = _weights(tmp_path / "one", step), _weights(tmp_path / "two", step)
        worst = {k: float((a[k] - b[k]).abs().max()) for k in a}
        assert max(worst.values()) < tolerance, sorted(worst.items(), key=lambda kv: -kv[1])[:5]
    earlier = _weights(tmp_path / "one", 2)
    assert not torch.equal(earlier["G.volume.const"], a["G.volume.const"])     # the weights did move
    rows = {run: [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
            for run in ("one", "two")}
    assert [row["step"] for row in rows["two"]] == [0, 2, 4]
    for row_one, row_two in zip(rows["one"], rows["two"]):
        assert row_two["images/fid"] == pytest.approx(row_one["images/fid"], rel=1e-3), row_one["step"]
    for row in rows["two"][1:]:
        out = tmp_path / f"eval-{row['step']}.json"
        options = [f"--{key.replace('_', '-')}={value}" for key, value in small.items()]
        assert main(["eval", "generator", str(tmp_path / "two" / "checkpoints" / f"step-{row['step']:07d}"),
                     str(data), *options, "--inception", metrics["inception"], "--out", str(out)]) == 0
        expected = json.loads(out.read_text())["metrics"]
        assert {k: row[k] for k in expected if k.startswith("shapes/")} == \
            {k: v for k, v in expected.items() if k.startswith("shapes/")}, row["step"]   # meshed one seed at a time
        assert row["images/fid"] == pytest.approx(expected["images/fid"], rel=1e-6), row["step"]


def test_ctrl_c_under_torchrun_stops_every_process_after_one_step(data, tmp_path):
    """Ctrl-C in the terminal reaches torchrun only (its workers run in their own sessions);
    torchrun passes SIGINT on to each worker. They all stop after the same step, the
    checkpoint they write holds both processes' state, and resuming from it with two
    processes is bit-exact: it equals a straight two-process run of as many steps."""
    config = tiny_config(data, total_kimg=100, log_every=1)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    train = ["train", path, "--no-progress"]
    process = start_cli(*train, "--out", tmp_path / "stopped", torchrun=True, env=env, start_new_session=True)
    stats = tmp_path / "stopped" / "stats.jsonl"
    deadline = time.monotonic() + 300
    while not (stats.is_file() and stats.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)                   # what the terminal does on Ctrl-C
    _, stderr = process.communicate(timeout=120)
    (checkpoint,) = (tmp_path / "stopped" / "checkpoints").iterdir()
    state = json.loads((checkpoint / STATE_FILE).read_text())
    step = state["step"]
    assert state["world"] == 2 and step >= 1
    assert stderr.count("train: stopping after this step") == 2, stderr[-3000:]
    assert f"train: stopped after step {step}; wrote " in stderr and "interrupted" not in stderr

    resumed = run_cli(*train, "--out", tmp_path / "stopped", "--resume", checkpoint, "--max-steps", step + 2,
                      torchrun=True, timeout=600, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "not bit-exact" not in resumed.stderr
    straight = run_cli(*train, "--out", tmp_path / "straight", "--max-steps", step + 2, torchrun=True, timeout=600,
                       env=env)
    assert straight.returncode == 0, straight.stderr[-3000:]
    a, b = _weights(tmp_path / "stopped", step + 2), _weights(tmp_path / "straight", step + 2)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_the_progress_bar_shows_the_step_and_losses(data, tmp_path, capsys):
    """The console shows where training is (step, resolution, G and D losses, R1 when it ran)
    after each log line, without TensorBoard."""
    training_loop(tmp_path, tiny_train_config(data, total_kimg=0.008, log_every=1), progress=True)
    err = capsys.readouterr().err
    assert re.search(r"step 1, 16 px, G [-+\d.e]+, D [-+\d.e]+, R1 [-+\d.e]+\]", err), err[-2000:]   # R1 every 2
    assert re.search(r"step 2, 16 px, G [-+\d.e]+, D [-+\d.e]+\]", err), err[-2000:]


def test_without_the_bar_each_log_row_is_a_line(data, tmp_path, capsys):
    """--no-progress (batch jobs, log files) said nothing of training until a checkpoint; now a
    line per stats row, the numbers of stats.jsonl, and no bar."""
    training_loop(tmp_path, tiny_train_config(data, total_kimg=0.012, log_every=1), progress=False)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("train: step ")]
    rows = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert len(lines) == len(rows) == 3
    for line, row in zip(lines, rows):
        said = f"train: step {row['step']}: {row['nimg'] / 1000:g} kimg at 16 px, G {row['loss/G']:.3g}, " \
               f"D {row['loss/D']:.3g}"
        said += f", R1 {row['loss/r1']:.3g}" if "loss/r1" in row else ""              # every 2 steps
        assert line == said + f", {row['speed/step_s']:.3g} s/step"
    assert "%|" not in err                                                               # tqdm's bar


def test_a_log_line_on_a_gpu_says_its_peak_memory():
    from render3d.training.logs import log_line

    stats = {"loss/G": 1.234, "loss/D": 0.98, "speed/step_s": 0.1874, "memory/cpu_peak_gb": 3.0}
    assert log_line(120, 480, stats, 32) == "train: step 120: 0.48 kimg at 32 px, G 1.23, D 0.98, 0.187 s/step"
    assert log_line(120, 480, {**stats, "memory/gpu_peak_gb": 10.23}, 32).endswith(", 0.187 s/step, GPU 10.2 GB")
