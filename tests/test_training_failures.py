"""What training does when things go wrong: NaN or inf gradients (replaced and counted, as in
StyleGAN2-ADA), a run that diverges (stopped, no checkpoint of the diverged weights written, the
newest good one named), any other crash (the error names the checkpoint to resume from), a
damaged checkpoint (named, with the run's earlier ones), generator files that do not describe
themselves, and resuming with new learning rates."""

import errno
import json
import math
import re
import shutil
import threading
from pathlib import Path

import pytest
import torch
import yaml
from _gan import nan_after_update, tiny_config, tiny_train_config, write_tiny_dataset
from safetensors.torch import load_file

from render3d.cli.main import main
from render3d.losses.stylegan2 import StyleGAN2Loss
from render3d.training import logs, loop, training_loop
from render3d.training.checkpoint import OPTIMIZER_FILE, STATE_FILE, TRAINING_FILE


def _checkpoints(run):
    return sorted(p.name for p in (run / "checkpoints").iterdir())


def _calls(method, bad_calls):
    """`method` wrapped so that its n-th calls (1-based) in `bad_calls` return NaN that flows
    back into the gradients."""
    count = [0]

    def wrapped(self, *args, **kwargs):
        count[0] += 1
        value = method(self, *args, **kwargs)
        return value * math.nan if count[0] in bad_calls else value

    return wrapped


def test_nonfinite_gradients_are_replaced_counted_and_not_checkpointed(data, tmp_path, monkeypatch, capsys):
    """A NaN generator loss in step 2 and a NaN discriminator loss in step 3: the weights stay
    finite, stats.jsonl counts the steps, the user is told once per network, and the periodic
    checkpoints of those two steps are skipped."""
    monkeypatch.setattr(StyleGAN2Loss, "generator", _calls(StyleGAN2Loss.generator, {2}))
    monkeypatch.setattr(StyleGAN2Loss, "discriminator", _calls(StyleGAN2Loss.discriminator, {3}))
    config = tiny_train_config(data, total_kimg=0.016, log_every=1, checkpoint_every=1)   # 4 steps
    last = training_loop(tmp_path, config, progress=False)
    lines = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [line["nonfinite/G"] for line in lines] == [0.0, 1.0, 0.0, 0.0]
    assert [line["nonfinite/D"] for line in lines] == [0.0, 0.0, 1.0, 0.0]
    assert all(math.isfinite(line["grad_norm/G"]) and math.isfinite(line["grad_norm/D"]) for line in lines)
    weights = load_file(str(last / TRAINING_FILE))
    assert all(bool(torch.isfinite(t).all()) for t in weights.values() if t.is_floating_point())
    assert _checkpoints(tmp_path) == ["step-0000001", "step-0000004"]
    err = capsys.readouterr().err
    assert err.count("non-finite G gradients") == 1 and err.count("non-finite D gradients") == 1
    assert "step 2: checkpoint skipped" in err and "step 3: checkpoint skipped" in err


def test_a_diverged_run_stops_and_names_the_last_good_checkpoint(data, tmp_path, capsys):
    """lr_d=1e30: from step 2 on D's scores are inf, every gradient NaN; after
    NONFINITE_PATIENCE such steps `render3d train` stops with exit status 1. Only the step-1
    checkpoint, from before the divergence, exists."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(data, total_kimg=0.2)))   # 50 steps
    run = tmp_path / "run"
    status = main(["train", str(path), "--out", str(run), "--no-progress", "lr_d=1e30", "checkpoint_every=1"])
    err = capsys.readouterr().err
    assert status == 1
    last = 1 + loop.NONFINITE_PATIENCE
    assert f"gradients were not finite (NaN or inf) in every step from 2 to {last}: training has diverged" in err
    assert f"The newest checkpoint is {run / 'checkpoints' / 'step-0000001'}: resume from it" in err
    assert _checkpoints(run) == ["step-0000001"]


def test_nonfinite_weights_are_never_written(data, tmp_path, monkeypatch):
    """D's weights turn NaN in step 2 behind the gradient guard's back: the checkpoint of step 2
    is refused, naming the tensor and the step-1 checkpoint, which is kept."""
    nan_after_update(monkeypatch, 4, lambda D: next(D.parameters()))    # D's update in step 2
    config = tiny_train_config(data, total_kimg=0.016, checkpoint_every=1)
    name = next(n for n, _ in loop.DISCRIMINATORS.build(config.discriminator_type, config.discriminator)
                .named_parameters())
    expected = rf"at step 2 weights are not finite \(NaN or inf\): D\.{name}; no checkpoint written\. The newest"
    with pytest.raises(FloatingPointError, match=rf"{expected} checkpoint is .*step-0000001: resume"):
        training_loop(tmp_path, config, progress=False)
    assert _checkpoints(tmp_path) == ["step-0000001"]


def test_a_crash_names_the_checkpoint_to_resume_from(data, tmp_path, monkeypatch):
    """Any error inside a step (here a failing image grid in step 3) carries a note with the
    step and the newest checkpoint; the stats written so far are kept."""
    def broken(self, G_ema, step, view):
        raise RuntimeError("disk full")

    monkeypatch.setattr(logs.RunLog, "images", broken)
    config = tiny_train_config(data, total_kimg=0.016, checkpoint_every=2, image_every=3, log_every=1)
    with pytest.raises(RuntimeError, match="disk full") as caught:
        training_loop(tmp_path, config, progress=False)
    newest = tmp_path / "checkpoints" / "step-0000002"
    assert caught.value.__notes__ == [f"train: failed after step 3. The newest checkpoint is {newest}: resume from "
                                      f"it (--resume {newest})."]
    assert len((tmp_path / "stats.jsonl").read_text().splitlines()) == 3


def test_a_full_disk_at_the_run_config_leaves_no_empty_images_folder(data, tmp_path, monkeypatch):
    """config.yaml is the run's first file; RunLog made images/ before it, so a run that could
    not even start left an empty folder behind."""
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(logs, "write_file", full)
    with pytest.raises(OSError) as raised:
        logs.RunLog(tmp_path / "run", tiny_train_config(data))
    assert raised.value.filename == str(tmp_path / "run" / "config.yaml")
    assert list((tmp_path / "run").iterdir()) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_under_tensorboard_is_one_error_naming_its_folder(data, tmp_path, capfd):
    """TensorBoard writes its events in a thread, which printed a traceback when the disk was
    full and left the error, without a file name, for the next scalars to raise. Here the event
    file becomes /dev/full (always full) after the first row."""
    from render3d.training.logs import RunLog

    log = RunLog(tmp_path, tiny_train_config(data))
    log.scalars(1, 4, 0.5, {"loss/G": 1.0}, 16, 1.0, torch.device("cpu"))
    log.tensorboard.flush()
    (events,) = (tmp_path / "tensorboard").iterdir()
    events.unlink()
    events.symlink_to("/dev/full")                 # TensorBoard opens it by name for each write
    with pytest.raises(OSError) as raised:
        log.scalars(2, 8, 1.0, {"loss/G": 0.5}, 16, 1.0, torch.device("cpu"))
        log.close()                                 # it flushes: the thread's error comes out at the latest here
    for thread in threading.enumerate():            # it prints (or not) as it ends
        if type(thread).__module__.startswith("tensorboard."):
            thread.join(10)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(tmp_path / "tensorboard")
    log.close(failing=True)                         # closing again after a failure: quiet
    assert "Traceback" not in capfd.readouterr().err
    assert [json.loads(line)["step"] for line in (tmp_path / "stats.jsonl").read_text().splitlines()] == [1, 2]


@pytest.mark.parametrize("workers", [0, 1])
def test_a_damaged_image_stops_training_naming_it(tmp_path, capsys, workers):
    """An image that `EG3DDataset` opens (its header is fine) but cannot decode, found when its
    batch comes, stops `render3d train` with exit status 1, one line naming the entry and the
    newest checkpoint, without the traceback (from a DataLoader worker too)."""
    data = write_tiny_dataset(tmp_path / "data", count=4)
    image = data / "images" / "0002.png"
    image.write_bytes(image.read_bytes()[:60])
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(data, total_kimg=0.2, checkpoint_every=1)))
    run = tmp_path / "run"
    status = main(["train", str(path), "--out", str(run), "--no-progress", f"data.workers={workers}"])
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("train: ") or "failed" in line]
    assert status == 1
    assert err[0].startswith("render3d train: data.path: EG3DDataset: entry 2 (images/0002.png) cannot be decoded "
                             "as an image, it is damaged or truncated (OSError: ")     # PIL's words follow
    assert err[0].endswith(f"); `render3d dataset check {data}` finds every such image")
    assert re.fullmatch(r"train: failed after step (\d+)\. (No checkpoint was written\.|The newest checkpoint is .*"
                        r"step-\d+: resume from it \(--resume .*step-\d+\)\.)", err[1]) and len(err) == 2


@pytest.fixture(scope="module")
def two_checkpoints(data, tmp_path_factory):
    """A run folder with the checkpoints of steps 1 and 2."""
    run = tmp_path_factory.mktemp("two_checkpoints")
    training_loop(run, tiny_train_config(data, total_kimg=0.008, checkpoint_every=1), progress=False)
    assert _checkpoints(run) == ["step-0000001", "step-0000002"]
    return run


@pytest.mark.parametrize("name, damage, reason", [
    (TRAINING_FILE, lambda path: path.write_bytes(path.read_bytes()[:100]), "SafetensorError: Error while deserial"),
    (TRAINING_FILE, lambda path: path.write_bytes(path.read_bytes()[:-100]), "SafetensorError: Error while deserial"),
    (OPTIMIZER_FILE, lambda path: path.write_bytes(path.read_bytes()[:100]), "RuntimeError: PytorchStreamReader"),
    (OPTIMIZER_FILE, lambda path: path.write_text("hi"), "KeyError: 105"),
    (STATE_FILE, lambda path: path.write_text(path.read_text()[:50]), "JSONDecodeError: "),
])
def test_a_damaged_checkpoint_is_named_with_the_earlier_ones(data, two_checkpoints, tmp_path, name, damage, reason):
    """A truncated or garbled checkpoint file refuses to resume, naming the file, what its reader
    said, and the run's earlier checkpoints (they were tracebacks, or read as "does not fit
    this config's networks"). Nothing is written. Moving the damaged one out, as the message
    says, resumes from the earlier one."""
    run = tmp_path / "run"
    shutil.copytree(two_checkpoints, run)
    damaged = run / "checkpoints" / "step-0000002"
    damage(damaged / name)
    config = tiny_train_config(data, total_kimg=0.016)
    with pytest.raises(loop.SetupError) as caught:
        training_loop(run, config, resume=run, progress=False)
    assert str(caught.value).startswith(f"train: resume: {damaged / name} cannot be read, it is damaged or truncated "
                                        f"({reason}")
    assert str(caught.value).endswith(f"). Earlier checkpoints of this run: step-0000001; move step-0000002 out of "
                                      f"{run / 'checkpoints'} and resume again to continue from step-0000001")
    assert _checkpoints(run) == ["step-0000001", "step-0000002"]
    shutil.move(damaged, tmp_path / "damaged")
    last = training_loop(run, config, resume=run, max_steps=2, progress=False)
    assert last.name == "step-0000002" and json.loads((last / STATE_FILE).read_text())["nimg"] == 8


def test_a_checkpoint_without_its_counters_is_named(data, two_checkpoints, tmp_path):
    """A state.json that parses but lacks the counters and RNG states is not a checkpoint to
    resume from; the only checkpoint left says so, and that none is earlier."""
    run = tmp_path / "run"
    shutil.copytree(two_checkpoints, run)
    shutil.rmtree(run / "checkpoints" / "step-0000001")
    (run / "checkpoints" / "step-0000002" / STATE_FILE).write_text('{"step": 2}')
    with pytest.raises(loop.SetupError, match=re.escape(
            "is not a whole render3d checkpoint: it lacks state.json 'nimg', state.json 'seconds', state.json "
            "'numpy_rng', state.json 'python_rng'. No earlier checkpoint of this run remains")):
        training_loop(run, tiny_train_config(data, total_kimg=0.016), resume=run, progress=False)


def test_resume_takes_the_learning_rates_and_betas_of_the_config(data, tmp_path, capsys):
    """Adam's moments come from the checkpoint; lr and betas from the config the run resumes
    with (as a user lowering lr_g after a divergence expects). D's are lazily corrected for R1
    every 2 steps: lr x 2/3, betas ** (2/3)."""
    training_loop(tmp_path, tiny_train_config(data, total_kimg=0.008), max_steps=1, progress=False)
    changed = tiny_train_config(data, total_kimg=0.008, lr_g=0.001, lr_d=0.0005, betas=[0.5, 0.9])
    last = training_loop(tmp_path, changed, resume=tmp_path, progress=False)
    assert "batch 4 on 1 CPU process, from step 1 (0.004 kimg) to 0.008 kimg" in capsys.readouterr().err
    saved = torch.load(last / OPTIMIZER_FILE, weights_only=True)["optimizers"]
    g, d = saved["G"]["param_groups"][0], saved["D"]["param_groups"][0]
    assert g["lr"] == 0.001 and tuple(g["betas"]) == (0.5, 0.9)
    assert d["lr"] == pytest.approx(0.0005 * 2 / 3)
    assert tuple(d["betas"]) == pytest.approx((0.5 ** (2 / 3), 0.9 ** (2 / 3)))
    assert saved["G"]["state"][0]["step"] == 2                     # the moments did carry over


def _edited_generator(source, target, edit_meta=lambda meta: meta, edit_tensors=lambda tensors: tensors,
                      raw_meta=None):
    """A copy of the generator file `source` with its metadata and weights edited."""
    from safetensors.torch import save_file

    from render3d.training.checkpoint import METADATA_KEY, read_generator_metadata

    meta = edit_meta(read_generator_metadata(source))
    save_file(edit_tensors(load_file(str(source))), str(target),
              metadata={METADATA_KEY: raw_meta if raw_meta is not None else json.dumps(meta)})
    return target


@pytest.mark.parametrize("edit, message", [
    ({"edit_meta": lambda meta: {k: v for k, v in meta.items() if k != "view"}},
     "expected a render3d generator file, got {file} whose 'render3d' metadata lacks 'view'"),
    ({"raw_meta": "{not json"}, "expected a render3d generator file, got {file} whose 'render3d' metadata is not JSON"),
    ({"edit_meta": lambda meta: {**meta, "generator_type": "geod"}},
     "expected a generator this render3d builds, got {file}, whose metadata says generator_type: expected one of "
     "'volumegan', got 'geod'"),
    ({"edit_meta": lambda meta: {**meta, "generator": {**meta["generator"], "z_dim": 9}}},
     "expected the weights of the generator its metadata describes, got {file}, which does not fit it: size mismatch "
     "for mapping_network.layers.0.weight"),
    ({"edit_tensors": lambda tensors: {k: v for k, v in tensors.items() if k != "density_head.bias"}},
     "expected the weights of the generator its metadata describes, got {file}, which does not fit it: Missing "
     "key(s) in state_dict: \"density_head.bias\""),
    ({"edit_meta": lambda meta: {**meta, "stage": {"resolution": 12, "blend": 1.0}}},
     "expected a generator file whose metadata 'stage' is {{'resolution': R, 'blend': B}}, got {file} with "
     "{{'resolution': 12, 'blend': 1.0}} (VolumeGAN.set_stage: argument 'resolution' expected one of 8, 16, got 12)"),
    ({"edit_meta": lambda meta: {**meta, "stage": [8, 1.0]}},
     "expected a generator file whose metadata 'stage' is {{'resolution': R, 'blend': B}}, got {file} with [8, 1.0]"),
])
def test_a_generator_file_that_does_not_describe_itself_is_named(two_checkpoints, tmp_path, edit, message):
    """A generator file whose metadata is incomplete, not JSON, or of another generator, or
    whose weights do not fit its config, is a ValueError naming it (render, export-mesh, eval
    and view report it in one line); they were KeyErrors and RuntimeErrors."""
    from render3d.training import load_generator

    source = two_checkpoints / "checkpoints" / "step-0000002" / "generator.safetensors"
    file = _edited_generator(source, tmp_path / "G.safetensors", **edit)
    with pytest.raises(ValueError, match=re.escape("load_generator: argument 'path' " + message.format(file=file))):
        load_generator(file)


def test_save_generator_wants_the_metadata_that_loading_needs(two_checkpoints, tmp_path):
    from render3d.training import load_generator, save_generator
    from render3d.training.checkpoint import generator_metadata

    G, meta = load_generator(two_checkpoints)
    with pytest.raises(ValueError, match=re.escape("save_generator: argument 'metadata' expected the keys "
                                                   "generator_type, generator, view (generator_metadata(type, config, "
                                                   "{'view': ...})), got none for view")):
        save_generator(tmp_path / "G.safetensors", G, generator_metadata("volumegan", G.config))
    assert not list(tmp_path.iterdir())
    save_generator(tmp_path / "G.safetensors", G, generator_metadata("volumegan", G.config, {"view": meta["view"]}))
    assert load_generator(tmp_path / "G.safetensors")[1]["view"] == meta["view"]


def test_bf16_on_a_gpu_without_it_is_refused_naming_the_gpu(monkeypatch):
    """precision=bfloat16 on a CUDA GPU before compute capability 8.0 (torch would emulate bf16
    there, slower than float32): refused before the first step. The GPU is faked: the check
    asks torch.cuda only through these three functions."""
    from render3d.training.checks import SetupError, check_precision

    calls = []
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation: calls.append(
        including_emulation) or False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "Tesla V100-SXM2-16GB")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (7, 0))
    gpu = torch.device("cuda", 0)
    with pytest.raises(SetupError) as error:
        check_precision("bfloat16", gpu)
    assert str(error.value) == ("train: config.precision 'bfloat16' expected a GPU with bf16 arithmetic (compute "
                                "capability 8.0 or newer), got Tesla V100-SXM2-16GB (7.0): use precision=float32")
    assert calls == [False]                                 # native bf16, not torch's emulation
    check_precision("float32", gpu)
    check_precision("bfloat16", torch.device("cpu"))        # the CPU runs bf16 (AVX-512 BF16 or emulated)


@pytest.mark.parametrize("avx512_bf16, amx", [(False, False), (True, False), (False, True)])
def test_bf16_on_a_cpu_without_bf16_instructions_is_said(monkeypatch, avx512_bf16, amx):
    """precision=bfloat16 on a CPU without AVX-512 BF16 or AMX (oneDNN emulates bf16 there): a
    note in the run's header, not a refusal. The CPU's features are faked through torch.cpu."""
    from render3d.training.checks import precision_note

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    cpu = torch.device("cpu")
    note = precision_note("bfloat16", cpu)
    if avx512_bf16 or amx:
        assert note is None
    else:
        assert note == ("train: this CPU has no bf16 instructions (AVX-512 BF16 or AMX), so bf16 autocast is "
                        "emulated here and may train slower than float32: `python bench/train.py --bf16-sizes 64` "
                        "times both")
    assert precision_note("float32", cpu) is None
    assert precision_note("bfloat16", torch.device("cuda", 0)) is None     # a GPU: check_precision's
