"""render3d.cameras poses: look-at, yaw/pitch (EG3D and pi-GAN), samplers and trajectories."""

import math
import re

import pytest
import torch

from render3d.cameras import Cameras, DatasetPoseSampler, Framing, orbit, sample_yaw_pitch, spiral, yaw_sweep

F64 = torch.float64
PI = math.pi
EG3D_K = torch.tensor([[4.2647, 0, 0.5], [0, 4.2647, 0.5], [0, 0, 1]], dtype=F64)


def eg3d_look_at_pose_sampler(yaw, pitch, lookat, radius):
    """EG3D's LookAtPoseSampler.sample + create_cam2world_matrix, re-derived with numbers:
    pitch -> polar angle arccos(1 - 2 pitch / pi); right = -normalize(up x forward),
    camera y = normalize(forward x right), columns (right, y, forward)."""
    polar = math.acos(1 - 2 * pitch / PI)
    origin = torch.tensor([radius * math.sin(polar) * math.cos(PI - yaw), radius * math.cos(polar),
                           radius * math.sin(polar) * math.sin(PI - yaw)], dtype=F64)
    forward = torch.tensor(lookat, dtype=F64) - origin
    forward = forward / forward.norm()
    up = torch.tensor([0.0, 1.0, 0.0], dtype=F64)
    right = -torch.linalg.cross(up, forward)
    right = right / right.norm()
    y = torch.linalg.cross(forward, right)
    pose = torch.eye(4, dtype=F64)
    pose[:3, :3] = torch.stack([right, y / y.norm(), forward], -1)
    pose[:3, 3] = origin
    return pose


def assert_look_at(cams: Cameras, target: torch.Tensor):
    """Each camera's z axis points at `target` [B, 3], its x axis is horizontal and its y axis
    points down (world +y appears up on screen)."""
    to_target = target - cams.centers
    rot = cams.cam2world[:, :3, :3]
    torch.testing.assert_close(rot[:, :, 2], to_target / to_target.norm(dim=-1, keepdim=True))
    torch.testing.assert_close(rot[:, 1, 0], torch.zeros(len(cams), dtype=cams.dtype, device=cams.device))
    assert bool((rot[:, 1, 1] < 0).all())


# --- look-at ------------------------------------------------------------------------------


def test_look_at_by_hand():
    cams = Cameras.look_at(torch.tensor([[0.0, 0.0, 3.0]], dtype=F64), width=8, height=8, fov_degrees=60.0)
    want = torch.tensor([[1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 3], [0, 0, 0, 1]], dtype=F64)
    torch.testing.assert_close(cams.cam2world[0], want)
    torch.testing.assert_close(cams.fov_y, torch.tensor([60.0], dtype=F64))
    # Looking along +x with +y up, right is +z: camera x = world +z, y = world -y, z = world +x.
    cams = Cameras.look_at(torch.zeros(1, 3, dtype=F64), (1.0, 0.0, 0.0), width=8, height=8, fov_degrees=60.0)
    torch.testing.assert_close(cams.cam2world[0, :3, :3], torch.tensor([[0.0, 0, 1], [0, -1, 0], [1, 0, 0]],
                                                                       dtype=F64))


def test_look_at_random_targets():
    g = torch.Generator().manual_seed(1)
    eye, target = torch.randn(16, 3, generator=g, dtype=F64) * 3, torch.randn(16, 3, generator=g, dtype=F64)
    cams = Cameras.look_at(eye, target, width=32, height=24, fov_degrees=torch.full((16,), 40.0, dtype=F64))
    assert_look_at(cams, target)
    uv, depth = cams.project(target[:, None])
    torch.testing.assert_close(uv, torch.tensor([16.0, 12.0], dtype=F64).expand(16, 1, 2))
    torch.testing.assert_close(depth[:, 0], (target - eye).norm(dim=-1))


def test_look_at_bad_input():
    eye = torch.tensor([[0.0, 2.0, 0.0]], dtype=F64)
    with pytest.raises(ValueError, match=r"Cameras.look_at: argument 'up' expected a view not parallel to up "
                                         r"\[0.0, 1.0, 0.0\], got viewing direction \[0.0, -1.0, 0.0\] in camera 0"):
        Cameras.look_at(eye, width=8, height=8, fov_degrees=40.0)
    with pytest.raises(ValueError, match=r"Cameras.look_at: argument 'target' expected a point apart from the camera"):
        Cameras.look_at(eye, (0.0, 2.0, 0.0), (0.0, 0.0, 1.0), width=8, height=8, fov_degrees=40.0)
    with pytest.raises(ValueError, match=r"Cameras.look_at: argument 'eye' expected shape \[None, 3\], got \[3\]"):
        Cameras.look_at(eye[0], width=8, height=8, fov_degrees=40.0)
    with pytest.raises(ValueError, match=r"arguments 'fov_degrees', 'intrinsics' expected exactly one, got both"):
        Cameras.look_at(eye, (1.0, 0, 0), width=8, height=8, fov_degrees=40.0, intrinsics=EG3D_K)
    with pytest.raises(ValueError, match=r"arguments 'fov_degrees', 'intrinsics' expected exactly one, got neither"):
        Cameras.look_at(eye, (1.0, 0, 0), width=8, height=8)
    with pytest.raises(ValueError, match=r"argument 'intrinsics' expected dtype float64 \(as the pose tensors\)"):
        Cameras.look_at(eye, (1.0, 0, 0), width=8, height=8, intrinsics=EG3D_K.float())
    with pytest.raises(ValueError, match=r"argument 'target' expected shape \[3\] or \[1, 3\], got \[2, 3\]"):
        Cameras.look_at(eye, torch.zeros(2, 3, dtype=F64), width=8, height=8, fov_degrees=40.0)


# --- yaw / pitch --------------------------------------------------------------------------


def test_eg3d_frontal_label_by_hand():
    # EG3D's FFHQ frontal camera: LookAtPoseSampler.sample(pi/2, pi/2, (0, 0, 0.2), radius=2.7)
    # keeps the sphere around the origin, so the camera is at (0, 0, 2.7), looking along -z.
    cams = Cameras.from_yaw_pitch(torch.tensor([PI / 2], dtype=F64), PI / 2, 2.7, pivot=(0.0, 0.0, 0.2),
                                  intrinsics=EG3D_K, width=512, height=512)
    want = torch.tensor([[1, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1, 2.7, 0, 0, 0, 1,
                          4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1]], dtype=F64)
    torch.testing.assert_close(cams.to_eg3d_label(), want)
    # centered on the pivot instead, the same angles put the camera at pivot + (0, 0, r).
    around_pivot = Cameras.from_yaw_pitch(torch.tensor([PI / 2], dtype=F64), PI / 2, 2.7, pivot=(0.0, 0.0, 0.2),
                                          center=(0.0, 0.0, 0.2), intrinsics=EG3D_K, width=512, height=512)
    torch.testing.assert_close(around_pivot.centers, torch.tensor([[0.0, 0.0, 2.9]], dtype=F64))


@pytest.mark.parametrize("convention, yaw, pitch, position", [
    ("eg3d", 0.0, PI / 2, (-2.0, 0.0, 0.0)),
    ("pigan", 0.0, PI / 2, (2.0, 0.0, 0.0)),
    ("eg3d", PI / 2, PI / 3, (0.0, 2.0 / 3, 2.0 * math.sqrt(8) / 3)),  # polar arccos(1/3): y = r/3
    ("pigan", PI / 2, PI / 3, (0.0, 1.0, 2.0 * math.sqrt(3) / 2)),  # polar pi/3: y = r/2
])
def test_yaw_pitch_positions_by_hand(convention, yaw, pitch, position):
    cams = Cameras.from_yaw_pitch(torch.tensor([yaw], dtype=F64), pitch, 2.0, fov_degrees=30.0, width=8, height=8,
                                  convention=convention)
    torch.testing.assert_close(cams.centers[0], torch.tensor(position, dtype=F64))
    assert_look_at(cams, torch.zeros(1, 3, dtype=F64))


def test_eg3d_convention_matches_eg3d_sampler():
    g = torch.Generator().manual_seed(2)
    yaw = (torch.rand(10, generator=g, dtype=F64) - 0.5) * 2 * PI
    pitch = torch.rand(10, generator=g, dtype=F64) * 2.8 + 0.15
    pivot = (0.1, -0.2, 0.3)
    cams = Cameras.from_yaw_pitch(yaw, pitch, 1.7, pivot=pivot, fov_degrees=20.0, width=8, height=8)
    want = torch.stack([eg3d_look_at_pose_sampler(y, p, pivot, 1.7) for y, p in zip(yaw.tolist(), pitch.tolist())])
    torch.testing.assert_close(cams.cam2world, want)


@pytest.mark.parametrize("convention", ["eg3d", "pigan"])
@pytest.mark.parametrize("around_pivot", [True, False])
def test_yaw_pitch_round_trips(convention, around_pivot):
    g = torch.Generator().manual_seed(3)
    yaw = (torch.rand(32, generator=g, dtype=F64) - 0.5) * 2 * PI * 0.99
    pitch = torch.rand(32, generator=g, dtype=F64) * (PI - 0.2) + 0.1
    radius = torch.rand(32, generator=g, dtype=F64) + 1
    pivot = torch.randn(32, 3, generator=g, dtype=F64) * 0.2
    center = pivot if around_pivot else torch.randn(32, 3, generator=g, dtype=F64) * 0.2
    cams = Cameras.from_yaw_pitch(yaw, pitch, radius, pivot=pivot, center=center, fov_degrees=25.0, width=16,
                                  height=8, convention=convention)
    assert_look_at(cams, pivot)
    for got, want in zip(cams.to_yaw_pitch(center, convention), (yaw, pitch, radius)):
        torch.testing.assert_close(got, want)
    # Cameras looking at the pivot from random eyes survive to_yaw_pitch -> from_yaw_pitch.
    eye = torch.randn(32, 3, generator=g, dtype=F64) * 3
    looking = Cameras.look_at(eye, pivot, width=16, height=8, intrinsics=cams.intrinsics)
    back = Cameras.from_yaw_pitch(*looking.to_yaw_pitch(center, convention), pivot=pivot, center=center,
                                  intrinsics=cams.intrinsics, width=16, height=8, convention=convention)
    torch.testing.assert_close(back.cam2world, looking.cam2world)


def test_pole_is_clamped_to_a_valid_camera():
    cams = Cameras.from_yaw_pitch(torch.tensor([PI / 2, PI / 2], dtype=F64), torch.tensor([0.0, PI], dtype=F64),
                                  2.0, fov_degrees=30.0, width=8, height=8)
    torch.testing.assert_close(cams.centers[:, 1], torch.tensor([2.0, -2.0], dtype=F64), atol=1e-4, rtol=0)
    torch.testing.assert_close(cams.cam2world[:, 1, 2], torch.tensor([-1.0, 1.0], dtype=F64), atol=1e-4, rtol=0)
    # The clamp keeps the roll of the neighbouring frontal cameras: camera x stays world +x.
    torch.testing.assert_close(cams.cam2world[:, :3, 0], torch.tensor([[1.0, 0, 0], [1.0, 0, 0]], dtype=F64))


def test_yaw_pitch_bad_input():
    kwargs = dict(fov_degrees=30.0, width=8, height=8)
    with pytest.raises(ValueError, match=r"from_yaw_pitch: argument 'convention' expected one of 'eg3d', 'pigan', "
                                         r"got 'opengl'"):
        Cameras.from_yaw_pitch(0.0, 1.0, 2.0, convention="opengl", **kwargs)
    with pytest.raises(ValueError, match=r"from_yaw_pitch: argument 'radius' expected positive finite values, "
                                         r"got -1.0"):
        Cameras.from_yaw_pitch(0.0, 1.0, -1.0, **kwargs)
    with pytest.raises(ValueError, match=r"from_yaw_pitch: argument 'pitch' expected shape a scalar or \[3\], "
                                         r"got \[2\]"):
        Cameras.from_yaw_pitch(torch.zeros(3), torch.ones(2), 2.0, **kwargs)
    with pytest.raises(ValueError, match=r"from_yaw_pitch: argument 'yaw' expected shape \[None\], got \[3, 1\]"):
        Cameras.from_yaw_pitch(torch.zeros(3, 1), 1.0, 2.0, **kwargs)
    with pytest.raises(ValueError, match=r"from_yaw_pitch: argument 'pivot' expected a point apart from the camera"):
        Cameras.from_yaw_pitch(PI / 2, PI / 2, 2.0, pivot=(0.0, 0.0, 2.0), **kwargs)
    with pytest.raises(ValueError, match=r"to_yaw_pitch: argument 'convention' expected one of 'eg3d', 'pigan'"):
        Cameras.from_yaw_pitch(0.0, 1.0, 2.0, **kwargs).to_yaw_pitch(convention="EG3D")


# --- samplers -----------------------------------------------------------------------------


@pytest.mark.parametrize("convention", ["eg3d", "pigan"])
def test_gaussian_sampler_statistics(convention):
    g = torch.Generator().manual_seed(4)
    cams = sample_yaw_pitch(20000, yaw_spread=0.3, pitch_spread=0.15, yaw_mean=1.2, pitch_mean=1.4, radius=2.7,
                            pivot=(0.0, 0.0, 0.2), fov_degrees=18.0, width=8, height=8, generator=g,
                            convention=convention, dtype=F64)
    yaw, pitch, radius = cams.to_yaw_pitch((0.0, 0.0, 0.0), convention)
    # Standard errors: 0.3 / sqrt(20000) = 0.002 for the mean, 0.3 / sqrt(40000) = 0.0015 for the std.
    assert abs(yaw.mean().item() - 1.2) < 0.01 and abs(yaw.std().item() - 0.3) < 0.008
    assert abs(pitch.mean().item() - 1.4) < 0.005 and abs(pitch.std().item() - 0.15) < 0.004
    torch.testing.assert_close(radius, torch.full_like(radius, 2.7))
    assert_look_at(cams, torch.tensor([0.0, 0.0, 0.2], dtype=F64).expand(20000, 3))


def test_uniform_sampler_bounds():
    g = torch.Generator().manual_seed(5)
    cams = sample_yaw_pitch(5000, yaw_spread=0.5, pitch_spread=0.2, distribution="uniform", radius=1.0,
                            fov_degrees=18.0, width=8, height=8, generator=g, dtype=F64)
    yaw, pitch, _ = cams.to_yaw_pitch()
    assert yaw.min().item() >= PI / 2 - 0.5 - 1e-9 and yaw.max().item() <= PI / 2 + 0.5 + 1e-9
    assert pitch.min().item() >= PI / 2 - 0.2 - 1e-9 and pitch.max().item() <= PI / 2 + 0.2 + 1e-9
    # Uniform, not bunched: the extremes come close to the bounds and the mean sits in the middle.
    assert yaw.min().item() < PI / 2 - 0.49 and yaw.max().item() > PI / 2 + 0.49
    assert abs(yaw.mean().item() - PI / 2) < 0.02 and abs(yaw.std().item() - 0.5 / math.sqrt(3)) < 0.01


def test_samplers_are_reproducible_and_check_arguments():
    kwargs = dict(yaw_spread=0.3, pitch_spread=0.1, radius=2.0, fov_degrees=18.0, width=8, height=8)
    a = sample_yaw_pitch(6, generator=torch.Generator().manual_seed(7), **kwargs)
    b = sample_yaw_pitch(6, generator=torch.Generator().manual_seed(7), **kwargs)
    c = sample_yaw_pitch(6, generator=torch.Generator().manual_seed(8), **kwargs)
    assert torch.equal(a.cam2world, b.cam2world) and not torch.equal(a.cam2world, c.cam2world)
    assert a.dtype == torch.float32
    with pytest.raises(ValueError, match=r"sample_yaw_pitch: argument 'distribution' expected one of 'gaussian', "
                                         r"'uniform', got 'normal'"):
        sample_yaw_pitch(2, distribution="normal", **kwargs)
    with pytest.raises(ValueError, match=r"sample_yaw_pitch: argument 'batch' expected a positive number, got 0"):
        sample_yaw_pitch(0, **kwargs)
    with pytest.raises(ValueError, match=r"sample_yaw_pitch: argument 'yaw_spread' expected a non-negative number"):
        sample_yaw_pitch(2, **{**kwargs, "yaw_spread": -0.1})


def test_dataset_pose_sampler_replays_labels():
    labels = Cameras.look_at(torch.randn(5, 3, dtype=F64) * 3, width=64, height=64, fov_degrees=20.0).to_eg3d_label()
    sampler = DatasetPoseSampler(labels, 64, 64)
    assert len(sampler) == 5
    drawn = sampler.sample(200, torch.Generator().manual_seed(0))
    assert len(drawn) == 200 and (drawn.width, drawn.height) == (64, 64)
    # Every draw is one of the labels, and with 200 draws every label shows up.
    match = (drawn.to_eg3d_label()[:, None] == labels[None]).all(-1)
    assert bool((match.sum(1) == 1).all()) and bool(match.any(0).all())
    again = sampler.sample(200, torch.Generator().manual_seed(0))
    assert torch.equal(again.cam2world, drawn.cam2world)
    with pytest.raises(ValueError, match=r"DatasetPoseSampler: argument 'labels' expected shape \[None, 25\]"):
        DatasetPoseSampler(labels[:, :16], 64, 64)
    bad = labels.clone()
    bad[3, 0] = 2.0
    with pytest.raises(ValueError, match=r"Cameras: argument 'cam2world' expected an orthonormal .* camera 3"):
        DatasetPoseSampler(bad, 64, 64)
    with pytest.raises(ValueError, match=r"DatasetPoseSampler.sample: argument 'batch' expected an int, got float"):
        sampler.sample(2.0)


# --- trajectories -------------------------------------------------------------------------

TRAJECTORY = dict(radius=2.5, pivot=(0.0, 0.1, 0.2), fov_degrees=18.0, width=8, height=8, dtype=F64)


@pytest.mark.parametrize("center", [(0.0, 0.1, 0.2), (0.0, 0.0, 0.0)])
def test_orbit_turns_once_around_the_center(center):
    n = 12
    cams = orbit(n, pitch=1.3, center=center, **TRAJECTORY)
    pivot = torch.tensor(TRAJECTORY["pivot"], dtype=F64)
    yaw, pitch, radius = cams.to_yaw_pitch(center)
    torch.testing.assert_close(radius, torch.full((n,), 2.5, dtype=F64))
    torch.testing.assert_close(pitch, torch.full((n,), 1.3, dtype=F64))
    assert_look_at(cams, pivot.expand(n, 3))
    steps = torch.remainder(yaw.diff(), 2 * PI)
    torch.testing.assert_close(steps, torch.full((n - 1,), 2 * PI / n, dtype=F64))
    torch.testing.assert_close(yaw[0], torch.tensor(PI / 2, dtype=F64))
    after_full_turn = Cameras.from_yaw_pitch(torch.tensor([PI / 2 + 2 * PI], dtype=F64), 1.3, 2.5,
                                             pivot=TRAJECTORY["pivot"], center=center, fov_degrees=18.0, width=8,
                                             height=8)
    torch.testing.assert_close(after_full_turn.cam2world, cams.cam2world[:1])
    torch.testing.assert_close(orbit(2 * n, pitch=1.3, center=center, **TRAJECTORY)[::2].cam2world, cams.cam2world)


def test_yaw_sweep_follows_eg3d_video_path():
    n = 10
    cams = yaw_sweep(n, **TRAJECTORY)
    yaw, pitch, radius = cams.to_yaw_pitch()
    t = torch.arange(n, dtype=F64) * 2 * PI / n
    torch.testing.assert_close(yaw, PI / 2 + 0.35 * t.sin())
    torch.testing.assert_close(pitch, PI / 2 - 0.05 + 0.25 * t.cos())
    torch.testing.assert_close(radius, torch.full((n,), 2.5, dtype=F64))
    assert torch.equal(yaw_sweep(n, **TRAJECTORY).cam2world, cams.cam2world)


def test_spiral_turns_while_pitch_oscillates():
    n = 16
    cams = spiral(n, pitch_range=0.3, pitch_cycles=2, **TRAJECTORY)
    yaw, pitch, _ = cams.to_yaw_pitch()
    torch.testing.assert_close(torch.remainder(yaw.diff(), 2 * PI), torch.full((n - 1,), 2 * PI / n, dtype=F64))
    t = torch.arange(n, dtype=F64) * 2 * PI / n
    torch.testing.assert_close(pitch, PI / 2 + 0.3 * (2 * t).sin())
    assert pitch.max().item() > PI / 2 + 0.29 and pitch.min().item() < PI / 2 - 0.29


def test_trajectories_check_arguments():
    with pytest.raises(ValueError, match=r"orbit: argument 'n' expected a positive number, got 0"):
        orbit(0, **TRAJECTORY)
    with pytest.raises(ValueError, match=r"spiral: argument 'pitch_cycles' expected an int, got float"):
        spiral(4, pitch_cycles=1.5, **TRAJECTORY)
    with pytest.raises(ValueError, match=r"yaw_sweep: argument 'convention' expected one of 'eg3d', 'pigan'"):
        yaw_sweep(4, convention="threestudio", **TRAJECTORY)


@pytest.mark.cuda
def test_poses_on_cuda():
    kwargs = dict(yaw_spread=0.3, pitch_spread=0.1, radius=2.0, fov_degrees=18.0, width=8, height=8)
    cams = sample_yaw_pitch(4, generator=torch.Generator(device="cuda").manual_seed(0), device="cuda", **kwargs)
    assert cams.device.type == "cuda"
    cpu_noise = sample_yaw_pitch(4, generator=torch.Generator().manual_seed(0), device="cuda", **kwargs)
    assert cpu_noise.device.type == "cuda"
    cpu = sample_yaw_pitch(4, generator=torch.Generator().manual_seed(0), **kwargs)
    torch.testing.assert_close(cpu_noise.cam2world.cpu(), cpu.cam2world)
    assert orbit(5, device="cuda", **TRAJECTORY).device.type == "cuda"
    labels = cpu.to_eg3d_label().cuda()
    drawn = DatasetPoseSampler(labels, 8, 8).sample(6, torch.Generator().manual_seed(0))
    assert drawn.device.type == "cuda"
    eye = torch.randn(3, 3, device="cuda") * 3
    assert_look_at(Cameras.look_at(eye, width=8, height=8, fov_degrees=30.0), torch.zeros(3, 3, device="cuda"))


@pytest.mark.parametrize("make, message", [
    # the look-at frame blamed 'pivot' for each of these
    (lambda: orbit(2, radius=2.0, width=8, height=8, fov_degrees=30, pitch=math.nan),
     "orbit: argument 'pitch' expected a finite number, got nan"),
    (lambda: orbit(2, radius=math.inf, width=8, height=8, fov_degrees=30),
     "orbit: argument 'radius' expected positive finite values, got inf at index 0"),
    (lambda: spiral(2, radius=2.0, width=8, height=8, fov_degrees=30, pitch_range=math.nan),
     "spiral: argument 'pitch_range' expected a finite number, got nan"),
    (lambda: sample_yaw_pitch(2, yaw_spread=0.1, pitch_spread=0.1, radius=2.0, width=8, height=8, fov_degrees=30,
                              yaw_mean=math.nan), "sample_yaw_pitch: argument 'yaw_mean' expected a finite number"),
    (lambda: sample_yaw_pitch(2, yaw_spread=math.inf, pitch_spread=0.1, radius=2.0, width=8, height=8, fov_degrees=30),
     "sample_yaw_pitch: argument 'yaw_spread' expected a non-negative number"),
    (lambda: Framing(math.inf), "Framing: argument 'radius' expected a positive number, got inf"),
    (lambda: Framing.around([-1] * 3, [1] * 3, fov_degrees=0),                 # was a ZeroDivisionError
     "Framing.around: argument 'fov_degrees' expected degrees in (0, 180), got 0"),
    (lambda: Framing.around([-1] * 3, [1] * 3, margin=-1), "Framing.around: argument 'margin' expected a positive "
                                                           "number, got -1"),     # was blamed on 'radius'
    (lambda: Framing.around([-math.inf] * 3, [1] * 3), "Framing.around: arguments 'lo', 'hi' expected 3 finite "
                                                       "numbers each"),
    (lambda: Framing(3.0).cameras(2, 8, 0), "argument 'height' expected a positive number, got 0"),  # was 8 x 8
])
def test_pose_numbers_are_named(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()
