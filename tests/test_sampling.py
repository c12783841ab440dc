"""Sampling along rays: inverse-CDF sampling (native vs twin, and against the CDF computed
independently with numpy), bins, intervals, merging, EG3D smoothing."""

import numpy as np
import pytest
import torch

from conftest import device_params
from render3d.ops.sample_pdf import sample_pdf_op, sample_pdf_torch
from render3d.rays import (
    bin_edges,
    importance_sample,
    intervals_from_points,
    merge_samples,
    smooth_weights_eg3d,
    stratified_points,
)


def random_bins(R, K, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    edges = torch.sort(torch.rand(R, K + 1, generator=g, dtype=dtype) * 5 + 1, dim=-1).values
    weights = torch.rand(R, K, generator=g, dtype=dtype) ** 4  # peaky
    return edges, weights, g


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("K,n", [(1, 1), (8, 16), (64, 32), (5, 200)])
def test_native_matches_twin(device, dtype, K, n):
    edges, weights, g = random_bins(37, K, dtype)
    weights[3] = 0  # all-zero row samples uniformly
    weights[4, 1:] = 0  # all mass in one bin
    u = torch.rand(37, n, generator=g, dtype=dtype)
    u[0, 0], u[1, 0] = 0.0, 1.0
    args = [t.to(device) for t in (edges, weights, u)]
    native = sample_pdf_op(*args, impl="native", fn="test")
    twin = sample_pdf_torch(*args)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(native, twin, rtol=tol, atol=tol)


@pytest.mark.parametrize("impl", ["native", "torch"])
def test_inverts_the_cdf(impl):
    """The CDF of the piecewise-constant density, evaluated independently (numpy) at each
    sample, gives back the level u that produced it."""
    edges, weights, g = random_bins(20, 16)
    weights = weights + 1e-3
    u = torch.rand(20, 50, generator=g, dtype=torch.float64)
    samples = sample_pdf_op(edges, weights, u, impl=impl, fn="test")
    for r in range(20):
        cdf = np.concatenate([[0], np.cumsum(weights[r].numpy())]) / weights[r].sum().item()
        levels = np.interp(samples[r].numpy(), edges[r].numpy(), cdf)
        np.testing.assert_allclose(levels, u[r].numpy(), atol=1e-10)


def test_zero_weights_sample_uniformly_and_single_bin_mass():
    edges = torch.linspace(0, 1, 5, dtype=torch.float64)[None].repeat(2, 1)
    weights = torch.zeros(2, 4, dtype=torch.float64)
    weights[1, 2] = 1.0
    u = torch.linspace(0, 1, 9, dtype=torch.float64)[None].repeat(2, 1)
    out = sample_pdf_op(edges, weights, u, impl="native", fn="test")
    torch.testing.assert_close(out[0], u[0])  # uniform CDF on [0, 1] is the identity
    assert bool(((out[1] >= 0.5) & (out[1] <= 0.75)).all())  # all mass in bin [0.5, 0.75]


@pytest.mark.parametrize("impl", ["native", "torch"])
def test_importance_sample_public(impl):
    edges, weights, g = random_bins(12, 10)
    edges, weights = edges.reshape(2, 6, 11), weights.reshape(2, 6, 10)
    det = importance_sample(edges, weights, 7, deterministic=True, impl=impl)
    assert det.shape == (2, 6, 7)
    assert bool((det[..., 1:] >= det[..., :-1]).all())  # sorted
    torch.testing.assert_close(det[..., 0], edges[..., 0])  # linspace levels start at u = 0
    torch.testing.assert_close(det[..., -1], edges[..., -1])
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = importance_sample(edges, weights, 7, generator=g1, smoothing="eg3d", impl=impl)
    b = importance_sample(edges, weights, 7, generator=g2, smoothing="eg3d", impl=impl)
    torch.testing.assert_close(a, b)
    assert bool((a[..., 1:] >= a[..., :-1]).all())  # stratified levels are sorted too
    assert not a.requires_grad


def test_importance_sample_concentrates_where_weights_are():
    edges = torch.linspace(0, 10, 11, dtype=torch.float64)[None]
    weights = torch.full((1, 10), 1e-3, dtype=torch.float64)
    weights[0, 4] = 10.0
    samples = importance_sample(edges, weights, 1000, generator=torch.Generator().manual_seed(0))
    inside = ((samples >= 4) & (samples <= 5)).double().mean().item()
    expected = (10.0 + 1e-5) / (10.0 + 9e-3 + 10e-5)
    assert inside == pytest.approx(expected, abs=2e-3)


def test_smooth_weights_eg3d_matches_hand_computation():
    w = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.5]])
    # max-pool(2, stride 1, pad 1): [0, 1, 1, 0, .5, .5]; avg-pool(2): [.5, 1, .5, .25, .5]; + 0.01
    torch.testing.assert_close(smooth_weights_eg3d(w), torch.tensor([[0.51, 1.01, 0.51, 0.26, 0.51]]))


def test_bin_edges_and_stratified_points():
    near, far = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])
    lin = bin_edges(near, far, 4)
    torch.testing.assert_close(lin[0], torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0]))
    disp = bin_edges(near, far, 2, spacing="disparity")
    torch.testing.assert_close(disp[0], torch.tensor([1.0, 1 / (1 - 1 / 3), 3.0]))  # 1/t uniform: 1, 2/3, 1/3
    mids = stratified_points(lin, jitter=False)
    torch.testing.assert_close(mids[0], torch.tensor([1.25, 1.75, 2.25, 2.75]))
    jittered = stratified_points(lin, generator=torch.Generator().manual_seed(0))
    assert bool(((jittered >= lin[..., :-1]) & (jittered <= lin[..., 1:])).all())
    with pytest.raises(ValueError, match="spacing='disparity' expected near > 0"):
        bin_edges(torch.zeros(2), far, 4, spacing="disparity")
    with pytest.raises(ValueError, match="argument 'spacing' expected one of 'linear', 'disparity', got 'log'"):
        bin_edges(near, far, 4, spacing="log")


def test_intervals_and_merge():
    points = torch.tensor([[1.0, 2.0, 4.0]])
    t_starts, t_ends = intervals_from_points(points, torch.tensor([0.5]), torch.tensor([5.0]))
    torch.testing.assert_close(t_starts, torch.tensor([[0.5, 1.5, 3.0]]))
    torch.testing.assert_close(t_ends, torch.tensor([[1.5, 3.0, 5.0]]))
    a, b = torch.tensor([[1.0, 3.0]]), torch.tensor([[2.0, 0.5, 4.0]])
    fa, fb = torch.tensor([[[10.0], [30.0]]]), torch.tensor([[[20.0], [5.0], [40.0]]])
    t, f = merge_samples([a, b], [fa, fb])
    torch.testing.assert_close(t, torch.tensor([[0.5, 1.0, 2.0, 3.0, 4.0]]))
    torch.testing.assert_close(f[..., 0], torch.tensor([[5.0, 10.0, 20.0, 30.0, 40.0]]))
    with pytest.raises(ValueError, match="per-sample list 0 expected 2 tensors"):
        merge_samples([a, b], [fa])


def test_bad_input():
    edges, weights, _ = random_bins(4, 5)
    with pytest.raises(ValueError, match=r"argument 'edges' expected shape \[4, 6\], got \[4, 5\]"):
        importance_sample(edges[:, :5], weights, 3)
    bad = weights.clone()
    bad[1, 2] = -1
    with pytest.raises(ValueError, match="argument 'weights' expected finite, non-negative values, got -1.0"):
        importance_sample(edges, bad, 3)
    with pytest.raises(ValueError, match="argument 'n_samples' expected a positive int, got 0"):
        importance_sample(edges, weights, 0)
    with pytest.raises(ValueError, match="argument 'smoothing' expected one of None, 'eg3d'"):
        importance_sample(edges, weights, 3, smoothing="nerf")


@pytest.mark.parametrize("impl", ["native", "torch"])
def test_importance_sampling_survives_weights_whose_sum_overflows(impl):
    """Weights of 1e38 pass the finite check but sum to inf in float32: every sample landed at
    one point (a different one per implementation). Scaled, they are the uniform PDF."""
    edges = torch.linspace(0, 1, 9).expand(2, 9).contiguous()
    huge = importance_sample(edges, torch.full((2, 8), 1e38), 8, deterministic=True, impl=impl)
    torch.testing.assert_close(huge, importance_sample(edges, torch.ones(2, 8), 8, deterministic=True, impl=impl))
    torch.testing.assert_close(huge[0], torch.linspace(0, 1, 8))


def test_importance_sampling_of_no_rays_and_bad_counts():
    assert importance_sample(torch.zeros(0, 9), torch.zeros(0, 8), 16).shape == (0, 16)   # was a reshape error
    with pytest.raises(ValueError, match=r"importance_sample: argument 'weights' expected at least one bin per ray, "
                                         r"got shape \[3, 0\]"):
        importance_sample(torch.zeros(3, 1), torch.rand(3, 0), 8)                        # was an index error
    edges, weights = torch.linspace(0, 1, 5).expand(2, 5), torch.ones(2, 4)
    for bad in (True, 4.0, "4"):                                  # True gave 1 sample, 4.0 torch's TypeError
        with pytest.raises(ValueError, match=f"importance_sample: argument 'n_samples' expected a positive int, "
                                             f"got {bad!r}"):
            importance_sample(edges, weights, bad)
