"""Pictures of renders: colour-mapped depth, normals, image grids, orbit videos and camera
frustums.

Images are float tensors ``[B, C, H, W]`` with colours in [0, 1] unless said otherwise.
"""

from __future__ import annotations

import errno
import math
import os
from pathlib import Path

import numpy as np
import torch

from ._checks import check_choice, check_tensor, is_number
from ._files import STORAGE_ERRORS, temp_path, write_file

# Polynomial fit of the Turbo colour map (Mikhailov, Google, 2019, Apache-2.0): for x in [0, 1],
# channel = sum_k c_k x^k with these coefficients (k = 0..5).
_TURBO = torch.tensor(
    [
        [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
        [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
        [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
    ],
    dtype=torch.float64,
)


def turbo(x: torch.Tensor) -> torch.Tensor:
    """Turbo colour map: ``[...]`` values in [0, 1] -> ``[..., 3]`` RGB in [0, 1]."""
    x = x.clamp(0, 1).double()
    powers = torch.stack([x**k for k in range(6)], dim=-1)
    return (powers @ _TURBO.to(x.device).T).clamp(0, 1)


def depth_to_rgb(
    depth: torch.Tensor, alpha: torch.Tensor | None = None, *, near: float | None = None, far: float | None = None,
    background: float = 1.0,
) -> torch.Tensor:
    """Colour-map depth ``[B, 1, H, W]`` with Turbo, near warm (red) and far cool (blue).

    The range defaults to the 1st..99th percentile of depth where ``alpha > 0.5`` (so empty
    pixels at the far plane do not flatten the picture); pixels with ``alpha`` below 0.5 get
    `background`. Returns ``[B, 3, H, W]``.
    """
    check_tensor("render3d.visualize.depth_to_rgb", "depth", depth, ("B", 1, "H", "W"))
    mask = (alpha > 0.5) if alpha is not None else torch.ones_like(depth, dtype=torch.bool)
    valid = depth[mask]
    if near is None or far is None:
        if valid.numel() > 0:
            levels = torch.tensor([0.01, 0.99], dtype=torch.float64)
            lo, hi = torch.quantile(valid.double().cpu()[:1_000_000], levels).tolist()
        else:
            lo, hi = 0.0, 1.0
        near = lo if near is None else near
        far = hi if far is None else far
    x = 1 - (depth[:, 0] - near) / max(far - near, 1e-12)
    rgb = turbo(x).permute(0, 3, 1, 2).to(depth.dtype)
    return torch.where(mask, rgb, torch.full_like(rgb, background))


def normals_to_rgb(normals: torch.Tensor, alpha: torch.Tensor | None = None, *,
                   background: float = 1.0) -> torch.Tensor:
    """Unit normals ``[B, 3, H, W]`` -> RGB ``n * 0.5 + 0.5`` (the usual normal-map colours);
    pixels with ``alpha`` below 0.5 get `background`."""
    check_tensor("render3d.visualize.normals_to_rgb", "normals", normals, ("B", 3, "H", "W"))
    rgb = normals * 0.5 + 0.5
    if alpha is None:
        return rgb
    return torch.where(alpha > 0.5, rgb, torch.full_like(rgb, background))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``[B, C, H, W]`` in [0, 1] -> ``uint8 [B, H, W, C]`` (C = 1 is repeated to RGB)."""
    check_tensor("render3d.visualize.to_uint8", "images", images, ("B", None, "H", "W"))
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    array = (images.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return array.permute(0, 2, 3, 1).cpu().numpy()


def make_grid(rows: list[torch.Tensor], *, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile rows of images into one picture: each entry of `rows` is ``[N, 3, H, W]`` (all the
    same size), drawn left to right; rows top to bottom. Returns ``[3, H', W']``."""
    if not rows:
        raise ValueError("render3d.visualize.make_grid: argument 'rows' expected at least one row, got none")
    shape = rows[0].shape
    for i, row in enumerate(rows):
        if row.shape != shape or row.dim() != 4:
            raise ValueError(
                f"render3d.visualize.make_grid: argument 'rows' expected every row of shape {list(shape)}, "
                f"got {list(row.shape)} for row {i}"
            )
    n, c, h, w = shape
    canvas = torch.full((c, padding + len(rows) * (h + padding), padding + n * (w + padding)), pad_value)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            y, x = padding + i * (h + padding), padding + j * (w + padding)
            canvas[:, y:y + h, x:x + w] = image.detach().cpu().to(canvas.dtype)
    return canvas


VIEW_ROWS = ("image", "depth", "normals", "alpha")


def views_grid(views: dict[str, torch.Tensor], rows=VIEW_ROWS, *, background: float = 1.0) -> torch.Tensor:
    """One picture of rendered views: a row per entry of `rows`, a column per view.

    views: what a renderer returns for B views: ``image [B, 3, H, W]``, ``depth [B, 1, H, W]``
    (distance along the ray), ``alpha [B, 1, H, W]`` and ``normals [B, 3, H, W]`` (world, unit).
    Depth is colour-mapped with Turbo (near red, far blue) and normals as ``n * 0.5 + 0.5``,
    both with `background` where alpha < 0.5; alpha is shown as grey levels.
    Returns ``[3, H', W']`` (see `make_grid`).
    """
    fn = "render3d.visualize.views_grid"
    if not rows or any(r not in VIEW_ROWS for r in rows):
        raise ValueError(f"{fn}: argument 'rows' expected a non-empty sequence of {', '.join(VIEW_ROWS)}, got {rows!r}")
    missing = [r for r in rows if r not in views] + (["alpha"] if "alpha" not in views else [])
    if missing:
        raise ValueError(f"{fn}: argument 'views' expected entries {sorted(set(rows) | {'alpha'})}, "
                         f"got {sorted(views)} (missing {sorted(set(missing))})")
    alpha = views["alpha"]
    pictures = {
        "image": lambda: views["image"],
        "depth": lambda: depth_to_rgb(views["depth"], alpha, background=background),
        "normals": lambda: normals_to_rgb(views["normals"], alpha, background=background),
        "alpha": lambda: alpha.expand(-1, 3, -1, -1),
    }
    return make_grid([pictures[row]() for row in rows])


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write ``[3, H, W]`` (or ``[1, 3, H, W]``) in [0, 1] as PNG/JPEG by extension, whole or not
    at all (`render3d._files.write_file`: a full disk is an OSError naming `path`)."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.dim() == 3:
        image = image[None]
    return write_file(path, iio.imwrite("<bytes>", to_uint8(image)[0], extension=path.suffix.lower()))


VIDEO_FORMATS = ("mp4", "gif")


# The highest frame rate each video file holds: ffmpeg writes an MP4 above about 1000 fps with
# a rate of 0, and browsers show a GIF's frames (delays in 1/100 s) faster than 50 fps at 10.
MAX_FPS = {"mp4": 240, "gif": 50}


def check_fps(fn: str, name: str, fps, video_format: str) -> None:
    """Raise a ValueError naming `fn` and `name` unless `fps` fits `video_format` (mp4, gif)."""
    limit = MAX_FPS[video_format]
    if not is_number(fps) or not 0 < fps <= limit:
        raise ValueError(f"{fn}: argument '{name}' expected a frame rate in (0, {limit}] for {video_format.upper()}, "
                         f"got {fps!r}")


def save_video(frames: torch.Tensor, path: str | Path, *, fps: int = 24) -> Path:
    """Write frames ``[T, C, H, W]`` in [0, 1] (C: 1 grey, 3 RGB or 4 RGBA, whose alpha an MP4
    drops) as an MP4 (H.264 through imageio-ffmpeg's ffmpeg) or a GIF.

    The format follows the suffix; `fps` up to `MAX_FPS` of it. If an MP4 cannot be written
    (no ffmpeg, or ffmpeg fails), a GIF with the same stem is written instead (at 50 fps at most)
    and its path returned, with a warning; no room (a full disk, a quota, a file-size limit) is
    an OSError naming the file instead. Either is written whole or not at all, over an earlier
    file of the name only once complete.
    """
    import imageio.v2 as imageio

    path = Path(path)
    check_choice("render3d.visualize.save_video", "path suffix", path.suffix.lstrip("."), VIDEO_FORMATS)
    check_fps("render3d.visualize.save_video", "fps", fps, path.suffix.lstrip("."))
    check_tensor("render3d.visualize.save_video", "frames", frames, ("T", "C", "H", "W"))
    if not len(frames) or frames.shape[1] not in (1, 3, 4):   # ffmpeg would read other channels as RGB
        raise ValueError(f"render3d.visualize.save_video: argument 'frames' expected [T, C, H, W] with at least one "
                         f"frame and 1, 3 or 4 channels, got {list(frames.shape)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    array = to_uint8(frames)
    if path.suffix == ".mp4":
        # H.264 in yuv420p wants even sizes.
        h, w = array.shape[1] - array.shape[1] % 2, array.shape[2] - array.shape[2] % 2
        if not h or not w:                              # ffmpeg would only log an error and write nothing
            raise ValueError(f"render3d.visualize.save_video: argument 'frames' expected frames of at least 2 x 2 "
                             f"pixels for an MP4, got {array.shape[2]} x {array.shape[1]}")
        temp = temp_path(path)                          # renamed into place when whole
        try:
            _write_mp4(array[:, :h, :w], temp, fps)
            os.replace(temp, path)
            return path
        except Exception as exc:  # no ffmpeg, or it failed: fall back to a GIF
            import warnings

            if isinstance(exc, OSError) and exc.errno in STORAGE_ERRORS:
                raise OSError(exc.errno, exc.strerror, str(path)) from None   # no room for a GIF either
            path = path.with_suffix(".gif")
            warnings.warn(f"render3d: could not write an MP4 ({exc}); writing {path} instead", RuntimeWarning,
                          stacklevel=2)
        finally:
            temp.unlink(missing_ok=True)                # after a failure or a Ctrl-C; renamed away otherwise
    return write_file(path, imageio.mimsave("<bytes>", list(array), format="GIF",
                                            duration=1000 / min(fps, MAX_FPS["gif"]), loop=0))


def _write_mp4(array: np.ndarray, file: Path, fps: float) -> None:
    """Encode ``[T, H, W, 3 or 4]`` uint8 frames (even sizes; RGB or RGBA) into the MP4 `file`
    with ffmpeg.

    ffmpeg is run here rather than through imageio's writer, which never reads its exit status:
    a full disk or a file-size limit stops ffmpeg half-way and the cut file passed as written.
    No room is an OSError with its errno; another failure a RuntimeError with ffmpeg's last words.
    """
    import signal
    import subprocess
    from fractions import Fraction

    import imageio_ffmpeg

    _, h, w, channels = array.shape
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error",
               "-f", "rawvideo", "-pix_fmt", {3: "rgb24", 4: "rgba"}[channels], "-s", f"{w}x{h}",
               "-r", str(Fraction(fps).limit_denominator()), "-i", "-",
               "-an", "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", "10", str(file)]   # imageio's quality 8
    frames = memoryview(np.ascontiguousarray(array)).cast("B")      # a copy only when cropped to even sizes
    result = subprocess.run(command, input=frames, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if result.returncode == 0:
        return
    said = result.stderr.decode(errors="replace").strip()
    for number in sorted(STORAGE_ERRORS):
        if os.strerror(number) in said:
            raise OSError(number, os.strerror(number), str(file))
    if result.returncode == -signal.SIGXFSZ:           # killed at the file-size limit
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), str(file))
    last = said.splitlines()[-1] if said else "no message"
    raise RuntimeError(f"ffmpeg exited with status {result.returncode}: {last}")


def _frustum_lines(cameras, scale: float) -> torch.Tensor:
    """[B, 9, 2, 3] world-space segments of each camera's frustum: 4 edges from the centre to
    the image corners at ray distance `scale`, the 4 sides of that image rectangle, and a tick
    from the top side's middle pointing to the image's up (camera -y)."""
    w, h = cameras.width, cameras.height
    uv = torch.tensor([[0, 0], [w, 0], [w, h], [0, h], [w / 2, 0]], dtype=cameras.dtype)
    origins, directions = cameras.generate_rays(uv.expand(len(cameras), -1, -1))
    corners = origins + directions * scale
    apex = origins[:, 0]
    up = -cameras.cam2world[:, :3, 1] * (0.25 * scale)
    segments = [(apex, corners[:, i]) for i in range(4)]
    segments += [(corners[:, i], corners[:, (i + 1) % 4]) for i in range(4)]
    segments.append((corners[:, 4], corners[:, 4] + up))
    return torch.stack([torch.stack(s, 1) for s in segments], 1)


def draw_cameras(cameras, path: str | Path, *, yaw=None, pitch=None, size: int = 420,
                 max_cameras: int = 300) -> Path:
    """Draw camera frustums to a PNG: a perspective overview, a top view (looking down -y)
    and, when `yaw` and `pitch` ([B] radians, EG3D convention) are given, their 2D histogram.

    cameras: `Cameras` (at most `max_cameras` are drawn, evenly spaced in the batch; each
    frustum's tick marks the image's up). World axes at the origin: x red, y green, z blue.
    Returns the path written.
    """
    import imageio.v3 as iio
    from PIL import Image, ImageDraw

    from render3d.cameras import Cameras

    cameras = cameras.to("cpu", torch.float64)
    if len(cameras) > max_cameras:
        cameras = cameras[torch.linspace(0, len(cameras) - 1, max_cameras).round().long()]
    centres = cameras.centers
    extent = float(centres.norm(dim=-1).max().clamp_min(1e-6))
    lines = _frustum_lines(cameras, 0.15 * extent)
    axes = torch.zeros(3, 2, 3, dtype=torch.float64)
    axes[:, 1] = torch.eye(3, dtype=torch.float64) * 0.4 * extent
    colours = (turbo(torch.linspace(0.1, 0.9, len(cameras))) * 255).round().to(torch.uint8).tolist()
    radius = 1.25 * float(torch.cat([lines.reshape(-1, 3), axes.reshape(-1, 3)]).norm(dim=-1).max())
    distance = radius / math.sin(math.radians(22.5))
    views = {
        "perspective": Cameras.look_at(torch.tensor([[0.55, 0.45, 0.7]], dtype=torch.float64) * distance
                                       / math.sqrt(0.55**2 + 0.45**2 + 0.7**2), width=size, height=size,
                                       fov_degrees=45.0),
        "top (looking down -y)": Cameras.look_at(torch.tensor([[0.0, distance, 0.0]], dtype=torch.float64),
                                                 up=(0.0, 0.0, -1.0), width=size, height=size, fov_degrees=45.0),
    }
    panels = []
    for title, view in views.items():
        panel = Image.new("RGB", (size, size), (255, 255, 255))
        draw = ImageDraw.Draw(panel)

        def segment(points: torch.Tensor, colour, width: int = 1) -> None:
            uv, depth = view.project(points.reshape(1, -1, 3))
            if bool((depth > 0).all()):
                draw.line([tuple(p) for p in uv[0].tolist()], fill=tuple(colour), width=width)

        for i, colour in enumerate(([220, 40, 40], [40, 160, 40], [40, 80, 220])):
            segment(axes[i], colour, 2)
        for camera_lines, colour in zip(lines, colours):
            for line in camera_lines:
                segment(line, colour)
        draw.text((6, 4), title, fill=(0, 0, 0))
        panels.append(panel)
    if yaw is not None and pitch is not None:
        panels.append(_yaw_pitch_panel(np.asarray(yaw), np.asarray(pitch), size))
    canvas = Image.new("RGB", (size * len(panels), size), (255, 255, 255))
    for i, panel in enumerate(panels):
        canvas.paste(panel, (i * size, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_file(path, iio.imwrite("<bytes>", np.asarray(canvas), extension=".png"))


def _yaw_pitch_panel(yaw: np.ndarray, pitch: np.ndarray, size: int):
    """A PIL image: 2D histogram of yaw (x, -180..180 degrees) and pitch (y, 0..180 degrees),
    counts colour-mapped with Turbo on a log scale, empty bins white."""
    from PIL import Image, ImageDraw

    counts, _, _ = np.histogram2d(np.degrees(pitch), np.degrees(yaw), bins=(36, 72), range=((0, 180), (-180, 180)))
    level = torch.from_numpy(np.log1p(counts) / max(np.log1p(counts.max()), 1e-12))
    rgb = (turbo(level) * 255).round().to(torch.uint8).numpy()
    rgb[counts == 0] = 255
    margin = 28
    image = Image.fromarray(rgb).resize((size - 2 * margin, size // 2), Image.NEAREST)
    panel = Image.new("RGB", (size, size), (255, 255, 255))
    top = (size - image.height) // 2
    panel.paste(image, (margin, top))
    draw = ImageDraw.Draw(panel)
    draw.rectangle([margin - 1, top - 1, margin + image.width, top + image.height], outline=(0, 0, 0))
    draw.text((6, 4), "yaw / pitch (EG3D convention, degrees)", fill=(0, 0, 0))
    draw.text((margin, top + image.height + 4), "-180", fill=(0, 0, 0))
    draw.text((size // 2 - 8, top + image.height + 4), "yaw 0", fill=(0, 0, 0))
    draw.text((size - margin - 16, top + image.height + 4), "180", fill=(0, 0, 0))
    draw.text((margin, top - 14), "pitch 0 (looking down from +y) .. 180 at the bottom", fill=(0, 0, 0))
    return panel
