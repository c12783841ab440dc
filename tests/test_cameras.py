"""render3d.cameras.Cameras: checks, container ops, rays and projection, format converters.

Every converter is tested by a round trip and against a case computed by hand; rays and
projection are tested against each other and against hand-computed pixels. Yaw/pitch, look-at,
samplers and trajectories are in test_cameras_poses.py.
"""

import json
import math

import pytest
import torch

from render3d.cameras import Cameras, intrinsics_from_fov, intrinsics_from_pixels, pixel_grid

F64 = torch.float64


def random_cameras(batch=6, *, width=40, height=30, seed=0, centred=False, dtype=F64):
    """Look-at cameras from random eyes at random targets; off-centre intrinsics with skew
    unless `centred`."""
    g = torch.Generator().manual_seed(seed)
    eye = torch.randn(batch, 3, generator=g, dtype=dtype) * 3
    target = torch.randn(batch, 3, generator=g, dtype=dtype) * 0.3
    k = intrinsics_from_fov(torch.rand(batch, generator=g, dtype=dtype) * 40 + 20, width, height)
    if not centred:
        k = k.clone()
        k[:, :2, 2] += (torch.rand(batch, 2, generator=g, dtype=dtype) - 0.5) * 0.2
        k[:, 0, 1] = (torch.rand(batch, generator=g, dtype=dtype) - 0.5) * 0.1
    return Cameras.look_at(eye, target, width=width, height=height, intrinsics=k)


def frontal(width=4, height=2, dtype=F64):
    """Camera at (0, 0, 3) looking at the origin: R = diag(1, -1, -1); fx = 4 px, fy = 4 px."""
    c2w = torch.tensor([[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 3], [0, 0, 0, 1]], dtype=dtype)[None]
    k = torch.tensor([[4 / width, 0, 0.5], [0, 4 / height, 0.5], [0, 0, 1]], dtype=dtype)[None]
    return Cameras(c2w, k, width, height)


def assert_same(a: Cameras, b: Cameras, atol=1e-10):
    assert (a.width, a.height, len(a)) == (b.width, b.height, len(b))
    torch.testing.assert_close(a.cam2world, b.cam2world, atol=atol, rtol=0)
    torch.testing.assert_close(a.intrinsics, b.intrinsics, atol=atol, rtol=0)


# --- construction checks ------------------------------------------------------------------


def test_valid_cameras_pass_and_report_their_properties():
    cams = random_cameras(5)
    assert len(cams) == 5 and cams.dtype == F64 and cams.device == torch.device("cpu")
    rot = cams.cam2world[:, :3, :3]
    torch.testing.assert_close(rot.transpose(1, 2) @ rot, torch.eye(3, dtype=F64).expand(5, 3, 3))
    torch.testing.assert_close(cams.world2cam @ cams.cam2world, torch.eye(4, dtype=F64).expand(5, 4, 4))
    assert repr(cams) == "Cameras(batch=5, width=40, height=30, float64, cpu)"


@pytest.mark.parametrize("c2w_shape, k_shape, match", [
    ((2, 3, 4), (2, 3, 3), r"Cameras: argument 'cam2world' expected shape \[B, 4, 4\], got \[2, 3, 4\]"),
    ((2, 4, 4), (3, 3, 3), r"argument 'intrinsics' expected shape \[B, 3, 3\] with B=2 \(from 'cam2world'\)"),
    ((4, 4), (3, 3), r"argument 'cam2world' expected shape \[B, 4, 4\], got \[4, 4\]"),
])
def test_wrong_shapes_raise(c2w_shape, k_shape, match):
    c2w = torch.eye(4, dtype=F64).expand(*c2w_shape[:-2], 4, 4)[..., : c2w_shape[-2], :]
    k = torch.eye(3, dtype=F64).expand(*k_shape)
    with pytest.raises(ValueError, match=match):
        Cameras(c2w, k, 8, 8)


def test_wrong_dtypes_raise():
    c2w, k = frontal().cam2world, frontal().intrinsics
    with pytest.raises(ValueError, match=r"argument 'cam2world' expected dtype float32 or float64, got int64"):
        Cameras(c2w.long(), k, 4, 2)
    with pytest.raises(ValueError, match=r"argument 'intrinsics' expected dtype float64 \(as cam2world\), got float32"):
        Cameras(c2w, k.float(), 4, 2)


def test_non_rigid_poses_raise_naming_the_camera():
    c2w = random_cameras(3).cam2world.clone()
    k = random_cameras(3).intrinsics
    scaled = c2w.clone()
    scaled[2, :3, :3] *= 1.1
    with pytest.raises(ValueError, match=r"'cam2world' expected an orthonormal rotation .* in camera 2"):
        Cameras(scaled, k, 40, 30)
    reflected = c2w.clone()
    reflected[1, :3, 0] *= -1
    with pytest.raises(ValueError, match=r"'cam2world' expected a rotation with det \+1, got det -1 in camera 1"):
        Cameras(reflected, k, 40, 30)
    bad_row = c2w.clone()
    bad_row[0, 3, 2] = 0.5
    with pytest.raises(ValueError, match=r"'cam2world' expected last row \(0, 0, 0, 1\), got .* in camera 0"):
        Cameras(bad_row, k, 40, 30)
    nan = c2w.clone()
    nan[1, 0, 3] = float("nan")
    with pytest.raises(ValueError, match=r"Cameras: argument 'cam2world' expected finite values, got nan at index "
                                         r"\(1, 0, 3\)"):
        Cameras(nan, k, 40, 30)


def test_bad_intrinsics_and_sizes_raise():
    cams = frontal()
    k = cams.intrinsics.clone()
    k[0, 1, 1] = -1.0
    with pytest.raises(ValueError, match=r"'intrinsics' expected positive focal lengths"):
        Cameras(cams.cam2world, k, 4, 2)
    k = cams.intrinsics.clone()
    k[0, 2, 0] = 0.3
    with pytest.raises(ValueError, match=r"'intrinsics' expected rows 1 and 2 to be \(0, fy, cy\), \(0, 0, 1\)"):
        Cameras(cams.cam2world, k, 4, 2)
    with pytest.raises(ValueError, match=r"Cameras: argument 'width' expected a positive number, got 0"):
        Cameras(cams.cam2world, cams.intrinsics, 0, 2)
    with pytest.raises(ValueError, match=r"Cameras: argument 'height' expected an int, got float"):
        Cameras(cams.cam2world, cams.intrinsics, 4, 2.0)


# --- container operations -----------------------------------------------------------------


def test_indexing_keeps_the_batch_dimension():
    cams = random_cameras(5)
    assert_same(cams[2], Cameras(cams.cam2world[2:3], cams.intrinsics[2:3], 40, 30))
    assert_same(cams[-1], cams[4:5])
    assert_same(cams[torch.tensor(3)], cams[3:4])
    assert_same(cams[1:4:2], Cameras(cams.cam2world[[1, 3]], cams.intrinsics[[1, 3]], 40, 30))
    assert_same(cams[torch.tensor([4, 0, 0])], Cameras.cat([cams[4], cams[0], cams[0]]))
    with pytest.raises(IndexError):
        cams[5]


def test_to_cat_resized():
    cams = random_cameras(3)
    single = cams.to(dtype=torch.float32)
    assert single.dtype == torch.float32 and single.intrinsics.dtype == torch.float32
    with pytest.raises(ValueError, match=r"Cameras.to: argument 'dtype' expected one of .*float32.*, got torch.int32"):
        cams.to(dtype=torch.int32)
    assert_same(Cameras.cat([cams[:1], cams[1:]]), cams)
    with pytest.raises(ValueError, match=r"Cameras.cat: argument 'cameras' expected all like cameras\[0\]"):
        Cameras.cat([cams, cams.resized(64, 64)])
    with pytest.raises(ValueError, match=r"Cameras.cat: argument 'cameras' expected a non-empty sequence"):
        Cameras.cat([])
    big = cams.resized(80, 60)
    assert (big.width, big.height) == (80, 60)
    # The same normalized intrinsics at twice the resolution: the same point lands at twice the uv.
    points = torch.randn(3, 4, 3, dtype=F64) * 0.2
    torch.testing.assert_close(big.project(points)[0], 2 * cams.project(points)[0])


def test_cameras_made_from_checked_ones_skip_the_value_checks(monkeypatch):
    """Indexing, moving, concatenating and resizing checked cameras checks shapes only (the
    value checks sync the device, and a training step indexes its cameras on every pass); a
    cast checks the values again (float64 -> float32 may overflow), and so does a new Cameras."""
    from render3d.cameras import camera

    calls = []
    rigid = camera._check_rigid
    monkeypatch.setattr(camera, "_check_rigid", lambda *args: calls.append(args[1]) or rigid(*args))
    cams = random_cameras(4)
    assert len(calls) == 1
    derived = [cams[1:3], cams[0], cams.to("cpu"), cams.to(dtype=F64), Cameras.cat([cams, cams]), cams.resized(8, 8)]
    assert len(calls) == 1 and [len(c) for c in derived] == [2, 1, 4, 4, 8, 4]
    cams.to(dtype=torch.float32)
    assert len(calls) == 2
    far = torch.eye(4, dtype=F64).repeat(2, 1, 1)
    far[1, 0, 3] = 1e39                                             # finite in float64, inf in float32
    with pytest.raises(ValueError, match=r"^Cameras: argument 'cam2world' expected finite values"):
        Cameras(far, cams.intrinsics[:2], 40, 30).to(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"^Cameras: argument 'cam2world' expected shape"):
        cams[:, 0]                                                  # an index off the batch dimension


def test_intrinsics_from_fov_by_hand():
    k = intrinsics_from_fov(90.0, 200, 100, dtype=F64)
    torch.testing.assert_close(k, torch.tensor([[[0.25, 0, 0.5], [0, 0.5, 0.5], [0, 0, 1]]], dtype=F64))
    cams = frontal(200, 100).to(dtype=F64)
    cams = Cameras(cams.cam2world, k, 200, 100)
    torch.testing.assert_close(cams.fov_y, torch.tensor([90.0], dtype=F64))
    torch.testing.assert_close(cams.fov_x, torch.tensor([math.degrees(2 * math.atan(2.0))], dtype=F64))
    # EG3D's FFHQ focal 4.2647 is a true vertical FOV of 2 atan(1 / (2 * 4.2647)) = 13.37 degrees.
    eg3d = Cameras(cams.cam2world, torch.tensor([[[4.2647, 0, 0.5], [0, 4.2647, 0.5], [0, 0, 1]]], dtype=F64), 8, 8)
    assert abs(eg3d.fov_y.item() - 13.3738) < 1e-3
    with pytest.raises(ValueError, match=r"intrinsics_from_fov: argument 'fov_degrees' expected values in \(0, 180\)"):
        intrinsics_from_fov(torch.tensor([30.0, 180.0]), 8, 8)


def test_intrinsics_from_pixels_and_back_by_hand():
    k = intrinsics_from_pixels(100.0, 120.0, torch.tensor([50.0, 40.0], dtype=F64), 40.0, 100, 80)
    want = torch.tensor([[1.0, 0, 0.5], [0, 1.5, 0.5], [0, 0, 1]], dtype=F64).repeat(2, 1, 1)
    want[1, 0, 2] = 0.4
    torch.testing.assert_close(k, want)
    cams = Cameras(torch.eye(4, dtype=F64).repeat(2, 1, 1), k, 100, 80)
    torch.testing.assert_close(cams.pixel_intrinsics[1], torch.tensor([[100.0, 0, 40], [0, 120, 40], [0, 0, 1]],
                                                                      dtype=F64))
    with pytest.raises(ValueError, match=r"intrinsics_from_pixels: arguments 'fx', 'fy' expected positive values"):
        intrinsics_from_pixels(0.0, 1.0, 0.5, 0.5, 8, 8)


# --- rays and projection ------------------------------------------------------------------


def test_pixel_grid_by_hand():
    want = [[0.5, 0.5], [1.5, 0.5], [2.5, 0.5], [0.5, 1.5], [1.5, 1.5], [2.5, 1.5]]
    assert pixel_grid(3, 2).tolist() == want


def test_rays_by_hand():
    # 4x2 image, fx = fy = 4 px, principal point (2, 1). Pixel (u=3, v=0) has centre (3.5, 0.5):
    # camera-frame direction ((3.5 - 2) / 4, (0.5 - 1) / 4, 1) = (0.375, -0.125, 1); the camera
    # at (0, 0, 3) has x = world x, y = world -y, z = world -z.
    origins, directions = frontal().generate_rays()
    assert origins.shape == directions.shape == (1, 8, 3)
    want = torch.tensor([0.375, 0.125, -1.0], dtype=F64)
    torch.testing.assert_close(directions[0, 3], want / want.norm())
    torch.testing.assert_close(origins[0], torch.tensor([0.0, 0, 3], dtype=F64).expand(8, 3))
    uv, depth = frontal().project(torch.tensor([[[0.375, 0.125, 2.0], [0.0, 0.0, -1.0]]], dtype=F64))
    torch.testing.assert_close(uv, torch.tensor([[[3.5, 0.5], [2.0, 1.0]]], dtype=F64))
    torch.testing.assert_close(depth, torch.tensor([[1.0, 4.0]], dtype=F64))


def test_rays_and_projection_agree():
    cams = random_cameras(4)  # off-centre principal points and skew
    origins, directions = cams.generate_rays()
    assert origins.shape == directions.shape == (4, 40 * 30, 3) and origins.is_contiguous()
    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(4, 1200, dtype=F64))
    torch.testing.assert_close(origins, cams.centers[:, None].expand(4, 1200, 3))
    t = torch.rand(4, 1200, 1, dtype=F64) * 5 + 0.5
    uv, depth = cams.project(origins + t * directions)
    torch.testing.assert_close(uv, pixel_grid(40, 30, dtype=F64).expand(4, -1, -1))
    forward = cams.cam2world[:, None, :3, 2]
    torch.testing.assert_close(depth, t[..., 0] * (directions * forward).sum(-1))


def test_rays_at_chosen_pixels_match_the_full_grid():
    cams = random_cameras(2)
    _, all_directions = cams.generate_rays()
    index = torch.tensor([[0, 41, 1199], [7, 7, 600]])
    uv = pixel_grid(40, 30, dtype=F64)[index]
    _, directions = cams.generate_rays(uv)
    torch.testing.assert_close(directions, torch.gather(all_directions, 1, index[..., None].expand(-1, -1, 3)))
    with pytest.raises(ValueError, match=r"Cameras.generate_rays: argument 'uv' expected shape \[2, None, 2\]"):
        cams.generate_rays(uv[:1])
    with pytest.raises(ValueError, match=r"Cameras.project: argument 'points' expected shape \[2, None, 3\]"):
        cams.project(torch.zeros(2, 5, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"Cameras.project: argument 'points' expected dtype float64"):
        cams.project(torch.zeros(2, 5, 3))


def test_mirrored_cameras_see_the_mirrored_world():
    cams = random_cameras(3)
    points = torch.randn(3, 10, 3, dtype=F64) * 0.3
    uv, depth = cams.project(points)
    uv_m, depth_m = cams.mirrored().project(points * torch.tensor([-1.0, 1, 1], dtype=F64))
    torch.testing.assert_close(uv_m, torch.stack([40 - uv[..., 0], uv[..., 1]], -1))
    torch.testing.assert_close(depth_m, depth)
    assert_same(cams.mirrored().mirrored(), cams)
    # EG3D's x-flip negates label entries 1, 2, 3, 4 and 8.
    label, flipped = cams.to_eg3d_label(), cams.mirrored().to_eg3d_label()
    sign = torch.ones(25, dtype=F64)
    sign[[1, 2, 3, 4, 8]] = -1
    torch.testing.assert_close(flipped[:, :16], label[:, :16] * sign[:16])


# --- EG3D label ---------------------------------------------------------------------------


def test_eg3d_label_round_trip():
    cams = random_cameras(6)
    label = cams.to_eg3d_label()
    assert label.shape == (6, 25)
    assert_same(Cameras.from_eg3d_label(label, 40, 30), cams, atol=0)
    torch.testing.assert_close(Cameras.from_eg3d_label(label, 40, 30).to_eg3d_label(), label, atol=0, rtol=0)


def test_eg3d_label_by_hand():
    # EG3D's FFHQ frontal label: camera at pivot (0, 0, 0.2) + 2.7 z, looking along -z.
    label = torch.tensor([[1, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1, 2.9, 0, 0, 0, 1,
                           4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1]], dtype=F64)
    cams = Cameras.from_eg3d_label(label, 512, 512)
    torch.testing.assert_close(cams.centers, torch.tensor([[0.0, 0.0, 2.9]], dtype=F64))
    torch.testing.assert_close(cams.cam2world[0, :3, 2], torch.tensor([0.0, 0.0, -1.0], dtype=F64))
    uv, depth = cams.project(torch.tensor([[[0.0, 0.2, 0.2]]], dtype=F64))
    # 0.2 above the pivot at depth 2.7 is 0.2 / 2.7 * 4.2647 * 512 px above the centre.
    torch.testing.assert_close(uv, torch.tensor([[[256.0, 256.0 - 0.2 / 2.7 * 4.2647 * 512]]], dtype=F64))
    torch.testing.assert_close(depth, torch.tensor([[2.7]], dtype=F64))
    with pytest.raises(ValueError, match=r"Cameras.from_eg3d_label: argument 'label' expected shape \[B, 25\]"):
        Cameras.from_eg3d_label(label[:, :24], 512, 512)


# --- OpenGL and nerfstudio transforms.json ------------------------------------------------


def test_opengl_round_trip_and_by_hand():
    cams = random_cameras(5)
    assert_same(Cameras.from_opengl(cams.to_opengl(), cams.intrinsics, 40, 30), cams, atol=0)
    gl = torch.eye(4, dtype=F64)[None]
    k = frontal().intrinsics
    cv = Cameras.from_opengl(gl, k, 4, 2).cam2world
    torch.testing.assert_close(cv, torch.diag(torch.tensor([1.0, -1, -1, 1], dtype=F64))[None])
    with pytest.raises(ValueError, match=r"Cameras.from_opengl: argument 'cam2world' expected shape"):
        Cameras.from_opengl(gl[:, :3], k, 4, 2)


def transforms_by_hand():
    """One OpenGL camera at (1, 2, 3) with identity rotation (looking along world -z, y up)."""
    pose = [[1, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]]
    return {"fl_x": 100, "fl_y": 120, "cx": 50, "cy": 40, "w": 100, "h": 80,
            "frames": [{"file_path": "images/0.png", "transform_matrix": pose}]}


def test_transforms_json_by_hand():
    cams, paths = Cameras.from_transforms_json(transforms_by_hand(), dtype=F64)
    assert paths == ["images/0.png"] and (cams.width, cams.height) == (100, 80)
    torch.testing.assert_close(cams.intrinsics[0], torch.tensor([[1.0, 0, 0.5], [0, 1.5, 0.5], [0, 0, 1]], dtype=F64))
    # 5 in front of the camera and (+1, +1) off its axis in world x, y: camera x = world x,
    # camera y = world -y, so u = 50 + 100 * 1/5 = 70 and v = 40 - 120 * 1/5 = 16.
    uv, depth = cams.project(torch.tensor([[[1.0, 2.0, -2.0], [2.0, 3.0, -2.0]]], dtype=F64))
    torch.testing.assert_close(uv, torch.tensor([[[50.0, 40.0], [70.0, 16.0]]], dtype=F64))
    torch.testing.assert_close(depth, torch.tensor([[5.0, 5.0]], dtype=F64))


def test_transforms_json_round_trip_shared_and_per_frame(tmp_path):
    shared = Cameras.look_at(torch.randn(4, 3, dtype=F64) * 3, width=40, height=30, fov_degrees=35.0)
    for cams in (shared, random_cameras(4, centred=True)):
        meta = json.loads(json.dumps(cams.to_transforms_json([f"{i}.png" for i in range(4)])))
        assert ("fl_x" in meta) == (cams is shared) and ("fl_x" in meta["frames"][0]) == (cams is not shared)
        back, paths = Cameras.from_transforms_json(meta, dtype=F64)
        assert paths == ["0.png", "1.png", "2.png", "3.png"]
        assert_same(back, cams, atol=1e-12)
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps(shared.to_transforms_json()))
    back, paths = Cameras.from_transforms_json(path, dtype=F64)
    assert paths == [None] * 4
    assert_same(back, shared, atol=1e-12)


def test_transforms_json_frame_values_override_and_3x4_matrices():
    meta = transforms_by_hand()
    rows = meta["frames"][0]["transform_matrix"][:3]
    meta["frames"].append({"file_path": "b.png", "fl_x": 200, "transform_matrix": rows})
    cams, _ = Cameras.from_transforms_json(meta)
    assert cams.intrinsics[:, 0, 0].tolist() == [1.0, 2.0]
    torch.testing.assert_close(cams.cam2world[0], cams.cam2world[1])


@pytest.mark.parametrize("edit, match", [
    (lambda m: m["frames"].append({**m["frames"][0], "w": 120}), r"expected all frames to share w, h = \(100, 80\) "
                                                                 r"\(frame 0\), got \(120, 80\) in frame 1"),
    (lambda m: m.pop("fl_x"), r"expected 'fl_x' in frame 0 or at the top level, got neither"),
    (lambda m: m.update(k1=0.1), r"expected no lens distortion .* got \{'k1': 0.1\} in frame 0"),
    (lambda m: m.update(camera_model="OPENCV_FISHEYE"), r"expected 'camera_model' one of .*, got 'OPENCV_FISHEYE'"),
    (lambda m: m.update(frames=[]), r"expected a dict with a non-empty 'frames' list"),
    (lambda m: m["frames"][0].update(transform_matrix=[[1, 0], [0, 1]]), r"'transform_matrix' of shape \[4, 4\]"),
])
def test_bad_transforms_json_raises(edit, match):
    meta = transforms_by_hand()
    edit(meta)
    with pytest.raises(ValueError, match=r"Cameras.from_transforms_json: argument 'path_or_dict.*" + match):
        Cameras.from_transforms_json(meta)


def test_to_transforms_json_checks_its_arguments():
    with pytest.raises(ValueError, match=r"to_transforms_json: argument 'file_paths' expected 6 paths .* got 2"):
        random_cameras(6).to_transforms_json(["a", "b"])
    with pytest.raises(ValueError, match=r"to_transforms_json: argument 'self.intrinsics' expected no skew"):
        random_cameras(2).to_transforms_json()


# --- 3D Gaussian splatting ----------------------------------------------------------------


def test_3dgs_round_trip():
    cams = random_cameras(5, centred=True)
    gs = cams.to_3dgs()
    assert_same(Cameras.from_3dgs(gs["world_view_transform"], gs["fov_x"], gs["fov_y"], 40, 30), cams, atol=1e-12)
    torch.testing.assert_close(gs["camera_center"], cams.centers)
    torch.testing.assert_close(torch.rad2deg(gs["fov_y"]), cams.fov_y)


def test_3dgs_by_hand():
    # Identity world-to-camera, 90 degree fields of view: getProjectionMatrix(0.01, 100, pi/2, pi/2).
    gs_in = torch.eye(4, dtype=F64)[None]
    quarter = torch.tensor([math.pi / 2], dtype=F64)
    cams = Cameras.from_3dgs(gs_in, quarter, quarter, 100, 100)
    torch.testing.assert_close(cams.cam2world, gs_in)
    torch.testing.assert_close(cams.intrinsics[0], torch.tensor([[0.5, 0, 0.5], [0, 0.5, 0.5], [0, 0, 1]], dtype=F64))
    gs = cams.to_3dgs(znear=0.01, zfar=100.0)
    n, f = 0.01, 100.0
    p = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, f / (f - n), -f * n / (f - n)], [0, 0, 1, 0]], dtype=F64)
    torch.testing.assert_close(gs["projection_matrix"][0], p.T)
    torch.testing.assert_close(gs["full_proj_transform"][0], p.T)
    # (0.5, 0.25, 2): ndc x = 0.5 / 2 = 0.25 -> our u = (0.25 + 1) / 2 * 100 = 62.5.
    uv, _ = cams.project(torch.tensor([[[0.5, 0.25, 2.0]]], dtype=F64))
    torch.testing.assert_close(uv, torch.tensor([[[62.5, 56.25]]], dtype=F64))


def test_3dgs_projection_lands_on_our_pixels():
    cams = random_cameras(4, centred=True)
    gs = cams.to_3dgs(znear=0.01, zfar=100.0)
    points = torch.randn(4, 50, 3, dtype=F64) * 0.4
    clip = torch.cat([points, torch.ones(4, 50, 1, dtype=F64)], -1) @ gs["full_proj_transform"]
    ndc = clip[..., :3] / clip[..., 3:]
    # 3DGS's ndc2Pix(v, S) = ((v + 1) S - 1) / 2 puts pixel centres on integers; ours are at +0.5.
    size = torch.tensor([40.0, 30.0], dtype=F64)
    uv_3dgs = ((ndc[..., :2] + 1) * size - 1) / 2 + 0.5
    uv, depth = cams.project(points)
    torch.testing.assert_close(uv_3dgs, uv)
    torch.testing.assert_close(clip[..., 3], depth)
    assert bool(((ndc[..., 2] > 0) & (ndc[..., 2] < 1)).all())


def test_3dgs_rejects_what_it_cannot_represent():
    with pytest.raises(ValueError, match=r"Cameras.to_3dgs: argument 'self.intrinsics' expected a centred principal"):
        random_cameras(2).to_3dgs()
    with pytest.raises(ValueError, match=r"Cameras.to_3dgs: argument 'zfar' expected a number above znear=1.0"):
        random_cameras(2, centred=True).to_3dgs(znear=1.0, zfar=0.5)
    fov = torch.tensor([1.0], dtype=F64)
    sheared = torch.eye(4, dtype=F64)[None].clone()
    sheared[0, 0, 1] = 0.2
    with pytest.raises(ValueError, match=r"from_3dgs: argument 'world_view_transform \(transposed\)' expected an orth"):
        Cameras.from_3dgs(sheared, fov, fov, 8, 8)
    with pytest.raises(ValueError, match=r"from_3dgs: argument 'fov_y' expected radians in \(0, pi\), got 4.0"):
        Cameras.from_3dgs(torch.eye(4, dtype=F64)[None], fov, fov * 4, 8, 8)
    with pytest.raises(ValueError, match=r"from_3dgs: argument 'fov_x' expected shape \[B\] with B=1"):
        Cameras.from_3dgs(torch.eye(4, dtype=F64)[None], fov.repeat(2), fov, 8, 8)


@pytest.mark.cuda
def test_cameras_on_cuda_match_cpu():
    cams = random_cameras(3)
    gpu = cams.to("cuda")
    assert gpu.device.type == "cuda" and gpu.intrinsics.device.type == "cuda"
    origins, directions = gpu.generate_rays()
    torch.testing.assert_close(directions.cpu(), cams.generate_rays()[1])
    points = torch.randn(3, 5, 3, dtype=F64)
    uv, depth = gpu.project(points.cuda())
    torch.testing.assert_close(uv.cpu(), cams.project(points)[0])
    assert_same(Cameras.from_eg3d_label(gpu.to_eg3d_label(), 40, 30).to("cpu"), cams)
    assert_same(gpu.mirrored().to("cpu"), cams.mirrored())
    centred = random_cameras(3, centred=True)
    gs = centred.to("cuda").to_3dgs()
    torch.testing.assert_close(gs["full_proj_transform"].cpu(), centred.to_3dgs()["full_proj_transform"])
    with pytest.raises(ValueError, match=r"Cameras: argument 'intrinsics' expected device cuda:0 \(as cam2world\)"):
        Cameras(gpu.cam2world, cams.intrinsics, 40, 30)
