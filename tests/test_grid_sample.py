"""The twice-differentiable grid sampling of the structured fields (render3d.volume._grid_sample),
against torch's own F.grid_sample: values, first derivatives, and second derivatives where this
torch has them natively (2.13 does, 2.11 does not)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from render3d.volume import _grid_sample
from render3d.volume._grid_sample import _GridSample, grid_sample_torch, native_double_backward

PADDINGS = ["zeros", "border", "reflection"]


def inputs(dims, seed=0, points=40):
    """A small grid of features and sample points inside, on the edge and well outside the
    box (reflection folds them back several times)."""
    g = torch.Generator().manual_seed(seed)
    sizes = (3, 4, 5)[:dims]
    volume = torch.randn(2, 3, *sizes, generator=g, dtype=torch.float64)
    grid = (torch.rand(2, *((1,) * (dims - 1)), points, dims, generator=g, dtype=torch.float64) * 2 - 1) * 2.6
    return volume, grid


def torch_sample(volume, grid, padding):
    return F.grid_sample(volume, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def first_and_second(sample, volume, grid, seed=1, *, second=True):
    """The gradients of a random projection of the output w.r.t. (volume, grid), and the
    gradients of a random projection of those gradients: a path-length-like double backward
    (with `second` False, the first alone)."""
    g = torch.Generator().manual_seed(seed)
    volume, grid = volume.clone().requires_grad_(), grid.clone().requires_grad_()
    out = sample(volume, grid)
    first = torch.autograd.grad((out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum(), (volume, grid),
                                create_graph=second)
    if not second:
        return list(first), []
    penalty = sum((f * torch.randn(f.shape, generator=g, dtype=f.dtype)).sum() for f in first)
    second = torch.autograd.grad(penalty, (volume, grid), allow_unused=True)
    return list(first), [torch.zeros_like(t) if s is None else s for s, t in zip(second, (volume, grid))]


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("padding", PADDINGS)
def test_the_twin_matches_torch_in_values_and_first_derivatives(dims, padding):
    volume, grid = inputs(dims)
    ours = grid_sample_torch(volume, grid, padding)
    theirs = torch_sample(volume, grid, padding)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    assert bool((grid.abs() > 1).any(-1).any()) and bool((grid.abs() < 1).all(-1).any())   # outside and inside
    for a, b in zip(first_and_second(lambda v, g: grid_sample_torch(v, g, padding), volume, grid, second=False)[0],
                    first_and_second(lambda v, g: torch_sample(v, g, padding), volume, grid, second=False)[0]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("padding", PADDINGS)
def test_the_wrapped_op_is_torch_at_first_order_and_the_twin_at_second(dims, padding):
    volume, grid = inputs(dims)
    wrapped = lambda v, g: _GridSample.apply(v, g, padding)  # noqa: E731
    torch.testing.assert_close(wrapped(volume, grid), torch_sample(volume, grid, padding), rtol=0, atol=0)
    plain = [volume.clone().requires_grad_(), grid.clone().requires_grad_()]
    weights = torch.randn(torch_sample(volume, grid, padding).shape, dtype=torch.float64)
    ours = torch.autograd.grad((wrapped(*plain) * weights).sum(), plain)            # aten's backward kernel
    theirs = torch.autograd.grad((torch_sample(*plain, padding) * weights).sum(), plain)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    first, second = first_and_second(wrapped, volume, grid)
    twin_first, twin_second = first_and_second(lambda v, g: grid_sample_torch(v, g, padding), volume, grid)
    for a, b in zip(first + second, twin_first + twin_second):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert float(second[0].abs().sum()) > 0 and float(second[1].abs().sum()) > 0


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("padding", PADDINGS)
def test_second_derivatives_match_torchs_own_where_it_has_them(dims, padding):
    if not native_double_backward(dims + 2):
        pytest.skip(f"torch {torch.__version__} cannot differentiate grid sampling's backward")
    volume, grid = inputs(dims)
    ours = first_and_second(lambda v, g: _GridSample.apply(v, g, padding), volume, grid)
    theirs = first_and_second(lambda v, g: torch_sample(v, g, padding), volume, grid)
    for a, b in zip(ours[0] + ours[1], theirs[0] + theirs[1]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dims", [2, 3])
def test_gradgradcheck_of_the_wrapped_op(dims):
    # points well inside their cells: bilinear sampling has kinks on cell boundaries, where
    # finite differences straddling one would disagree with any derivative
    volume, _ = inputs(dims)
    sizes = torch.tensor(volume.shape[2:][::-1], dtype=torch.float64)
    cells = torch.stack([torch.randint(0, int(s), (2, 6), generator=torch.Generator().manual_seed(k))
                         for k, s in enumerate(sizes)], -1)
    inside = torch.rand(2, 6, dims, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 0.6 + 0.2
    grid = ((cells + inside) * 2 / sizes - 1).reshape(2, *((1,) * (dims - 1)), 6, dims)
    for padding in PADDINGS:
        args = (volume.clone().requires_grad_(), grid.clone().requires_grad_())
        assert torch.autograd.gradgradcheck(lambda v, g: _GridSample.apply(v, g, padding), args)


def test_the_fields_use_the_wrapped_op_only_where_torch_cannot_differentiate_twice(monkeypatch):
    """sample_feature_volume under a path-length-like penalty with torch's double backward
    switched off, as on torch 2.11: the second derivatives still come out, through the twin."""
    from render3d.volume.structured import sample_feature_volume

    twin_calls = []
    monkeypatch.setattr(_grid_sample, "native_double_backward", lambda dims: False)
    monkeypatch.setattr(_grid_sample, "grid_sample_torch",
                        lambda *args: twin_calls.append(1) or grid_sample_torch(*args))
    g = torch.Generator().manual_seed(3)
    volume = torch.randn(1, 4, 3, 4, 5, generator=g, dtype=torch.float64)
    points = torch.rand(1, 30, 3, generator=g, dtype=torch.float64) - 0.5    # bounds (-0.5, 0.5): grid = 2 p
    first, second = first_and_second(lambda v, p: sample_feature_volume(v, p), volume, points)
    assert twin_calls                                    # the double backward ran through the twin
    twin = first_and_second(lambda v, p: grid_sample_torch(v, (2 * p).reshape(1, 1, 1, 30, 3), "zeros")
                            .reshape(1, 4, 30).transpose(1, 2), volume, points)
    for a, b in zip(first + second, twin[0] + twin[1]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    twin_calls.clear()
    with torch.no_grad():
        sample_feature_volume(volume, points)
    sample_feature_volume(volume, points)                # nothing requires grad
    leaves = [volume.clone().requires_grad_(), points.clone().requires_grad_()]
    torch.autograd.grad(sample_feature_volume(*leaves).sum(), leaves)   # first order: aten's backward kernel
    assert twin_calls == []


def test_the_probe_draws_nothing_from_the_global_generator():
    """The probe runs at the first recorded sampling, mid-run: a draw from the global generator
    there shifted every later draw, and a resumed DDP run no longer equalled a straight one."""
    native_double_backward.cache_clear()
    state = torch.random.get_rng_state()
    assert native_double_backward(4) == native_double_backward(5)
    assert torch.equal(torch.random.get_rng_state(), state)
