"""Pinhole cameras in one convention, with converters to and from the field's others.

Convention (DESIGN.md): `cam2world` is an OpenCV camera-to-world 4x4 (camera x right, y down,
z forward; world +Y up); `intrinsics` are normalized by the image size (row 0 divided by the
width, row 1 by the height), so a centred principal point is 0.5 and one set of intrinsics
serves every resolution. EG3D's 25-float label (16 floats of cam2world row-major, then the 9
normalized intrinsics row-major) is the interchange format.

Pixel coordinates put the image's top-left corner at (0, 0) and the centre of pixel (u, v) at
(u + 0.5, v + 0.5), as OpenCV, COLMAP and nerfstudio do (3DGS's `ndc2Pix` puts centres on
integers, half a pixel off).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from render3d._checks import FLOATING, Sizes, check_choice, check_positive, check_tensor, said_choices
from render3d.cameras._validate import _broadcast, _check_intrinsics, _check_rigid, _check_size, _first_bad

# 3DGS builds its projection from the field of view alone, so only cameras whose principal
# point lies this close (in image fractions) to the centre convert to it.
CENTRED_TOL = 1e-4
# The OpenCV <-> OpenGL camera axes differ by a 180 degree turn about camera x.
_GL_FLIP = (1.0, -1.0, -1.0, 1.0)
# render3d cameras are pinhole: transforms.json must name one of these models, with zero distortion.
_PINHOLE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE")
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def _pinhole(fx: torch.Tensor, fy: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
    """[B] focal lengths and principal point (normalized) -> [B, 3, 3] intrinsics, no skew."""
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    return torch.stack([fx, zero, cx, zero, fy, cy, zero, zero, one], -1).reshape(-1, 3, 3)


def intrinsics_from_fov(fov_degrees, width: int, height: int, *, dtype: torch.dtype = torch.float32,
                        device=None) -> torch.Tensor:
    """Normalized intrinsics [B, 3, 3] from the vertical field of view, centred, square pixels.

    fov_degrees: a number (B = 1) or [B] tensor (whose dtype and device are then used), the
    full vertical angle in degrees, in (0, 180). fx/W = fy/H * H/W keeps pixels square.
    Unlike EG3D's `FOV_to_intrinsics`, which divides by an extra 1.414 (its "18.837 degrees"
    is EG3D's focal 4.2647, a true vertical FOV of 13.37 degrees), this is the true angle.
    """
    fn = "intrinsics_from_fov"
    _check_size(fn, "width", width)
    _check_size(fn, "height", height)
    if isinstance(fov_degrees, torch.Tensor):
        fov = check_tensor(fn, "fov_degrees", fov_degrees, ("B",))
    else:
        fov = torch.tensor([float(fov_degrees)], dtype=dtype, device=device)
    if (i := _first_bad(~((fov > 0) & (fov < 180)))) is not None:
        raise ValueError(f"{fn}: argument 'fov_degrees' expected values in (0, 180), got {fov[i].item()} at index {i}")
    fy = 0.5 / torch.tan(torch.deg2rad(fov) / 2)
    half = torch.full_like(fy, 0.5)
    return _pinhole(fy * height / width, fy, half, half)


def intrinsics_from_pixels(fx, fy, cx, cy, width: int, height: int) -> torch.Tensor:
    """Normalized intrinsics [B, 3, 3] from pixel-unit focal lengths and principal point.

    fx, fy, cx, cy: numbers or [B] tensors in pixels (pixel centres at +0.5, as in COLMAP and
    nerfstudio). The tensors, which must share dtype and device, set both; numbers alone give
    float32 on the CPU.
    """
    fn = "intrinsics_from_pixels"
    _check_size(fn, "width", width)
    _check_size(fn, "height", height)
    values = {"fx": fx, "fy": fy, "cx": cx, "cy": cy}
    name, like = next(((k, v) for k, v in values.items() if isinstance(v, torch.Tensor)), ("fx", torch.zeros(1)))
    check_tensor(fn, name, like, (None,))
    fx, fy, cx, cy = (_broadcast(fn, k, v, (), len(like), like) for k, v in values.items())
    if (i := _first_bad(~((fx > 0) & (fy > 0)))) is not None:
        raise ValueError(f"{fn}: arguments 'fx', 'fy' expected positive values, got {fx[i].item()}, {fy[i].item()} "
                         f"at index {i}")
    return _pinhole(fx / width, fy / height, cx / width, cy / height)


def pixel_grid(width: int, height: int, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """[H * W, 2] pixel centres (u + 0.5, v + 0.5) in pixels, row-major (index v * W + u)."""
    fn = "pixel_grid"
    _check_size(fn, "width", width)
    _check_size(fn, "height", height)
    v, u = torch.meshgrid(torch.arange(height, dtype=dtype, device=device),
                          torch.arange(width, dtype=dtype, device=device), indexing="ij")
    return torch.stack([u, v], -1).reshape(-1, 2) + 0.5


def _pose(rotation: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """[B, 3, 3] rotation and [B, 3] translation -> [B, 4, 4] rigid transform."""
    bottom = position.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(len(position), 1, 4)
    return torch.cat([torch.cat([rotation, position[:, :, None]], 2), bottom], 1)


def _rigid_inverse(m: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid 4x4s [B, 4, 4] via R^T, exact where torch.linalg.inv would round."""
    rot_t = m[:, :3, :3].transpose(1, 2)
    return _pose(rot_t, -(rot_t @ m[:, :3, 3:])[..., 0])


def _read_frame(fn: str, meta: dict, frame: dict, i: int) -> tuple[torch.Tensor, list[float], tuple]:
    """One transforms.json frame -> (OpenGL cam2world [4, 4] float64, [fl_x, fl_y, cx, cy], (w, h))."""
    def get(key, default=None):
        value = frame.get(key, meta.get(key, default))  # a frame's own value wins
        if value is None:
            raise ValueError(f"{fn}: argument 'path_or_dict' expected '{key}' in frame {i} or at the top level, "
                             "got neither")
        return value

    if (model := get("camera_model", "OPENCV")) not in _PINHOLE_MODELS:
        raise ValueError(f"{fn}: argument 'path_or_dict' expected 'camera_model' one of "
                         f"{said_choices(_PINHOLE_MODELS)}, got {model!r} in frame {i}")
    distortion = {k: v for k in _DISTORTION_KEYS if (v := get(k, 0)) != 0}
    if distortion:
        raise ValueError(f"{fn}: argument 'path_or_dict' expected no lens distortion (undistort the images "
                         f"first), got {distortion} in frame {i}")
    pose = torch.tensor(get("transform_matrix"), dtype=torch.float64)
    if pose.shape == (3, 4):
        pose = torch.cat([pose, pose.new_tensor([[0.0, 0.0, 0.0, 1.0]])])
    if pose.shape != (4, 4):
        raise ValueError(f"{fn}: argument 'path_or_dict' expected 'transform_matrix' of shape [4, 4] or [3, 4], "
                         f"got {list(pose.shape)} in frame {i}")
    size = tuple(int(v) if float(v) == int(v) else v for v in (get("w"), get("h")))
    return pose, [float(get(k)) for k in ("fl_x", "fl_y", "cx", "cy")], size


@dataclass(frozen=True, eq=False)
class Cameras:
    """A batch of pinhole cameras sharing one image size.

    cam2world: [B, 4, 4] rigid OpenCV camera-to-world (x right, y down, z forward), world units.
    intrinsics: [B, 3, 3] normalized, [[fx/W, s/W, cx/W], [0, fy/H, cy/H], [0, 0, 1]].
    width, height: image size in pixels.

    Both tensors share one floating dtype (float32 or float64) and one device; construction
    checks all of it (four device syncs; indexing, moving, concatenating and resizing checked
    cameras checks only shapes) and methods return new Cameras without writing to these
    tensors. Gradients flow through every method.
    """

    cam2world: torch.Tensor
    intrinsics: torch.Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        self._check_shapes()
        _check_rigid("Cameras", "cam2world", self.cam2world)
        _check_intrinsics("Cameras", "intrinsics", self.intrinsics)

    def _check_shapes(self) -> None:
        """The checks that need no device sync: shapes, dtypes, device, image size."""
        fn, sizes = "Cameras", Sizes()
        check_tensor(fn, "cam2world", self.cam2world, ("B", 4, 4), sizes=sizes)
        check_tensor(fn, "intrinsics", self.intrinsics, ("B", 3, 3), sizes=sizes, like=self.cam2world,
                     like_name="cam2world")
        _check_size(fn, "width", self.width)
        _check_size(fn, "height", self.height)

    @classmethod
    def _of_checked(cls, cam2world: torch.Tensor, intrinsics: torch.Tensor, width: int, height: int) -> Cameras:
        """Cameras whose values come from checked ones unchanged (indexed, moved, concatenated):
        rigid and pinhole already, so only their shapes are checked, without the value checks'
        device syncs (a training step indexes and moves its cameras on every pass)."""
        cameras = object.__new__(cls)
        for name, value in (("cam2world", cam2world), ("intrinsics", intrinsics), ("width", width),
                            ("height", height)):
            object.__setattr__(cameras, name, value)
        cameras._check_shapes()
        return cameras

    def __repr__(self) -> str:
        dtype = str(self.dtype).replace("torch.", "")
        return f"Cameras(batch={len(self)}, width={self.width}, height={self.height}, {dtype}, {self.device})"

    def __len__(self) -> int:
        return self.cam2world.shape[0]

    def __getitem__(self, index) -> Cameras:
        """Index the batch; an integer (Python, numpy or 0-d tensor) keeps the batch dimension."""
        if isinstance(index, int) or getattr(index, "ndim", None) == 0:
            index = [int(index)]
        return Cameras._of_checked(self.cam2world[index], self.intrinsics[index], self.width, self.height)

    @property
    def device(self) -> torch.device:
        return self.cam2world.device

    @property
    def dtype(self) -> torch.dtype:
        return self.cam2world.dtype

    def to(self, device=None, dtype: torch.dtype | None = None) -> Cameras:
        """Moved to `device` and/or cast to `dtype` (float32 or float64)."""
        if dtype is not None:
            check_choice("Cameras.to", "dtype", dtype, FLOATING)
        # A cast rounds the values (float64 -> float32 may overflow to inf): checked again.
        make = Cameras if dtype not in (None, self.dtype) else Cameras._of_checked
        return make(self.cam2world.to(device=device, dtype=dtype), self.intrinsics.to(device=device, dtype=dtype),
                    self.width, self.height)

    @classmethod
    def cat(cls, cameras: Sequence[Cameras]) -> Cameras:
        """Concatenate batches that share image size, dtype and device."""
        fn = "Cameras.cat"
        if not cameras or not all(isinstance(c, Cameras) for c in cameras):
            raise ValueError(f"{fn}: argument 'cameras' expected a non-empty sequence of Cameras, got {cameras!r}")
        first = cameras[0]
        for i, c in enumerate(cameras):
            if (c.width, c.height, c.dtype, c.device) != (first.width, first.height, first.dtype, first.device):
                raise ValueError(f"{fn}: argument 'cameras' expected all like cameras[0] ({first!r}), "
                                 f"got {c!r} at index {i}")
        return cls._of_checked(torch.cat([c.cam2world for c in cameras]), torch.cat([c.intrinsics for c in cameras]),
                               first.width, first.height)

    def resized(self, width: int, height: int) -> Cameras:
        """The same cameras rendering `width` x `height` pixels (normalized intrinsics carry over)."""
        return Cameras._of_checked(self.cam2world, self.intrinsics, width, height)

    def mirrored(self) -> Cameras:
        """Cameras of the left-right mirrored images of a world mirrored in x (EG3D's x-flip
        augmentation: label entries 1, 2, 3, 4, 8 negated; cx -> 1 - cx)."""
        flip = self.cam2world.new_tensor([-1.0, 1.0, 1.0, 1.0])
        cam2world = flip[:, None] * self.cam2world * flip
        sign = self.intrinsics.new_tensor([[1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
        shift = self.intrinsics.new_tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
        return Cameras(cam2world, self.intrinsics * sign + shift, self.width, self.height)

    @property
    def world2cam(self) -> torch.Tensor:
        """[B, 4, 4] world-to-camera (OpenCV axes)."""
        return _rigid_inverse(self.cam2world)

    @property
    def centers(self) -> torch.Tensor:
        """[B, 3] camera positions in world units."""
        return self.cam2world[:, :3, 3]

    @property
    def fov_x(self) -> torch.Tensor:
        """[B] full horizontal field of view in degrees (as if the principal point were centred)."""
        return torch.rad2deg(2 * torch.atan(0.5 / self.intrinsics[:, 0, 0]))

    @property
    def fov_y(self) -> torch.Tensor:
        """[B] full vertical field of view in degrees (as if the principal point were centred)."""
        return torch.rad2deg(2 * torch.atan(0.5 / self.intrinsics[:, 1, 1]))

    @property
    def pixel_intrinsics(self) -> torch.Tensor:
        """[B, 3, 3] intrinsics in pixels (rows scaled by width, height), as OpenCV and gsplat use."""
        scale = self.intrinsics.new_tensor([self.width, self.height, 1.0])
        return self.intrinsics * scale[:, None]

    # --- rays and projection ------------------------------------------------------------

    def generate_rays(self, uv: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """World-space rays through pixel positions.

        uv: [B, R, 2] pixel coordinates (pixel (u, v) spans [u, u+1) x [v, v+1)); default: the
        centres of all pixels, row-major (ray index v * width + u), R = height * width.
        Returns origins [B, R, 3] (the camera centres, contiguous) and unit directions [B, R, 3].
        """
        b = len(self)
        if uv is None:
            uv = pixel_grid(self.width, self.height, dtype=self.dtype, device=self.device).expand(b, -1, -1)
        check_tensor("Cameras.generate_rays", "uv", uv, (b, None, 2), like=self.cam2world, like_name="cam2world")
        k = self.intrinsics
        y = (uv[..., 1] / self.height - k[:, 1, 2, None]) / k[:, 1, 1, None]
        x = (uv[..., 0] / self.width - k[:, 0, 2, None] - k[:, 0, 1, None] * y) / k[:, 0, 0, None]
        directions = torch.stack([x, y, torch.ones_like(x)], -1) @ self.cam2world[:, :3, :3].transpose(1, 2)
        directions = directions / directions.norm(dim=-1, keepdim=True)
        origins = self.centers[:, None].expand_as(directions).contiguous()
        return origins, directions

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pinhole projection of world points [B, N, 3].

        Returns uv [B, N, 2] in pixels (pixel centres at +0.5) and depth [B, N], the camera-frame
        z in world units. Points with depth <= 0 get meaningless (or infinite) uv: mask them.
        """
        check_tensor("Cameras.project", "points", points, (len(self), None, 3), like=self.cam2world,
                     like_name="cam2world")
        local = (points - self.centers[:, None]) @ self.cam2world[:, :3, :3]
        depth = local[..., 2]
        xy = local[..., :2] / depth[..., None]
        uv = xy @ self.intrinsics[:, :2, :2].transpose(1, 2) + self.intrinsics[:, None, :2, 2]
        return uv * uv.new_tensor([self.width, self.height]), depth

    # --- EG3D label ---------------------------------------------------------------------

    @classmethod
    def from_eg3d_label(cls, label: torch.Tensor, width: int, height: int) -> Cameras:
        """EG3D label [B, 25] (cam2world row-major, then normalized intrinsics row-major)."""
        check_tensor("Cameras.from_eg3d_label", "label", label, ("B", 25))
        b = label.shape[0]
        return cls(label[:, :16].reshape(b, 4, 4), label[:, 16:].reshape(b, 3, 3), width, height)

    def to_eg3d_label(self) -> torch.Tensor:
        """[B, 25] EG3D label."""
        return torch.cat([self.cam2world.flatten(1), self.intrinsics.flatten(1)], 1)

    # --- OpenGL / nerfstudio ------------------------------------------------------------

    @classmethod
    def from_opengl(cls, cam2world: torch.Tensor, intrinsics: torch.Tensor, width: int, height: int) -> Cameras:
        """OpenGL/Blender camera-to-world [B, 4, 4] (x right, y up, z backward), normalized intrinsics [B, 3, 3]."""
        check_tensor("Cameras.from_opengl", "cam2world", cam2world, (None, 4, 4))
        return cls(cam2world * cam2world.new_tensor(_GL_FLIP), intrinsics, width, height)

    def to_opengl(self) -> torch.Tensor:
        """[B, 4, 4] OpenGL camera-to-world: camera y and z axes negated."""
        return self.cam2world * self.cam2world.new_tensor(_GL_FLIP)

    @classmethod
    def from_transforms_json(cls, path_or_dict, *, dtype: torch.dtype = torch.float32,
                             device=None) -> tuple[Cameras, list[str | None]]:
        """nerfstudio `transforms.json` (a path or the parsed dict).

        Each frame's `transform_matrix` is an OpenGL camera-to-world (4x4, or 3x4 rows);
        `fl_x, fl_y, cx, cy, w, h` are in pixels, per frame or at the top level (a frame's own
        value wins). All frames must share `w, h`; distortion must be zero. World axes are
        taken as written (nerfstudio data is often z-up). Returns the cameras and each
        frame's `file_path` as written (None where absent).
        """
        fn = "Cameras.from_transforms_json"
        meta = path_or_dict
        if isinstance(meta, (str, Path)):
            meta = json.loads(Path(meta).read_text())
        frames = meta.get("frames") if isinstance(meta, dict) else None
        if not frames:
            got = f"keys {sorted(meta)}" if isinstance(meta, dict) else type(meta).__name__
            raise ValueError(f"{fn}: argument 'path_or_dict' expected a dict with a non-empty 'frames' list, got {got}")
        read = [_read_frame(fn, meta, frame, i) for i, frame in enumerate(frames)]
        poses, params, sizes = zip(*read)
        if (i := next((i for i, s in enumerate(sizes) if s != sizes[0]), None)) is not None:
            raise ValueError(f"{fn}: argument 'path_or_dict' expected all frames to share w, h = {sizes[0]} "
                             f"(frame 0), got {sizes[i]} in frame {i}")
        width, height = sizes[0]
        fx, fy, cx, cy = torch.tensor(params, dtype=torch.float64).unbind(1)
        intrinsics = intrinsics_from_pixels(fx, fy, cx, cy, width, height)
        cams = cls.from_opengl(torch.stack(poses), intrinsics, width, height).to(device=device, dtype=dtype)
        return cams, [frame.get("file_path") for frame in frames]

    def to_transforms_json(self, file_paths: Sequence[str] | None = None) -> dict:
        """A nerfstudio `transforms.json` dict (plain Python numbers, ready for `json.dump`).

        Intrinsics go to the top level when all cameras share them, else into each frame.
        file_paths: one per camera, or None to leave `file_path` out.
        """
        fn = "Cameras.to_transforms_json"
        if file_paths is not None and len(file_paths) != len(self):
            raise ValueError(f"{fn}: argument 'file_paths' expected {len(self)} paths (one per camera), "
                             f"got {len(file_paths)}")
        k = self.pixel_intrinsics.detach().to("cpu", torch.float64)
        if (i := _first_bad(k[:, 0, 1] != 0)) is not None:
            raise ValueError(f"{fn}: argument 'self.intrinsics' expected no skew (transforms.json has none), "
                             f"got skew {k[i, 0, 1].item()} px in camera {i}")
        params = [dict(zip(("fl_x", "fl_y", "cx", "cy"), m[[0, 1, 0, 1], [0, 1, 2, 2]].tolist())) for m in k]
        shared = all(p == params[0] for p in params)
        meta = {"camera_model": "OPENCV", "w": self.width, "h": self.height, **(params[0] if shared else {})}
        frames = []
        for i, pose in enumerate(self.to_opengl().detach().to("cpu", torch.float64)):
            frame = {} if file_paths is None else {"file_path": str(file_paths[i])}
            frame["transform_matrix"] = pose.tolist()
            frames.append(frame if shared else {**frame, **params[i]})
        meta["frames"] = frames
        return meta

    # --- 3D Gaussian splatting (graphdeco) ----------------------------------------------

    @classmethod
    def from_3dgs(cls, world_view_transform: torch.Tensor, fov_x: torch.Tensor, fov_y: torch.Tensor,
                  width: int, height: int) -> Cameras:
        """3DGS cameras: `world_view_transform` [B, 4, 4] = (OpenCV world-to-camera)^T, as
        3DGS stores it, and full fields of view `fov_x`, `fov_y` [B] in radians. Centred
        principal point."""
        fn, sizes = "Cameras.from_3dgs", Sizes()
        check_tensor(fn, "world_view_transform", world_view_transform, ("B", 4, 4), sizes=sizes)
        for name, fov in (("fov_x", fov_x), ("fov_y", fov_y)):
            check_tensor(fn, name, fov, ("B",), sizes=sizes, like=world_view_transform,
                         like_name="world_view_transform")
            if (i := _first_bad(~((fov > 0) & (fov < math.pi)))) is not None:
                raise ValueError(f"{fn}: argument '{name}' expected radians in (0, pi), got {fov[i].item()} "
                                 f"at index {i}")
        world2cam = world_view_transform.transpose(1, 2)
        _check_rigid(fn, "world_view_transform (transposed)", world2cam)
        half = torch.full_like(fov_x, 0.5)
        intrinsics = _pinhole(0.5 / torch.tan(fov_x / 2), 0.5 / torch.tan(fov_y / 2), half, half)
        return cls(_rigid_inverse(world2cam), intrinsics, width, height)

    def to_3dgs(self, znear: float = 0.01, zfar: float = 100.0) -> dict[str, torch.Tensor]:
        """The 3DGS `Camera` fields: world_view_transform, projection_matrix, full_proj_transform
        [B, 4, 4] (all stored transposed, for row vectors: clip = [x, y, z, 1] @ full_proj_transform),
        fov_x, fov_y [B] in radians, camera_center [B, 3]. znear, zfar in world units.

        3DGS's projection assumes a centred principal point; other cameras raise.
        """
        fn = "Cameras.to_3dgs"
        check_positive(fn, "znear", znear)
        if not zfar > znear:
            raise ValueError(f"{fn}: argument 'zfar' expected a number above znear={znear}, got {zfar!r}")
        k = self.intrinsics
        offset = torch.stack([k[:, 0, 2] - 0.5, k[:, 1, 2] - 0.5, k[:, 0, 1]], 1).abs().amax(1)
        if (i := _first_bad(offset > CENTRED_TOL)) is not None:
            raise ValueError(f"{fn}: argument 'self.intrinsics' expected a centred principal point (cx = cy = 0.5) "
                             f"and no skew, got {k[i].tolist()} in camera {i}")
        fx, fy = k[:, 0, 0], k[:, 1, 1]
        # getProjectionMatrix: P[0,0] = 2n/(r-l) = 1/tan(fov_x/2) = 2 fx/W; the frustum is
        # symmetric, so P[0,2] = P[1,2] = 0.
        projection = fx.new_zeros(len(self), 4, 4)
        projection[:, 0, 0] = 2 * fx
        projection[:, 1, 1] = 2 * fy
        projection[:, 2, 2] = zfar / (zfar - znear)
        projection[:, 2, 3] = -zfar * znear / (zfar - znear)
        projection[:, 3, 2] = 1
        world_view = self.world2cam.transpose(1, 2)
        return {
            "world_view_transform": world_view,
            "projection_matrix": projection.transpose(1, 2),
            "full_proj_transform": world_view @ projection.transpose(1, 2),
            "fov_x": 2 * torch.atan(0.5 / fx),
            "fov_y": 2 * torch.atan(0.5 / fy),
            "camera_center": self.centers,
        }

    # --- look-at and yaw/pitch on a sphere (built in poses.py, which builds on Cameras) -------

    @classmethod
    def look_at(cls, eye: torch.Tensor, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), *, width: int, height: int,
                fov_degrees=None, intrinsics: torch.Tensor | None = None) -> Cameras:
        """Cameras at `eye` [B, 3] (whose dtype and device are used) looking at `target` ([3] or
        [B, 3]), no roll: `up` ([3] or [B, 3]) is up on screen; raises where it is parallel to
        the view. Give exactly one of `fov_degrees` (vertical, a number or [B], see
        `intrinsics_from_fov`) and `intrinsics` (normalized, [3, 3] or [B, 3, 3])."""
        from render3d.cameras import poses

        return poses._look_at("Cameras.look_at", eye, target, up, width=width, height=height,
                              fov_degrees=fov_degrees, intrinsics=intrinsics)

    @classmethod
    def from_yaw_pitch(cls, yaw, pitch, radius, *, width: int, height: int, pivot=(0.0, 0.0, 0.0),
                       center=(0.0, 0.0, 0.0), fov_degrees=None, intrinsics: torch.Tensor | None = None,
                       convention: str = "eg3d") -> Cameras:
        """Cameras on the sphere of `radius` around `center`, looking at `pivot`, world +y up.

        yaw, pitch: radians, numbers (a batch of one, float32 on CPU) or [B] tensors (whose dtype
        and device are used); radius: a number or [B]; pivot, center: [3] or [B, 3]. Give exactly
        one of `fov_degrees` and `intrinsics`, as in `look_at`. `convention`: "eg3d"
        (LookAtPoseSampler, reproduced exactly) or "pigan"; the formulas and the pole clamp are
        in the `render3d.cameras.poses` docstring.
        """
        from render3d.cameras import poses

        return poses._from_yaw_pitch("Cameras.from_yaw_pitch", yaw, pitch, radius, width=width, height=height,
                                     pivot=pivot, center=center, fov_degrees=fov_degrees, intrinsics=intrinsics,
                                     convention=convention)

    def to_yaw_pitch(self, center=(0.0, 0.0, 0.0), convention: str = "eg3d") -> tuple[torch.Tensor, ...]:
        """(yaw, pitch, radius), each [B], of the camera positions around `center` ([3] or
        [B, 3]), inverting `from_yaw_pitch`; yaw in (-pi, pi]. Only positions are used: where the
        camera looks (its pivot) is not recovered."""
        from render3d.cameras import poses

        return poses._to_yaw_pitch("Cameras.to_yaw_pitch", self, center, convention)
