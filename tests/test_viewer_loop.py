"""The viewer's render loop without a browser: previews while the camera moves, full size
once it rests, a newer camera cancels a stale render, and a failed render is reported
while the loop goes on."""

import threading
import time

import numpy as np
import pytest

from render3d_viewer.loop import FULL, PREVIEW, RenderCancelled, RenderLoop

TIMEOUT = 10.0


class Recorder:
    """publish/report targets that remember what reached them."""

    def __init__(self):
        self.frames, self.errors = [], []
        self.changed = threading.Condition()

    def publish(self, frame):
        with self.changed:
            self.frames.append(frame)
            self.changed.notify_all()

    def report(self, error, view):
        with self.changed:
            self.errors.append((error, view))
            self.changed.notify_all()

    def wait_for(self, predicate):
        with self.changed:
            assert self.changed.wait_for(predicate, TIMEOUT), "timed out"


def image(size):
    return np.zeros((size, size, 3), np.uint8)


@pytest.fixture
def recorder():
    return Recorder()


def make_loop(render, recorder, **kwargs):
    return RenderLoop(render, recorder.publish, recorder.report, **kwargs)


def test_previews_while_moving_then_full_size_at_rest(recorder):
    def render(view, size, cancelled):
        time.sleep(0.01)
        return image(size)

    loop = make_loop(render, recorder, rest_seconds=0.3, min_preview=16)
    try:
        for i in range(10):  # a camera dragged for 0.5 s
            loop.move(i, 64)
            time.sleep(0.05)
        moving = list(recorder.frames)
        recorder.wait_for(lambda: recorder.frames and recorder.frames[-1].level == FULL)
    finally:
        loop.stop()
    assert moving and all(f.level == PREVIEW and 16 <= f.long_side <= 32 for f in moving)
    assert all(f.image.shape == (f.long_side, f.long_side, 3) for f in recorder.frames)
    final = recorder.frames[-1]
    assert (final.view, final.long_side, final.image.shape) == (9, 64, (64, 64, 3))
    assert [f.level for f in recorder.frames].count(FULL) == 1
    assert not recorder.errors


def test_refresh_renders_full_size_at_once(recorder):
    loop = make_loop(lambda view, size, cancelled: image(size), recorder)
    try:
        loop.refresh("settings", 48)
        recorder.wait_for(lambda: recorder.frames)
    finally:
        loop.stop()
    assert [(f.view, f.level, f.long_side) for f in recorder.frames] == [("settings", FULL, 48)]


def test_newer_camera_cancels_a_stale_render(recorder):
    started, outcomes = threading.Event(), []

    def render(view, size, cancelled):
        if view == "slow":
            started.set()
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                if cancelled():
                    outcomes.append("cancelled")
                    raise RenderCancelled
                time.sleep(0.005)
            outcomes.append("ran to the end")
        return image(size)

    loop = make_loop(render, recorder)
    try:
        loop.refresh("slow", 32)
        assert started.wait(TIMEOUT)
        began = time.monotonic()
        loop.refresh("new", 32)
        recorder.wait_for(lambda: recorder.frames)
        waited = time.monotonic() - began
    finally:
        loop.stop()
    assert outcomes == ["cancelled"]
    assert [f.view for f in recorder.frames] == ["new"]
    assert waited < TIMEOUT / 2


def test_failed_render_is_reported_and_the_loop_goes_on(recorder):
    def render(view, size, cancelled):
        if view == "bad":
            raise ValueError("render: argument 'camera' expected something else")
        return image(size)

    loop = make_loop(render, recorder)
    try:
        loop.refresh("bad", 32)
        recorder.wait_for(lambda: recorder.errors)
        time.sleep(0.3)  # no retry of the failed view meanwhile
        assert len(recorder.errors) == 1 and not recorder.frames
        loop.refresh("good", 32)
        recorder.wait_for(lambda: recorder.frames)
        assert loop.alive
    finally:
        loop.stop()
    error, view = recorder.errors[0]
    assert isinstance(error, ValueError) and view == "bad"
    assert [f.view for f in recorder.frames] == ["good"]


def test_stop_ends_the_thread_and_cancels_the_render(recorder):
    started = threading.Event()

    def render(view, size, cancelled):
        started.set()
        while not cancelled():
            time.sleep(0.005)
        raise RenderCancelled

    loop = make_loop(render, recorder)
    loop.refresh("view", 32)
    assert started.wait(TIMEOUT)
    loop.stop()
    assert not loop.alive and not recorder.frames


def test_preview_size_follows_the_measured_speed(recorder):
    loop = make_loop(lambda view, size, cancelled: image(size), recorder, frame_budget=0.1, min_preview=32)
    try:
        assert loop.preview_size(512) == 32           # nothing measured yet: the smallest
        assert loop.preview_size(20) == 20            # never above the full size
        loop._pixels_per_second = 100 * 100 / 0.1     # 100 x 100 pixels fit the budget
        assert loop.preview_size(512) == 100
        assert loop.preview_size(128) == 64           # at most half the full size
        loop._pixels_per_second = 1.0
        assert loop.preview_size(512) == 32
    finally:
        loop.stop()
