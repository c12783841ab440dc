"""`render3d demo`: writes a readable grid and video, prints the paths, and fails before any
work on an unwritable output folder."""

import subprocess
import sys

import imageio.v3 as iio
import numpy as np


def test_demo_writes_grid_and_video(tmp_path):
    cmd = [sys.executable, "-m", "render3d", "demo", "--out", str(tmp_path), "--size", "32", "--views", "3",
           "--video-size", "24", "--frames", "5"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    grid, video = tmp_path / "views.png", tmp_path / "orbit.mp4"
    assert str(grid.resolve()) in result.stdout and str(video.resolve()) in result.stdout
    picture = iio.imread(grid)
    # 4 rows (colour, depth, normals, opacity) x 3 views of 32 px with 2 px padding
    assert picture.shape == (2 + 4 * 34, 2 + 3 * 34, 3)
    frames = iio.imread(video)
    assert frames.shape == (5, 24, 24, 3)
    # the scene is in view and the orbit moves: frames are not blank and not all the same
    assert frames.std() > 10
    assert np.abs(frames[0].astype(int) - frames[2].astype(int)).mean() > 2


def test_demo_rejects_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = subprocess.run([sys.executable, "-m", "render3d", "demo", "--out", str(blocker / "sub")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "render3d demo: cannot write to --out" in result.stderr
    assert "views" not in result.stderr  # failed before rendering anything


def test_demo_rejects_bad_sizes(tmp_path):
    result = subprocess.run([sys.executable, "-m", "render3d", "demo", "--out", str(tmp_path), "--frames", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--frames expected a positive number, got 0" in result.stderr
