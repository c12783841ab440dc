"""Checkpoints: safetensors weights plus JSON metadata, written atomically; no pickled code.

A checkpoint is a folder ``RUN/checkpoints/step-NNNNNNN/`` holding

    generator.safetensors   the EMA generator alone, self-contained: its header metadata
                            ("render3d") holds the generator type, its config and view
                            defaults, so `load_generator` needs nothing else (ship this file)
    training.safetensors    G, D, G_ema and loss buffers (prefixes "G.", "D.", "G_ema.", "loss.")
    optimizer.pt            both Adam states and the torch RNG states, loaded with weights_only=True
    state.json              step, images seen, config, versions, numpy and python RNG states

It is written into a temporary folder and renamed into place, so a crash never leaves a
half-written checkpoint under the final name; a write that fails (a full disk) removes the
temporary folder and raises an OSError naming the file under its final name. Each file is
serialized in memory and then written, as safetensors and torch.save report a full disk in
their own terms (a SafetensorError, torch's "unexpected pos").
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path

import numpy as np
import torch

from render3d._checks import check_device, error_reason
from render3d._files import write_as, write_file
from render3d.config import from_dict, to_dict
from render3d.registry import GENERATORS

GENERATOR_FILE = "generator.safetensors"
TRAINING_FILE = "training.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "state.json"
RUN_CONFIG_FILE = "config.yaml"     # in the run folder, beside checkpoints/: the resolved config
BEST_DIR = "best"                   # in the run folder: the generator of the best measurement (logs.RunLog)
METADATA_KEY = "render3d"
METADATA_KEYS = ("generator_type", "generator", "view")   # what loading and rendering a generator need


def versions() -> dict:
    import render3d

    return {"render3d": render3d.__version__, "torch": torch.__version__, "python": platform.python_version()}


def _tensors(module: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers as contiguous CPU tensors (safetensors wants no
    shared storage)."""
    return {prefix + k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def generator_metadata(generator_type: str, generator_config, extra: dict | None = None) -> dict:
    return {"format": "render3d-generator", "version": 1, "generator_type": generator_type,
            "generator": to_dict(generator_config), **(extra or {}), "versions": versions()}


def save_generator(path: str | Path, G: torch.nn.Module, metadata: dict) -> Path:
    """Write G's weights with `metadata` (JSON, from `generator_metadata` with a ``view``) in
    the safetensors header, atomically."""
    return write_file(Path(path), _generator_bytes(G, metadata))


def _generator_bytes(G: torch.nn.Module, metadata: dict) -> bytes:
    from safetensors.torch import save

    missing = [key for key in METADATA_KEYS if key not in metadata]
    if missing:
        raise ValueError(f"save_generator: argument 'metadata' expected the keys {', '.join(METADATA_KEYS)} "
                         f"(generator_metadata(type, config, {{'view': ...}})), got none for {', '.join(missing)}")
    stage = getattr(G, "stage", None)                  # a generator still growing (VolumeGAN.set_stage)
    if stage is not None:
        metadata = {**metadata, "stage": {"resolution": stage[0], "blend": stage[1]}}
    return save(_tensors(G), metadata={METADATA_KEY: json.dumps(metadata)})


def read_generator_metadata(path: str | Path) -> dict:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except SafetensorError as error:  # not a safetensors file, or a truncated one
        raise ValueError(f"load_generator: argument 'path' expected a render3d generator file (safetensors), got "
                         f"{path}, which safetensors cannot read ({error_reason(error)})") from None
    if METADATA_KEY not in header:
        raise ValueError(f"load_generator: argument 'path' expected a render3d generator file (safetensors with "
                         f"'{METADATA_KEY}' metadata), got {path} without it")
    try:
        meta = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as error:
        raise ValueError(f"load_generator: argument 'path' expected a render3d generator file, got {path} whose "
                         f"'{METADATA_KEY}' metadata is not JSON ({error_reason(error)})") from None
    missing = [key for key in METADATA_KEYS if key not in meta] if isinstance(meta, dict) else list(METADATA_KEYS)
    if missing:
        raise ValueError(f"load_generator: argument 'path' expected a render3d generator file, got {path} whose "
                         f"'{METADATA_KEY}' metadata lacks {', '.join(map(repr, missing))}")
    return meta


def resolve_generator_file(path: str | Path) -> Path:
    """A generator file from a path to one, a checkpoint folder, or a run folder (its newest
    checkpoint)."""
    path = Path(path)
    if path.is_file():
        return path
    if (path / GENERATOR_FILE).is_file():
        return path / GENERATOR_FILE
    if (path / "checkpoints").is_dir() and (latest := latest_checkpoint(path)) is not None:
        return latest / GENERATOR_FILE
    if not path.exists():
        found = "which does not exist"
    elif (path / "checkpoints").is_dir() or (path / RUN_CONFIG_FILE).is_file():
        found = f"a run folder without a checkpoint yet ({_first_checkpoint(path)})"
    else:
        found = f"a folder with neither {GENERATOR_FILE} nor checkpoints/"
    raise ValueError(f"load_generator: argument 'path' expected a generator file (.safetensors), a checkpoint folder "
                     f"or a run folder with checkpoints, got {path}, {found}")


def is_generator_path(path: str | Path) -> bool:
    """Whether `path` is a generator file (.safetensors), a checkpoint folder or a run folder with
    checkpoints: what `resolve_generator_file` takes."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() == ".safetensors"
    try:
        resolve_generator_file(path)
    except ValueError:
        return False
    return True


def generator_name(path: str | Path) -> str:
    """A short name for what is made from the generator at `path` (the command line's default
    outputs, the viewer's downloads): ``RUN_step-0001200`` for a run's checkpoint (a run
    folder's newest), ``RUN_best`` for its best measurement's generator, the folder's name for a
    checkpoint folder outside a run, the file's stem for any other generator file."""
    file = resolve_generator_file(path).resolve()
    if file.name != GENERATOR_FILE:
        return file.stem
    folder = file.parent
    if folder.parent.name == "checkpoints":
        return f"{folder.parent.parent.name}_{folder.name}"
    if folder.name == BEST_DIR and (folder.parent / RUN_CONFIG_FILE).is_file():
        return f"{folder.parent.name}_{folder.name}"
    return folder.name


def _first_checkpoint(run_dir: Path) -> str:
    """When a run's training writes its first checkpoint, as far as its config.yaml says."""
    import yaml

    try:
        every = yaml.safe_load((run_dir / RUN_CONFIG_FILE).read_text())["checkpoint_every"]
    except Exception:                               # no config, or not one of ours: say it without the number
        return "training writes the first after checkpoint_every steps, and at Ctrl-C"
    return f"training writes the first after {every} steps (checkpoint_every), and at Ctrl-C"


def resolve_checkpoint_folder(path: str | Path, argument: str = "resume") -> Path:
    """The checkpoint folder to train on from: `path` itself, or a run folder's newest
    checkpoint; ValueError, naming `argument`, when it is neither."""
    path = Path(path)
    folder = latest_checkpoint(path) if (path / "checkpoints").is_dir() else path
    if folder is None or not all((folder / name).is_file() for name in (TRAINING_FILE, OPTIMIZER_FILE, STATE_FILE)):
        found = "nothing there" if not path.exists() else "no complete checkpoint in it"
        raise ValueError(f"train: {argument} expected a checkpoint folder (RUN/checkpoints/step-N) or a run folder "
                         f"with checkpoints, got {str(path)!r} ({found})")
    return folder


def checkpoint_step(folder: Path) -> int:
    """The step of a checkpoint folder ``step-NNNNNNN``."""
    return int(folder.name.removeprefix("step-"))


def load_generator(path: str | Path, device="cpu") -> tuple[torch.nn.Module, dict]:
    """(generator in eval mode, metadata) from a generator file, checkpoint or run folder.

    The metadata holds ``generator_type``, ``generator`` (its config), ``view`` (radius,
    fov_degrees, pitch, pivot of the training cameras), ``training`` (steps, images, time)
    and, for a generator saved while progressive growing had not reached its largest
    resolution, ``stage`` (resolution, blend: `set_stage`, so that it renders what it was
    trained to).
    ValueError, naming the file, when it is not one, its metadata is incomplete or describes a
    generator this version does not build, or its weights do not fit that generator; and
    for a device this machine does not have.
    """
    from safetensors.torch import load_file

    device = check_device("load_generator", "device", device)
    file = resolve_generator_file(path)
    meta = read_generator_metadata(file)
    try:
        entry = GENERATORS.get(meta["generator_type"])
        G = entry.cls(from_dict(entry.config, meta["generator"], path="generator"))
    except ValueError as error:                         # another version's generator, or an edited file
        raise ValueError(f"load_generator: argument 'path' expected a generator this render3d builds, got {file}, "
                         f"whose metadata says {error}") from None
    try:
        G.load_state_dict(load_file(str(file)))
    except RuntimeError as error:                       # missing, unexpected or differently shaped weights
        detail = " ".join(line.strip() for line in str(error).strip().splitlines()[1:3])
        raise ValueError(f"load_generator: argument 'path' expected the weights of the generator its metadata "
                         f"describes, got {file}, which does not fit it: {detail}") from None
    if "stage" in meta:
        try:
            G.set_stage(**meta["stage"])
        except (AttributeError, TypeError, ValueError) as error:    # edited, or a generator that does not grow
            raise ValueError(f"load_generator: argument 'path' expected a generator file whose metadata 'stage' "
                             f"is {{'resolution': R, 'blend': B}}, got {file} with {meta['stage']!r} "
                             f"({error})") from None
    return G.to(device).eval().requires_grad_(False), meta


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("step-")
                  and (p / STATE_FILE).is_file())


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = checkpoint_dirs(run_dir)
    return found[-1] if found else None


def save_checkpoint(run_dir: str | Path, step: int, *, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], rng: dict, state: dict,
                    generator_meta: dict, keep: int = 3) -> Path:
    """Write checkpoint `step` (see the module docstring) and keep the newest `keep`."""
    import io

    from safetensors.torch import save

    def training() -> bytes:
        tensors = {}
        for name, module in modules.items():
            tensors.update(_tensors(module, f"{name}."))
        return save(tensors)

    def optimizer() -> bytes:
        buffer = io.BytesIO()
        torch.save({"optimizers": {k: v.state_dict() for k, v in optimizers.items()}, "torch_rng": rng["torch"]},
                   buffer)
        return buffer.getvalue()

    def state_json() -> bytes:
        return json.dumps({**state, "numpy_rng": _plain(rng["numpy"]), "python_rng": _plain(rng["python"]),
                           "versions": versions()}, indent=1).encode()

    final = Path(run_dir) / "checkpoints" / f"step-{step:07d}"
    temp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    try:                                                # one file at a time: one in memory at a time
        write_as(temp / GENERATOR_FILE, _generator_bytes(modules["G_ema"], generator_meta), final / GENERATOR_FILE)
        for name, contents in ((TRAINING_FILE, training), (OPTIMIZER_FILE, optimizer), (STATE_FILE, state_json)):
            write_as(temp / name, contents(), final / name)
    except BaseException:                               # a full disk: free what was written, keep the rest
        shutil.rmtree(temp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(temp, final)
    for old in checkpoint_dirs(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old)
    return final


class DamagedCheckpoint(ValueError):
    """A checkpoint file that cannot be read: truncated, corrupted or not what it is named."""


STATE_KEYS = ("step", "nimg", "seconds", "numpy_rng", "python_rng")


def _read_file(path: Path):
    """The contents of one file of a checkpoint folder (by its name); DamagedCheckpoint naming
    it when it cannot be read."""
    from safetensors.torch import load_file

    readers = {TRAINING_FILE: lambda: load_file(str(path)), OPTIMIZER_FILE: lambda: torch.load(path, weights_only=True),
               STATE_FILE: lambda: json.loads(path.read_text())}
    try:
        return readers[path.name]()
    except Exception as error:                      # whatever the reader raises: the file is not what it should be
        raise DamagedCheckpoint(f"{path} cannot be read, it is damaged or truncated ({error_reason(error)})") from None


def read_checkpoint(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """(tensors, optimizer.pt's contents, state.json) of a checkpoint folder; DamagedCheckpoint
    naming the file that cannot be read, before anything is loaded into a network."""
    folder = Path(folder)
    contents = {name: _read_file(folder / name) for name in (TRAINING_FILE, OPTIMIZER_FILE, STATE_FILE)}
    saved, state = contents[OPTIMIZER_FILE], contents[STATE_FILE]
    missing = [f"{OPTIMIZER_FILE} {key!r}" for key in ("optimizers", "torch_rng")
               if not isinstance(saved, dict) or key not in saved]
    missing += [f"{STATE_FILE} {key!r}" for key in STATE_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise DamagedCheckpoint(f"{folder} is not a whole render3d checkpoint: it lacks {', '.join(missing)}")
    return contents[TRAINING_FILE], saved, state


def checkpoint_config(folder: str | Path) -> dict:
    """The resolved config a checkpoint folder was trained with (its state.json "config", as
    `config_dict` wrote it); DamagedCheckpoint when state.json cannot be read or holds none."""
    path = Path(folder) / STATE_FILE
    state = _read_file(path)
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise DamagedCheckpoint(f"{path} holds no config (a state.json of render3d's holds the one it was trained "
                                f"with)")
    return state["config"]


def load_checkpoint(folder: str | Path, *, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer]) -> tuple[dict, dict]:
    """Load weights and optimizer states in place; returns (state.json, rng states: "torch"
    as `Distributed.gather_rng` gave them, "numpy" and "python" ready for np.random.set_state
    and random.setstate).
    DamagedCheckpoint when a file cannot be read (nothing is loaded then); RuntimeError,
    ValueError or KeyError when the contents do not fit `modules` and `optimizers`."""
    tensors, saved, state = read_checkpoint(folder)
    for name, module in modules.items():
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(saved["optimizers"][name])
    python = tuple(tuple(x) if isinstance(x, list) else x for x in state.pop("python_rng"))
    return state, {"torch": saved["torch_rng"], "numpy": tuple(state.pop("numpy_rng")), "python": python}


def _plain(value):
    """numpy's and python's RNG states as JSON-ready lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
