"""One browser's render loop: a thread that renders the latest camera, small while the
camera moves and at full size once it rests, and drops a render that a newer camera made
stale (the nerfstudio pattern, without its `sys.settrace` hook: renders check a
`cancelled` callable between chunks of rays instead).

The loop knows nothing of viser or of what is drawn: it is given a `render` function, a
`publish` function for finished frames and a `report` function for errors, so it is tested
without a browser.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PREVIEW = "preview"
FULL = "full"


class RenderCancelled(Exception):
    """Raised by a render that saw `cancelled()` turn true: a newer camera or setting came."""


@dataclass(frozen=True)
class Frame:
    """A finished render: ``image`` uint8 ``[H, W, 3]``, its `level` (PREVIEW or FULL),
    the `long_side` asked for, the render's `seconds`, the frames per second published
    recently (`fps`, 0 until two frames exist) and the `view` it shows."""

    image: np.ndarray
    level: str
    long_side: int
    seconds: float
    fps: float
    view: Any


RenderFn = Callable[[Any, int, Callable[[], bool]], np.ndarray]


class RenderLoop:
    """Renders the latest view given to `move` / `refresh` in its own thread.

    Args:
        render: ``(view, long_side, cancelled) -> uint8 image [H, W, 3]``; should raise
            `RenderCancelled` soon after ``cancelled()`` returns True.
        publish: called with each finished `Frame` (from the loop's thread).
        report: called with ``(exception, view)`` when a render fails; the loop goes on and
            tries again at the next camera or setting.
        rest_seconds: the camera counts as resting this long after its last move.
        frame_budget: seconds a preview should take; its size follows the measured speed.
        min_preview: the smallest preview's longer side in pixels.
    """

    def __init__(self, render: RenderFn, publish: Callable[[Frame], None],
                 report: Callable[[Exception, Any], None], *, rest_seconds: float = 0.2,
                 frame_budget: float = 1 / 15, min_preview: int = 32) -> None:
        self._render, self._publish, self._report = render, publish, report
        self.rest_seconds, self.frame_budget, self.min_preview = rest_seconds, frame_budget, min_preview
        self._cond = threading.Condition()
        self._view: Any = None
        self._long_side = 0
        self._version = 0             # bumped by every move / refresh
        self._done = (0, FULL)        # (version, level) last rendered or failed
        self._moved_at = -math.inf    # time.monotonic() of the last move
        self._pixels_per_second: float | None = None
        self._published: deque[float] = deque(maxlen=10)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="render3d-viewer-render", daemon=True)
        self._thread.start()

    # --- what the browser side calls -----------------------------------------------------

    def move(self, view: Any, long_side: int) -> None:
        """A new camera: render a preview now, the full size once it rests."""
        self._submit(view, long_side, moving=True)

    def refresh(self, view: Any, long_side: int) -> None:
        """A new setting with the camera at rest: render at full size."""
        self._submit(view, long_side, moving=False)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel any render and end the thread."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def preview_size(self, long_side: int) -> int:
        """The preview's longer side: what fits `frame_budget` at the measured speed, at
        most half of `long_side` and at least `min_preview` (or `long_side` if smaller)."""
        floor = min(self.min_preview, long_side)
        if self._pixels_per_second is None:
            fitting = floor
        else:
            fitting = int(math.sqrt(self._pixels_per_second * self.frame_budget))
        return max(floor, min(long_side // 2, fitting))

    # --- the thread ----------------------------------------------------------------------

    def _submit(self, view: Any, long_side: int, moving: bool) -> None:
        with self._cond:
            self._view, self._long_side = view, long_side
            self._version += 1
            if moving:
                self._moved_at = time.monotonic()
            self._cond.notify_all()

    def _next_job(self) -> tuple[int, str, Any, int] | None:
        """Under the lock: wait for work -> (version, level, view, long_side), None once stopped."""
        while not self._stopped:
            resting_in = self._moved_at + self.rest_seconds - time.monotonic()
            done_version, done_level = self._done
            if done_version < self._version:
                level = PREVIEW if resting_in > 0 else FULL
                return self._version, level, self._view, self._long_side
            if done_level == PREVIEW and resting_in <= 0:
                return self._version, FULL, self._view, self._long_side
            self._cond.wait(resting_in if done_level == PREVIEW else None)
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                job = self._next_job()
            if job is None:
                return
            version, level, view, long_side = job
            size = long_side if level == FULL else self.preview_size(long_side)

            def cancelled() -> bool:
                return self._stopped or self._version != version

            started = time.perf_counter()
            try:
                image = self._render(view, size, cancelled)
            except RenderCancelled:
                continue
            except Exception as error:  # a render error must not end the loop
                log.exception("render3d viewer: render failed")
                with self._cond:
                    self._done = (version, FULL)  # no retry until the next camera or setting
                self._report(error, view)
                continue
            seconds = time.perf_counter() - started
            with self._cond:
                self._done = (version, level)
                rate = image.shape[0] * image.shape[1] / max(seconds, 1e-6)
                old = self._pixels_per_second
                self._pixels_per_second = rate if old is None else 0.5 * old + 0.5 * rate
            now = time.monotonic()
            self._published.append(now)
            span = now - self._published[0]
            fps = (len(self._published) - 1) / span if span > 0 else 0.0
            self._publish(Frame(image, level, size, seconds, fps, view))
