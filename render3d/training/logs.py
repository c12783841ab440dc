"""What a training run writes as it goes, beside its checkpoints: TensorBoard scalars and
stats.jsonl (losses, R1, gradient norms, kimg/s, memory), metrics.jsonl (config.metrics)
and the generator of the best measurement (best/), image grids and orbit videos of the EMA
generator, and the progress bar; with the per-step sums the scalars are means of."""

from __future__ import annotations

import contextlib
import json
import math
import resource
import sys
import threading
import time
from pathlib import Path

import torch

from render3d._files import STORAGE_ERRORS, write_file

from .checkpoint import BEST_DIR, GENERATOR_FILE, RUN_CONFIG_FILE, read_generator_metadata, save_generator
from .config import TrainConfig, best_rank, config_dict
from .distributed import Distributed

SNAPSHOT_SEEDS = (0, 1, 2, 3)      # subjects in the image grids
SNAPSHOT_VIEWS = 4                 # views of each
VIDEO_FRAMES = 24
STATS_FILE = "stats.jsonl"
METRICS_FILE = "metrics.jsonl"     # config.metrics' rows


def add_stat(sums: dict, key: str, value: torch.Tensor | float) -> None:
    sums[key] = sums.get(key, 0.0) + float(value.detach() if isinstance(value, torch.Tensor) else value)


def grad_norm(module: torch.nn.Module) -> float:
    norms = [p.grad.norm() for p in module.parameters() if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


def reduce_stats(dist: Distributed, sums: dict, device) -> dict[str, float]:
    """Means since the last log line, averaged over processes (lazy terms over the steps
    that had them)."""
    keys = sorted(k for k in sums if k != "_count")
    count = sums.get("_count", 1)
    values = dist.mean(torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=device))
    return {k: float(v) / count for k, v in zip(keys, values)}


def logged_step(line: str) -> float:
    """The step of a stats.jsonl line; inf for a line that cannot be read (a write cut off)."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


def say(message: str) -> None:
    """A line on stderr while training runs: above the progress bar, not through it (tqdm clears
    the bar, writes the line and draws the bar again below it; a leading newline would leave
    the bar's text behind on a line of its own); without a bar, the line alone."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def _losses_said(stats: dict[str, float]) -> list[str]:
    """["G 1.23", "D 0.981"] and "R1 ..." when it ran: what the console shows of a stats row."""
    return [f"{label} {stats[key]:.3g}" for key, label in (("loss/G", "G"), ("loss/D", "D"), ("loss/r1", "R1"))
            if key in stats]


def bar_summary(step: int, stats: dict[str, float], resolution: int) -> str:
    """The progress bar's postfix after a log line: "step 120, 32 px, G 1.23, D 0.981" (and
    R1 when it ran), so the console shows where training is without TensorBoard."""
    return ", ".join([f"step {step}", f"{resolution} px", *_losses_said(stats)])


def log_line(step: int, nimg: int, stats: dict[str, float], resolution: int) -> str:
    """A stats row on the console when there is no progress bar (`--no-progress`: batch jobs,
    log files): "train: step 120: 0.48 kimg at 32 px, G 1.23, D 0.981, R1 0.05, 0.187 s/step"
    and, on a GPU, ", GPU 10.2 GB" (the peak so far). The time is that of the training steps
    alone (stats.jsonl's speed/step_s; the wall time's rate, speed/kimg_per_s, also counts the
    measurements, grids and checkpoints since the last row)."""
    parts = [f"{nimg / 1000:g} kimg at {resolution} px", *_losses_said(stats), f"{stats['speed/step_s']:.3g} s/step"]
    if "memory/gpu_peak_gb" in stats:
        parts.append(f"GPU {stats['memory/gpu_peak_gb']:.3g} GB")
    return f"train: step {step}: {', '.join(parts)}"


def _kept_best(run_dir: Path) -> dict | None:
    """The "best" entry of the run's best/generator.safetensors (`RunLog.keep_best`), if any."""
    path = run_dir / BEST_DIR / GENERATOR_FILE
    if not path.is_file():
        return None
    try:
        best = read_generator_metadata(path).get("best")
    except ValueError:                                  # damaged: the next measurement replaces it
        return None
    readable = isinstance(best, dict) and isinstance(best.get("value"), (int, float)) and "metric" in best
    return best if readable else None


def progress_bar(enabled: bool, total: int, done: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="img", unit_scale=True, desc="train", disable=not enabled,
                dynamic_ncols=True)


class RunLog:
    """The run folder's outputs: TensorBoard scalars, stats.jsonl, image grids, orbit videos.

    Training starts at `step`, `nimg` and `seconds` (the checkpoint's when `resumed`, else 0):
    what an earlier process logged after it (it ran past its last checkpoint before it stopped,
    or it wrote none) is dropped from stats.jsonl and purged from TensorBoard, so each step is
    there once. The speeds of a row are those since the row before, or since the start."""

    def __init__(self, run_dir: Path, config: TrainConfig, step: int = 0, nimg: int = 0,
                 seconds: float = 0.0, *, resumed: bool = False) -> None:
        import yaml

        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)         # images/ comes with the first grid or video
        write_file(run_dir / RUN_CONFIG_FILE, yaml.safe_dump(config_dict(config), sort_keys=False).encode())
        for name in (STATS_FILE, METRICS_FILE):
            if (run_dir / name).exists():
                kept = [line for line in (run_dir / name).read_text().splitlines(keepends=True)
                        if logged_step(line) <= step]
                write_file(run_dir / name, "".join(kept).encode())
        self.stats = open(run_dir / STATS_FILE, "a")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            print("train: tensorboard is not installed; scalars go to stats.jsonl only", file=sys.stderr)
            self.tensorboard = None
        else:
            _leave_tensorboards_storage_errors_to_the_caller()
            with _naming(self.tensorboard_dir):
                self.tensorboard = SummaryWriter(str(self.tensorboard_dir), purge_step=step + 1)
        self.last = (None, nimg, step, seconds)              # (wall time, nimg, step, seconds) of the last row
        self.best = _kept_best(run_dir) if resumed else None   # a fresh run's first measurement replaces it
        if not resumed and (run_dir / BEST_DIR / GENERATOR_FILE).is_file():
            fate = ("this run's first ranked measurement replaces it" if config.metrics.every else
                    "this run measures nothing (metrics.every=0), so it stays there, not this run's")
            print(f"train: {run_dir / BEST_DIR} holds the best generator of an earlier run in this folder; {fate}",
                  file=sys.stderr)

    def scalars(self, step: int, nimg: int, seconds: float, stats: dict, resolution: int, blend: float,
                device) -> dict[str, float]:
        """Log a stats row (TensorBoard, stats.jsonl); returns it with the speeds and memory."""
        now = time.perf_counter()
        then, then_nimg, then_step, then_seconds = self.last
        self.last = (now, nimg, step, seconds)
        stats = {**stats, "progress/kimg": nimg / 1000, "progress/resolution": resolution, "progress/blend": blend,
                 "speed/step_s": (seconds - then_seconds) / max(step - then_step, 1),   # training only, no logging
                 "memory/cpu_peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}
        if then is not None:    # wall time, logging and snapshots included; the first row's would count setup
            stats["speed/kimg_per_s"] = (nimg - then_nimg) / 1000 / max(now - then, 1e-9)
        if device.type == "cuda":
            stats["memory/gpu_peak_gb"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
        if self.tensorboard:
            with _naming(self.tensorboard_dir):
                for key, value in stats.items():
                    self.tensorboard.add_scalar(key, value, step)
        with _naming(Path(self.stats.name)):
            self.stats.write(json.dumps({"step": step, "nimg": nimg, "seconds": round(seconds, 3), **stats}) + "\n")
            self.stats.flush()
        return stats

    def metrics(self, step: int, nimg: int, metrics: dict[str, float], seconds: float) -> None:
        """A row of metrics.jsonl, TensorBoard scalars "metrics/<key>" and a line on the console;
        `seconds`: how long measuring took."""
        if self.tensorboard:
            with _naming(self.tensorboard_dir):
                for key, value in metrics.items():
                    self.tensorboard.add_scalar(f"metrics/{key}", value, step)
        row = {"step": step, "nimg": nimg, **metrics, "measure_seconds": round(seconds, 3)}
        with _naming(self.run_dir / METRICS_FILE), open(self.run_dir / METRICS_FILE, "a") as file:
            file.write(json.dumps(row) + "\n")
        said = ", ".join(f"{key} {value:.4g}" for key, value in metrics.items())
        say(f"train: step {step}: {said} ({seconds:.1f} s)")          # to a tenth: small ones take < 1 s

    def keep_best(self, G_ema, step: int, metrics: dict[str, float], metric: str,
                  generator_meta: dict) -> Path | None:
        """Keep the EMA generator of the best measurement so far in best/generator.safetensors
        (checkpoints rotate out, `keep_checkpoints`), ranked by `metric` (`best_rank`; the first
        of equal ones stays). Its header says which, with the step and all the scores. The
        written file when this one is the best, else None."""
        if metric not in metrics or not math.isfinite(metrics[metric]):
            return None
        kept = self.best
        if (kept is not None and kept["metric"] == metric
                and best_rank(metric, kept["value"]) <= best_rank(metric, metrics[metric])):
            return None
        best = {"metric": metric, "value": metrics[metric], "step": step, "metrics": metrics}
        (self.run_dir / BEST_DIR).mkdir(exist_ok=True)
        path = save_generator(self.run_dir / BEST_DIR / GENERATOR_FILE, G_ema, {**generator_meta, "best": best})
        self.best = best
        say(f"train: step {step}: the best {metric} so far; the generator is in {path}")
        return path

    def images(self, G_ema, step: int, view: dict) -> None:
        from render3d.generators.sampling import render_views, styles_from_seeds, view_cameras, views_grid_image
        from render3d.visualize import save_image

        device = next(G_ema.parameters()).device
        ws = styles_from_seeds(G_ema, SNAPSHOT_SEEDS, view)
        views = render_views(G_ema, ws, view_cameras(view, SNAPSHOT_VIEWS, G_ema.resolutions[-1], device=device))
        grid = views_grid_image(views)
        save_image(grid, self.run_dir / "images" / f"step-{step:07d}.png")
        if self.tensorboard:
            with _naming(self.tensorboard_dir):
                self.tensorboard.add_image("samples", grid, step)

    def video(self, G_ema, step: int, view: dict) -> None:
        from render3d.generators.sampling import orbit_frames, styles_from_seeds
        from render3d.visualize import save_video

        ws = styles_from_seeds(G_ema, SNAPSHOT_SEEDS[:2], view)
        frames = orbit_frames(G_ema, ws, view, VIDEO_FRAMES, G_ema.resolutions[-1])
        save_video(frames, self.run_dir / "images" / f"orbit-{step:07d}.mp4")

    @property
    def tensorboard_dir(self) -> Path:
        return self.run_dir / "tensorboard"

    def close(self, *, failing: bool = False) -> None:
        """Write what is buffered (TensorBoard's scalars too) and close the files. A write that
        fails raises an OSError naming the file or folder, unless `failing`: an error is on its
        way out already (often the same full disk), and this one does not replace it. Closing
        again does nothing."""
        steps = [(Path(self.stats.name), self.stats.close)]
        if self.tensorboard:           # flush raises an error of TensorBoard's thread; close does not
            steps += [(self.tensorboard_dir, self.tensorboard.flush), (self.tensorboard_dir, self.tensorboard.close)]
        first = None
        for path, step in steps:
            try:
                with _naming(path):
                    step()
            except OSError as error:
                first = first or error
        if first is not None and not failing:
            raise first


@contextlib.contextmanager
def _naming(path: Path):
    """An OSError without a file name (a full disk while a row is written) names `path`."""
    try:
        yield
    except OSError as error:
        if error.filename:
            raise
        raise OSError(error.errno, error.strerror, str(path)) from None


def _leave_tensorboards_storage_errors_to_the_caller() -> None:
    """TensorBoard writes its event file in a thread of its own. When a write fails there, the
    thread stores the error for the next `add_*` or `flush` to raise, and then prints its
    traceback: a full disk came out as a traceback beside the one line that says so. This hook
    keeps quiet about storage errors (a full disk, a quota, a size limit, a read-only folder) of
    that thread only; `RunLog` raises them, naming the folder. Installed once per process."""
    previous = threading.excepthook
    if getattr(previous, "render3d_tensorboard", False):
        return

    def hook(args) -> None:
        if not (type(args.thread).__module__.startswith("tensorboard.") and isinstance(args.exc_value, OSError)
                and args.exc_value.errno in STORAGE_ERRORS):
            previous(args)

    hook.render3d_tensorboard = True
    threading.excepthook = hook
