"""The volume renderer end to end: analytic depth and normals of a dense sphere, agreement
of the sampled and the occupancy-marched paths, chunking, gradients, and bad input."""

import math
import re

import pytest
import torch

from conftest import device_params
from render3d.cameras import Cameras, orbit
from render3d.rays import OccupancyGrid, intervals_from_points, merge_samples, ray_aabb
from render3d.volume import SphereField, TriPlaneField, VolumeRenderer, composite, demo_scene

BOX = ([-1, -1, -1], [1, 1, 1])


CENTER, RADIUS = (0.1, -0.05, 0.0), 0.5


def sphere_setup(size=32, dtype=torch.float64):
    # A nearly hard sphere: its density shell (softness 2e-4) is far thinner than any step.
    field = SphereField(center=CENTER, radius=RADIUS, color=(0.9, 0.4, 0.1), density_scale=1e4, softness=2e-4)
    cameras = Cameras.look_at(torch.tensor([[0.3, 0.4, 2.5], [-2.0, 0.2, -1.0]], dtype=dtype),
                              torch.zeros(2, 3, dtype=dtype), width=size, height=size, fov_degrees=40)
    return field, cameras


def ray_sphere(origins, directions):
    """Distance to the first intersection with the sphere, the cosine of incidence (0 on a
    miss), and how far the ray passes from the centre; unit directions."""
    oc = origins - torch.tensor(CENTER, dtype=origins.dtype)
    b = (oc * directions).sum(-1)
    disc = b**2 - ((oc**2).sum(-1) - RADIUS**2)
    passing = torch.sqrt(((oc**2).sum(-1) - b**2).clamp_min(0))
    return -b - torch.sqrt(disc.clamp_min(0)), torch.sqrt(disc.clamp_min(0)) / RADIUS, passing


@pytest.mark.parametrize("impl", ["native", "torch"])
def test_dense_sphere_depth_and_normals_are_analytic(impl):
    field, cameras = sphere_setup()
    origins, directions = cameras.generate_rays()
    t_hit, incidence, passing = ray_sphere(origins, directions)
    # Rays meeting the surface at a grazing angle cross the density shell along a long chord
    # and are legitimately stopped before the analytic surface: compare the others.
    frontal = incidence > 0.6
    coarse_step = 2 * math.sqrt(3) / 64  # the longest chord through the box, in 64 bins
    with torch.no_grad():
        coarse = VolumeRenderer(n_coarse=64, n_fine=0, near=0.1, far=6.0, bbox=BOX, impl=impl).eval()
        out = coarse.render_rays(field, origins, directions, normals=True)
        assert frontal.sum() > 300
        assert float((out["depth"][..., 0] - t_hit)[frontal].abs().max()) < coarse_step
        fine = VolumeRenderer(n_coarse=64, n_fine=64, near=0.1, far=6.0, bbox=BOX, impl=impl).eval()
        out = fine.render_rays(field, origins, directions, normals=True)
    error = (out["depth"][..., 0] - t_hit)[frontal].abs()
    assert float(error.max()) < coarse_step / 20 and float(error.mean()) < 1e-3  # importance sampling
    hit_points = origins + t_hit[..., None] * directions
    analytic = torch.nn.functional.normalize(hit_points - torch.tensor(CENTER, dtype=torch.float64), dim=-1)
    cosine = (out["normals"] * analytic).sum(-1)[frontal]
    assert float(cosine.min()) > 0.999
    torch.testing.assert_close(out["features"][frontal], torch.tensor([0.9, 0.4, 0.1], dtype=torch.float64).expand(
        int(frontal.sum()), 3), atol=1e-6, rtol=0)
    assert float(out["opacity"][frontal].min()) > 1 - 1e-6
    # rays that pass the sphere clear of its density shell see the (black) background
    miss = passing > RADIUS + 0.01
    assert miss.sum() > 300
    assert float(out["opacity"][miss].max()) < 1e-6 and float(out["features"][miss].abs().max()) < 1e-6


def test_sampled_and_marched_paths_agree():
    scene = demo_scene()
    cameras = orbit(2, radius=3.0, width=40, height=40, pitch=math.pi / 2 - 0.4, fov_degrees=40)
    sampled = VolumeRenderer(n_coarse=96, n_fine=96, near=0.1, far=10, bbox=BOX).eval()
    grid = OccupancyGrid(BOX, resolution=64)
    grid.build(scene.density, step_size=0.004, generator=torch.Generator().manual_seed(0))
    marched = VolumeRenderer(near=0.1, far=10, bbox=BOX, occupancy_grid=grid, step_size=0.002).eval()
    with torch.no_grad():
        a, b = sampled(scene, cameras), marched(scene, cameras)
    assert float((a["image"] - b["image"]).abs().mean()) < 0.01
    assert float((a["alpha"] - b["alpha"]).abs().mean()) < 0.01
    solid = (a["alpha"] > 0.99) & (b["alpha"] > 0.99)
    assert float((a["depth"] - b["depth"])[solid].abs().median()) < 0.01


def test_both_paths_put_empty_pixels_at_the_rays_far_end():
    """Where nothing is seen, depth is the ray's far end (the box's exit; near for a ray that
    misses the box) on both paths; the marched path gave 0 to rays the grid emptied."""
    sphere = SphereField(radius=0.4)
    cameras = orbit(2, radius=3.0, width=24, height=20, pitch=math.pi / 2 - 0.3, fov_degrees=70)
    origins, directions = cameras.generate_rays()
    t_near, t_far, hit = ray_aabb(origins, directions, *BOX, near=0.1, far=10)
    grid = OccupancyGrid(BOX, resolution=32)
    grid.build(sphere.density, step_size=0.01, generator=torch.Generator().manual_seed(0))
    sampled = VolumeRenderer(n_coarse=32, n_fine=32, near=0.1, far=10, bbox=BOX).eval()
    marched = VolumeRenderer(near=0.1, far=10, bbox=BOX, occupancy_grid=grid, step_size=0.005).eval()
    with torch.no_grad():
        a, b = (r.render_rays(sphere, origins, directions) for r in (sampled, marched))
    empty = (b["opacity"][..., 0] == 0) & (a["opacity"][..., 0] < 1e-9)
    assert empty.sum() > 100 and hit[empty].any() and (~hit[empty]).any()   # both kinds of empty ray
    torch.testing.assert_close(a["depth"][..., 0][empty], t_far[empty])
    torch.testing.assert_close(b["depth"][..., 0][empty], t_far[empty])
    assert float(b["opacity"].max()) > 0.99


def test_the_marched_path_gives_the_field_its_ray_directions():
    """A field whose colour is its ray direction renders the same on both paths (with a grid,
    the field was called with directions=None, so such a field raised a TypeError); and NaN
    densities are named on the grid path too."""
    sphere = SphereField(radius=0.5)

    def facing(points, directions):
        return sphere.density(points), directions * 0.5 + 0.5

    cameras = orbit(2, radius=3.0, width=16, height=12, pitch=math.pi / 2 - 0.4, fov_degrees=40)
    grid = OccupancyGrid(BOX, resolution=32)
    grid.build(sphere.density, step_size=0.01, generator=torch.Generator().manual_seed(0))
    sampled = VolumeRenderer(n_coarse=96, n_fine=96, near=0.1, far=10, bbox=BOX).eval()
    marched = VolumeRenderer(near=0.1, far=10, bbox=BOX, occupancy_grid=grid, step_size=0.002).eval()
    with torch.no_grad():
        a, b = sampled(facing, cameras, normals=False), marched(facing, cameras, normals=False)
    solid = ((a["alpha"] > 0.99) & (b["alpha"] > 0.99)).expand_as(a["image"])
    assert solid.any()
    torch.testing.assert_close(a["image"][solid], b["image"][solid], atol=1e-3, rtol=0)

    def broken(points, directions):
        return torch.where(points[..., 0] > 0.2, float("nan"), sphere.density(points)), directions

    with pytest.raises(ValueError, match=r"VolumeRenderer: argument 'field\(points, directions\) densities' expected "
                                         r"finite, non-negative values, got nan"):
        with torch.no_grad():
            marched(broken, cameras, normals=False)


def test_chunking_does_not_change_the_result():
    scene = demo_scene()
    cameras = orbit(3, radius=3.0, width=20, height=16, fov_degrees=40)
    big = VolumeRenderer(n_coarse=16, n_fine=16, bbox=BOX, chunk=1 << 20).eval()
    small = VolumeRenderer(n_coarse=16, n_fine=16, bbox=BOX, chunk=50).eval()
    with torch.no_grad():
        a, b = big(scene, cameras), small(scene, cameras)
    for key in a:
        torch.testing.assert_close(a[key], b[key])


@pytest.mark.parametrize("impl", ["native", "torch"])
@pytest.mark.parametrize("normals", [False, True])
def test_marching_in_chunks_where_no_ray_meets_the_grid(impl, normals):
    """A chunk of rays that all miss the occupied cells (the top rows of an orbit frame at
    192 px, once) has no samples: it renders the background, and the chunks agree with one."""
    scene = demo_scene()
    cameras = orbit(2, radius=3.0, width=24, height=20, pitch=math.pi / 2 - 0.4, fov_degrees=60)
    grid = OccupancyGrid(BOX, resolution=32)
    grid.build(scene.density, step_size=0.01, generator=torch.Generator().manual_seed(0))
    renderers = [VolumeRenderer(near=0.1, far=10, bbox=BOX, occupancy_grid=grid, step_size=0.005, chunk=chunk,
                                background=1.0, impl=impl).eval() for chunk in (1 << 20, 24)]
    with torch.no_grad():
        whole, chunked = (renderer(scene, cameras, normals=normals) for renderer in renderers)
    top = whole["alpha"][:, :, 0]                       # each chunk of 24 rays is one row of one view
    assert float(top.max()) == 0 and float(whole["alpha"].max()) > 0.99
    torch.testing.assert_close(whole["image"][:, :, 0], torch.ones_like(whole["image"][:, :, 0]))  # white background
    for key in whole:
        torch.testing.assert_close(whole[key], chunked[key])


def test_gradients_reach_field_parameters_and_match_the_twin():
    torch.manual_seed(0)
    field = TriPlaneField(resolution=16, channels=8, bounds=(-1, 1)).double()
    cameras = orbit(2, radius=2.5, width=8, height=8, fov_degrees=40, dtype=torch.float64)
    grads = {}
    for impl in ("native", "torch"):
        renderer = VolumeRenderer(n_coarse=12, n_fine=12, bbox=BOX, impl=impl).eval()
        out = renderer(field, cameras, normals=True)
        loss = out["image"].square().mean() + out["depth"].mean() + out["normals"].sum() * 1e-2
        grads[impl] = torch.autograd.grad(loss, [field.planes, *field.decoder.parameters()])
    assert float(grads["native"][0].abs().sum()) > 0
    for a, b in zip(grads["native"], grads["torch"]):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def merged_sets(seed, channels=5):
    """Coarse and fine sample sets of 2 x 7 rays, sorted within each set as the renderer's are,
    with densities and values; a few fine samples fall exactly on coarse ones."""
    g = torch.Generator().manual_seed(seed)
    t_coarse = torch.sort(1 + 3 * torch.rand(2, 7, 6, generator=g, dtype=torch.float64), dim=-1)[0]
    t_fine = torch.sort(1 + 3 * torch.rand(2, 7, 4, generator=g, dtype=torch.float64), dim=-1)[0]
    t_fine[:, :, 1] = t_coarse[:, :, 2]
    densities = [2 * torch.rand(*t.shape, generator=g, dtype=torch.float64) for t in (t_coarse, t_fine)]
    values = [torch.randn(*t.shape, channels, generator=g, dtype=torch.float64) for t in (t_coarse, t_fine)]
    return [t_coarse, t_fine], densities, values


@pytest.mark.parametrize("impl", ["native", "torch"])
def test_coarse_and_fine_sets_composite_as_the_textbook_merge(impl):
    """The renderer composites its coarse and fine samples without sorting their values (the
    weights go back to each set): it must equal sorting everything (merge_samples) and
    compositing with the twin, in the outputs and in every gradient."""
    points, densities, values = merged_sets(0)
    densities = [d.requires_grad_() for d in densities]
    values = [v.requires_grad_() for v in values]
    near, far = torch.full((2, 7), 0.9, dtype=torch.float64), torch.full((2, 7), 4.2, dtype=torch.float64)
    background = torch.tensor([0.2, -1.0, 0.5, 0.0, 1.0], dtype=torch.float64)
    renderer = VolumeRenderer(n_coarse=6, n_fine=4, bbox=BOX, impl=impl)
    out = renderer._composite_sets(points, densities, values, near, far, background)
    t_all, density, value = merge_samples(points, densities, values)
    t_starts, t_ends = intervals_from_points(t_all, near, far)
    expected = composite(density, value, t_starts, t_ends, background=background, impl="torch")
    weights = [torch.randn(out[key].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
               for key in ("values", "depth", "opacity")]
    for key in ("values", "depth", "opacity"):
        torch.testing.assert_close(out[key], expected[key], rtol=1e-12, atol=1e-12)
    grads = []
    for result in (out, expected):
        loss = sum((result[key] * w).sum() for key, w in zip(("values", "depth", "opacity"), weights))
        grads.append(torch.autograd.grad(loss, densities + values))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert all(float(g.abs().sum()) > 0 for g in grads[0])


def test_coarse_and_fine_sets_differentiate_twice():
    """Path-length regularization differentiates the render's gradient again: gradcheck and
    gradgradcheck of the set compositing through the native kernel, in float64."""
    points, densities, values = merged_sets(2, channels=2)
    near, far = torch.full((2, 7), 0.9, dtype=torch.float64), torch.full((2, 7), 4.2, dtype=torch.float64)
    renderer = VolumeRenderer(n_coarse=6, n_fine=4, bbox=BOX, impl="native")

    def render(d_coarse, d_fine, v_coarse, v_fine):
        out = renderer._composite_sets(points, [d_coarse, d_fine], [v_coarse, v_fine], near, far, 0.3)
        return out["values"], out["depth"], out["opacity"]

    inputs = [t.requires_grad_() for t in densities + values]
    assert torch.autograd.gradcheck(render, inputs)
    assert torch.autograd.gradgradcheck(render, inputs)


def test_training_mode_jitters_and_is_reproducible_with_a_generator():
    scene = demo_scene()
    cameras = orbit(1, radius=3.0, width=12, height=12, fov_degrees=40)
    renderer = VolumeRenderer(n_coarse=16, n_fine=8, bbox=BOX).train()
    with torch.no_grad():
        a = renderer(scene, cameras, normals=False, generator=torch.Generator().manual_seed(3))
        b = renderer(scene, cameras, normals=False, generator=torch.Generator().manual_seed(3))
        c = renderer(scene, cameras, normals=False, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a["image"], b["image"])
    assert not torch.equal(a["image"], c["image"])
    assert "normals" not in a


@pytest.mark.parametrize("device", device_params())
def test_background_and_device(device):
    field, cameras = sphere_setup(size=16, dtype=torch.float32)
    renderer = VolumeRenderer(n_coarse=32, n_fine=16, bbox=BOX, background=(0.2, 0.3, 0.4)).eval()
    with torch.no_grad():
        out = renderer(field.to(device), cameras.to(device))
    assert out["image"].device.type == device
    empty = out["alpha"][:, 0] < 1e-6
    torch.testing.assert_close(out["image"].permute(0, 2, 3, 1)[empty],
                               torch.tensor([0.2, 0.3, 0.4], device=device).expand(int(empty.sum()), 3))


def test_bad_configuration():
    with pytest.raises(ValueError, match="VolumeRenderer: argument 'n_coarse' expected a positive int, got 0"):
        VolumeRenderer(n_coarse=0)
    with pytest.raises(ValueError, match="argument 'far' expected a number greater than near=2.0, got 1.0"):
        VolumeRenderer(near=2.0, far=1.0)
    with pytest.raises(ValueError, match="argument 'spacing' expected one of 'linear', 'disparity'"):
        VolumeRenderer(spacing="log")
    # inf without a bbox made NaN bins, then blamed 'densities'; 8.0 and True were taken as counts
    with pytest.raises(ValueError, match="argument 'far' expected a finite number when no bbox is given, got inf"):
        VolumeRenderer(far=math.inf)
    VolumeRenderer(far=math.inf, bbox=BOX)                       # the box ends the rays
    for name, bad in (("n_coarse", 8.0), ("n_fine", True), ("chunk", 4.5)):
        with pytest.raises(ValueError, match=f"VolumeRenderer: argument '{name}' expected a (positive|non-negative) "
                                             f"int, got {bad!r}"):
            VolumeRenderer(**{name: bad})
    # an inverted box rendered nothing, silently; no cameras raised ZeroDivisionError
    with pytest.raises(ValueError, match=r"VolumeRenderer: argument 'bbox' expected max > min on every axis, got "
                                         r"min \[1.0, -1.0, -1.0\], max \[-1.0, 1.0, 1.0\]"):
        VolumeRenderer(bbox=([1, -1, -1], [-1, 1, 1]))
    with pytest.raises(ValueError, match="argument 'bbox' expected \\(min_xyz, max_xyz\\) with 3 finite numbers"):
        VolumeRenderer(bbox=([0, 0], [1, 1]))
    renderer = VolumeRenderer()
    with pytest.raises(ValueError, match=r"render_rays: argument 'directions' expected shape \[B, R, 3\]"):
        renderer.render_rays(demo_scene(), torch.zeros(1, 4, 3), torch.zeros(1, 5, 3))
    with pytest.raises(ValueError, match=r"render_rays: arguments 'origins', 'directions' expected at least one ray, "
                                         r"got shape \[0, 64, 3\]"):
        renderer(demo_scene(), orbit(1, radius=3.0, width=8, height=8, fov_degrees=60)[:0])


def test_a_background_that_is_not_a_colour_is_named():
    """A string and a NaN reached the first render (torch's 'invalid data type', NaN images), and
    a colour of the wrong length failed in torch's expand."""
    for bad in ("white", float("nan"), (0.5, math.inf, 0.5), [], [[1.0, 1.0, 1.0]]):
        with pytest.raises(ValueError, match=re.escape(f"render3d.volume.VolumeRenderer: argument 'background' "
                                                       f"expected None, a finite float or [C] finite floats, "
                                                       f"got {bad!r}")):
            VolumeRenderer(background=bad)
    cameras = orbit(1, radius=3.0, width=8, height=8, fov_degrees=60)
    with pytest.raises(ValueError, match=re.escape("render3d.volume.VolumeRenderer: argument 'background' expected a "
                                                   "float or [C=3] (the field's channels), got 2 values [1.0, 0.5]")):
        VolumeRenderer(bbox=BOX, background=(1.0, 0.5))(demo_scene(), cameras, normals=False)
    grey = [VolumeRenderer(bbox=BOX, background=bg).eval()(demo_scene(), cameras, normals=False)["image"]
            for bg in (0.5, [0.5], torch.tensor([0.5, 0.5, 0.5]))]
    torch.testing.assert_close(grey[0], grey[1])
    torch.testing.assert_close(grey[0], grey[2])


def test_nan_densities_from_the_field_are_reported():
    def broken(points, directions):
        density = torch.where(points[..., 0] > 0.5, float("nan"), 1.0)
        return density, torch.ones(*points.shape[:-1], 3)

    cameras = orbit(1, radius=3.0, width=8, height=8, fov_degrees=60)
    with pytest.raises(ValueError, match="argument 'densities' expected finite, non-negative values, got nan"):
        VolumeRenderer(n_coarse=8, n_fine=0, bbox=BOX).eval()(broken, cameras, normals=False)
    with torch.no_grad():  # the check can be turned off where a device sync per chunk is too costly
        out = VolumeRenderer(n_coarse=8, n_fine=0, bbox=BOX, check_values=False).eval()(broken, cameras, normals=False)
    assert torch.isnan(out["image"]).any()
