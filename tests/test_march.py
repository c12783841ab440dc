"""Occupancy-grid marching: the native kernel reproduces its twin exactly (skipping never
changes the samples), analytic sample counts, grid updates, and transmittance early stop."""

import math
import re

import pytest
import torch

from conftest import device_params
from render3d.ops.march import occupancy_march_op, occupancy_march_torch
from render3d.rays import OccupancyGrid, pack_bits


def random_rays(n, seed=0, dtype=torch.float32, spread=3.0):
    g = torch.Generator().manual_seed(seed)
    origins = torch.randn(n, 3, generator=g, dtype=dtype) * spread
    targets = torch.rand(n, 3, generator=g, dtype=dtype) * 2 - 1
    directions = torch.nn.functional.normalize(targets - origins, dim=-1)
    return origins, directions, g


def random_bits(levels, res, fraction, g):
    return pack_bits(torch.rand(levels, res**3, generator=g) < fraction)


CASES = [
    # levels, resolution, occupied fraction, step, cone, max_samples
    (1, 16, 0.3, 0.01, 0.0, 0),
    (1, 8, 0.05, 0.003, 0.0, 0),
    (3, 16, 0.2, 0.02, 0.0, 0),
    (2, 12, 0.5, 0.005, 0.02, 0),
    (1, 16, 0.3, 0.01, 0.0, 5),
    (4, 8, 0.1, 0.004, 1 / 256, 0),
]


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES)
def test_native_equals_twin_exactly(device, dtype, case):
    levels, res, fraction, step, cone, max_samples = case
    origins, directions, g = random_rays(400, dtype=dtype)
    bits = random_bits(levels, res, fraction, g)
    near = torch.rand(400, generator=g, dtype=dtype)
    far = near + 2 + torch.rand(400, generator=g, dtype=dtype) * 6
    far[::7] = float("inf")  # unbounded rays end where they leave the grid
    args = [t.to(device) for t in (origins, directions, near, far, bits)]
    config = ([0.1, -0.2, 0.0], [1.0, 0.8, 1.2], res, step, cone, 1e10, max_samples)
    native = occupancy_march_op(*args, *config, impl="native", fn="test")
    twin = occupancy_march_torch(*args, *config)
    assert native[1].numel() > 0
    for a, b in zip(native, twin):
        assert torch.equal(a, b)


@pytest.mark.parametrize("impl", ["native", "torch"])
def test_axis_aligned_ray_count_is_analytic(impl):
    """A ray along +x from x=-3 through the fully occupied box [-1, 1]^3 with steps of 0.1 from
    t=0 keeps the intervals whose midpoints 0.1k + 0.05 lie in [2, 4]: k = 20..39."""
    grid = OccupancyGrid(([-1, -1, -1], [1, 1, 1]), resolution=8)
    origins = torch.tensor([[-3.0, 0.1, 0.2]], dtype=torch.float64)
    directions = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    samples = grid.march(origins, directions, 0.0, 100.0, step_size=0.1, impl=impl)
    assert len(samples) == 20
    torch.testing.assert_close(samples.t_starts, 0.1 * torch.arange(20, 40, dtype=torch.float64))
    torch.testing.assert_close(samples.t_ends - samples.t_starts, torch.full((20,), 0.1, dtype=torch.float64))
    assert samples.offsets.tolist() == [0, 20]


@pytest.mark.parametrize("impl", ["native", "torch"])
def test_single_occupied_cell(impl):
    """With one occupied cell, every sample midpoint lies in that cell, and a ray straight
    through its centre gets exactly the lattice points inside it."""
    res = 8
    occupied = torch.zeros(1, res**3, dtype=torch.bool)
    cell = (5 * res + 2) * res + 3
    occupied[0, cell] = True
    grid = OccupancyGrid(([-1, -1, -1], [1, 1, 1]), resolution=res)
    grid.bitfield.copy_(pack_bits(occupied))
    center = grid.cell_centers(0, torch.tensor([cell]))[0].double()
    origins = torch.stack([center - torch.tensor([0, 0, 5.0], dtype=torch.float64), center + torch.tensor([4.0, 0, 0])])
    directions = torch.tensor([[0, 0, 1.0], [-1.0, 0, 0]], dtype=torch.float64)
    samples = grid.march(origins, directions, 0.0, 20.0, step_size=0.01, impl=impl)
    # the cell is 0.25 wide: 25 lattice midpoints fall inside it for each ray
    assert samples.offsets.tolist() == [0, 25, 50]
    mids = origins[samples.ray_ids] + samples.midpoints()[:, None] * directions[samples.ray_ids]
    assert bool(((mids - center).abs() <= 0.125 + 1e-9).all())


@pytest.mark.parametrize("impl", ["native", "torch"])
def test_cone_steps_grow_with_distance(impl):
    grid = OccupancyGrid(([-1, -1, -1], [1, 1, 1]), resolution=8)
    origins = torch.tensor([[0.0, 0.0, -50.0]], dtype=torch.float64)
    directions = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    samples = grid.march(origins, directions, 1.0, 100.0, step_size=1e-3, cone_angle=0.01, impl=impl)
    widths = samples.t_ends - samples.t_starts
    torch.testing.assert_close(widths, samples.t_starts * 0.01)  # clamp inactive at t ~ 50
    # t_{k+1} = 1.01 t_k from t_0 = 1: count the lattice midpoints inside z in [-1, 1]
    t, expected = 1.0, 0
    while True:
        t_next = t + max(t * 0.01, 1e-3)
        mid = 0.5 * (t + t_next)
        if mid > 51:
            break
        expected += mid >= 49
        t = t_next
    assert len(samples) == expected


def test_grid_build_update_and_early_stop():
    def density(points):  # a solid ball of radius 0.5, density 100
        return torch.where(points.norm(dim=-1) < 0.5, 100.0, 0.0)

    grid = OccupancyGrid(([-1, -1, -1], [1, 1, 1]), resolution=16)
    assert grid.occupied_fraction() == 1.0  # everything occupied before the first update
    grid.build(density, step_size=0.01, generator=torch.Generator().manual_seed(0))
    fraction = grid.occupied_fraction()
    ball = 4 / 3 * math.pi * 0.5**3 / 8
    assert ball < fraction < 2 * ball  # the ball's cells, plus the partially covered shell

    origins = torch.tensor([[0.0, 0.0, -3.0], [0.0, 3.0, -3.0]])
    directions = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    marched = grid.march(origins, directions, 0.0, 10.0, step_size=0.01)
    assert marched.offsets.tolist()[2] == marched.offsets.tolist()[1]  # the second ray misses the ball
    # along the axis the ball spans exactly 8 cells (z in [-0.5, 0.5]): 100 steps of 0.01
    assert len(marched) == 100
    torch.testing.assert_close(marched.t_starts[[0, -1]], torch.tensor([2.5, 3.49]))
    kept = grid.sample(origins, directions, 0.0, 10.0, step_size=0.01, density_fn=density)
    # each 0.01 step has optical thickness 1, so sample i sees T = e^-i: i = 0..9 keep T >= 1e-4
    assert len(kept) == 10
    torch.testing.assert_close(kept.t_starts, marched.t_starts[:10])

    trained = OccupancyGrid(([-1, -1, -1], [1, 1, 1]), resolution=16)
    for step in range(3):
        trained.update(density, step_size=0.01, step=step, generator=torch.Generator().manual_seed(step))
    assert abs(trained.occupied_fraction() - fraction) < 0.05
    trained.update(lambda p: torch.zeros(p.shape[0]), step_size=0.01, step=1000, decay=0.0)
    assert trained.occupied_fraction() < fraction  # sampled cells decay to empty


def test_bad_input():
    grid = OccupancyGrid(([-1, -1, -1], [1, 1, 1]), resolution=8)
    o, d = torch.zeros(3, 3), torch.ones(3, 3)
    with pytest.raises(ValueError, match=r"argument 'directions' expected shape \[R, 3\] with R=3 "
                                         r"\(from 'origins'\), got \[2, 3\]"):
        grid.march(o, d[:2], 0.0, 1.0, step_size=0.1)
    with pytest.raises(ValueError, match="argument 'directions' expected non-zero vectors"):
        grid.march(o, torch.zeros(3, 3), 0.0, 1.0, step_size=0.1)
    with pytest.raises(ValueError, match="argument 'step_size' expected a positive number, got 0"):
        grid.march(o, d, 0.0, 1.0, step_size=0)
    with pytest.raises(ValueError, match=r"argument 'near' expected shape \[3\], got \[2\]"):
        grid.march(o, d, torch.zeros(2), 1.0, step_size=0.1)
    with pytest.raises(ValueError, match="argument 'origins' expected finite values, got nan"):
        grid.march(torch.full((3, 3), float("nan")), d, 0.0, 1.0, step_size=0.1)
    with pytest.raises(ValueError, match="'resolution' expected a positive multiple of 4, got 10"):
        OccupancyGrid(([-1, -1, -1], [1, 1, 1]), resolution=10)
    with pytest.raises(ValueError, match=r"'aabb' expected max > min on every axis"):
        OccupancyGrid(([1, -1, -1], [1, 1, 1]))


def test_near_and_far_must_be_numbers_a_march_can_start_from():
    """A NaN near was 0 samples from the kernel and 'cannot convert float NaN to integer' from
    the twin; far may be +inf (to where the grid ends), not NaN."""
    grid = OccupancyGrid(([-1] * 3, [1] * 3), resolution=8)
    origins, directions = torch.tensor([[0.0, 0, -3]] * 2), torch.tensor([[0.0, 0, 1]] * 2)
    for impl in ("native", "torch"):
        for near in (math.nan, -math.inf):
            with pytest.raises(ValueError, match=f"OccupancyGrid.march: argument 'near' expected finite values, "
                                                 f"got {near}"):
                grid.march(origins, directions, near, 10.0, step_size=0.01, impl=impl)
        with pytest.raises(ValueError, match="OccupancyGrid.march: argument 'far' expected finite values or \\+inf, "
                                             "got nan"):
            grid.march(origins, directions, 0.0, math.nan, step_size=0.01, impl=impl)
        assert len(grid.march(origins, directions, 0.0, math.inf, step_size=0.01, impl=impl)) > 0


@pytest.mark.parametrize("kwargs, message", [
    # 'too many values'
    ({"aabb": (0, 1, 2)}, "argument 'aabb' expected (min_xyz, max_xyz) with 3 finite numbers each"),
    ({"aabb": ([-math.inf] * 3, [1] * 3)}, "argument 'aabb' expected (min_xyz, max_xyz) with 3 finite numbers each"),
    ({"resolution": 8.0}, "argument 'resolution' expected a positive int, got 8.0"),                 # torch's TypeError
    ({"levels": True}, "argument 'levels' expected a positive int, got True"),
])
def test_grid_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(f"render3d.rays.OccupancyGrid: {message}")):
        OccupancyGrid(**{"aabb": ([-1] * 3, [1] * 3), **kwargs})
