"""Volume compositing: the native kernel against its PyTorch twin, float64 gradcheck on the
C++ code, nerfacc's reference as an outside oracle, analytic cases, and bad input."""

import math

import pytest
import torch

from conftest import device_params
from render3d.volume import composite, composite_packed
from render3d.ops.composite import composite_torch

DTYPES = [torch.float32, torch.float64]


def make_dense(B, R, S, C, *, device="cpu", dtype=torch.float64, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    densities = torch.rand(B, R, S, generator=g, dtype=dtype) * scale
    values = torch.rand(B, R, S, C, generator=g, dtype=dtype)
    edges = torch.sort(torch.rand(B, R, S + 1, generator=g, dtype=dtype) * 4 + 0.5, dim=-1).values
    tensors = densities, values, edges[..., :-1].contiguous(), edges[..., 1:].contiguous()
    return [t.to(device) for t in tensors]


def grads(out, inputs, seed=1):
    g = torch.Generator().manual_seed(seed)
    loss = 0
    for key in ("values", "depth", "opacity", "weights"):
        if key in out:
            w = torch.rand(out[key].shape, generator=g, dtype=out[key].dtype).to(out[key].device)
            loss = loss + (out[key] * w).sum()
    return torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 5, 7, 3), (1, 3, 1, 4), (2, 4, 16, 1), (1, 6, 9, 512),
                                   (3, 2, 33, 32), (2, 5, 7, 0)])
@pytest.mark.parametrize("with_background", [False, True])
def test_native_matches_twin(device, dtype, shape, with_background):
    # C=0 (weights, depth and opacity alone): the CUDA forward ran one thread per channel, so no thread wrote them
    B, R, S, C = shape
    inputs = [t.requires_grad_() for t in make_dense(B, R, S, C, device=device, dtype=dtype)]
    background = torch.rand(C, dtype=dtype, device=device) if with_background else None
    native = composite(*inputs, background=background, return_weights=True, impl="native")
    twin = composite(*inputs, background=background, return_weights=True, impl="torch")
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    for key in ("values", "depth", "opacity", "weights"):
        torch.testing.assert_close(native[key], twin[key], **tol)
    for g_native, g_twin in zip(grads(native, inputs), grads(twin, inputs)):
        torch.testing.assert_close(g_native, g_twin, **(dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else tol))


@pytest.mark.parametrize("device", device_params())
def test_edge_cases_match_twin(device):
    """Zero density, saturated alpha, a single dense sample, and tiny/huge densities mixed."""
    B, R, S, C = 1, 4, 6, 2
    densities, values, t_starts, t_ends = make_dense(B, R, S, C, device=device)
    densities = densities.clone()
    densities[0, 0] = 0.0                  # empty ray
    densities[0, 1, 0] = 1e6               # saturated first sample
    densities[0, 2] = 0.0
    densities[0, 2, 3] = 50.0              # one dense sample in the middle
    densities[0, 3] = torch.tensor([1e-9, 0, 1e4, 0, 1e-3, 0], dtype=densities.dtype)
    inputs = [t.requires_grad_() for t in (densities, values, t_starts, t_ends)]
    native = composite(*inputs, return_weights=True, impl="native")
    twin = composite(*inputs, return_weights=True, impl="torch")
    for key in ("values", "depth", "opacity", "weights"):
        torch.testing.assert_close(native[key], twin[key], rtol=1e-10, atol=1e-12)
    for a, b in zip(grads(native, inputs), grads(twin, inputs)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    assert native["opacity"][0, 0] == 0
    assert native["depth"][0, 0] == t_ends[0, 0, -1]  # an empty ray's depth is its far end
    torch.testing.assert_close(native["weights"][0, 1], torch.eye(S, dtype=densities.dtype, device=device)[0])
    torch.testing.assert_close(native["depth"][0, 1], 0.5 * (t_starts[0, 1, 0] + t_ends[0, 1, 0]))


@pytest.mark.parametrize("needs", [(True, False, False, False), (True, True, False, False), (False, False, True, True),
                                   (False, True, False, True)])
def test_partial_gradients_match_twin(needs):
    """Only the gradients asked for are computed (the backward skips the rest), and they agree."""
    tensors = make_dense(2, 3, 5, 4)
    results = {}
    for impl in ("native", "torch"):
        inputs = [t.clone().requires_grad_(need) for t, need in zip(tensors, needs)]
        out = composite(*inputs, return_weights=True, impl=impl)
        results[impl] = grads(out, [t for t, need in zip(inputs, needs) if need])
    for a, b in zip(results["native"], results["torch"]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_backward_op_skips_unrequested_gradients():
    densities, values, t_starts, t_ends = (t.reshape(-1, *t.shape[3:]) for t in make_dense(1, 2, 3, 2))
    composite(*make_dense(1, 2, 3, 2), impl="native")
    offsets = torch.arange(3) * 3
    weights = torch.ops.render3d.composite_fwd(densities, values, t_starts, t_ends, offsets)[3]
    g = torch.ones(2, 2, dtype=torch.float64), torch.ones(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    grads_ = torch.ops.render3d.composite_bwd(*g, None, densities, values, t_starts, t_ends, offsets, weights,
                                              False, False)
    assert [tuple(t.shape) for t in grads_] == [(6,), (0,), (0,), (0,)]


@pytest.mark.parametrize("bad", ["sigmas", "values", "t_starts", "t_ends", "weights"])
def test_backward_op_names_a_forward_tensor_of_the_wrong_shape(bad):
    """The backward op took the forward's tensors on trust: one sample short, it read past
    their end. torch.ops callers (the autograd glue passes the forward's own) now get a message."""
    densities, values, t_starts, t_ends = (t.reshape(-1, *t.shape[3:]) for t in make_dense(1, 2, 3, 2))
    composite(*make_dense(1, 2, 3, 2), impl="native")
    offsets = torch.arange(3) * 3
    weights = torch.ops.render3d.composite_fwd(densities, values, t_starts, t_ends, offsets)[3]
    forward = {"sigmas": densities, "values": values, "t_starts": t_starts, "t_ends": t_ends, "weights": weights}
    forward[bad] = forward[bad][:-1].contiguous() if bad != "sigmas" else forward[bad].reshape(2, 3)
    g = torch.ones(2, 2, dtype=torch.float64), torch.ones(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=f"render3d::composite_bwd: argument '{bad}' expected shape"):
        torch.ops.render3d.composite_bwd(*g, None, forward["sigmas"], forward["values"], forward["t_starts"],
                                         forward["t_ends"], offsets, forward["weights"], True, True)


def test_gradcheck_cpp_float64():
    """float64 gradcheck of the registered op (the C++ forward and backward), every output."""
    densities, values, t_starts, t_ends = make_dense(1, 3, 5, 2)
    composite(densities, values, t_starts, t_ends, impl="native")
    offsets = torch.arange(4) * 5
    inputs = [t.reshape(-1, *t.shape[3:]).clone().requires_grad_() for t in (densities, values, t_starts, t_ends)]
    op = lambda s, v, a, b: torch.ops.render3d.composite_fwd(s, v, a, b, offsets)  # noqa: E731
    assert torch.autograd.gradcheck(op, inputs)


@pytest.mark.parametrize("return_weights", [False, True])
def test_gradcheck_public_float64(return_weights):
    inputs = [t.requires_grad_() for t in make_dense(2, 2, 4, 3)]
    background = torch.rand(3, dtype=torch.float64, requires_grad=True)

    def f(*args):
        out = composite(*args[:4], background=args[4], return_weights=return_weights, impl="native")
        return tuple(out.values())

    assert torch.autograd.gradcheck(f, (*inputs, background))


def test_second_derivatives_float64():
    """Gradient penalties differentiate the gradient: the native op's backward under
    create_graph goes through the twin, so second derivatives are right (gradgradcheck) and
    equal the twin's."""
    inputs = [t.requires_grad_() for t in make_dense(1, 2, 4, 2)]

    def f(*args):
        return tuple(composite(*args, return_weights=True, impl="native").values())

    assert torch.autograd.gradgradcheck(f, inputs)
    second = []
    for impl in ("native", "torch"):
        out = composite(*inputs, impl=impl)
        first = torch.autograd.grad(out["values"].square().sum() + out["depth"].sum(), inputs, create_graph=True)
        second.append(torch.autograd.grad(sum(g.square().sum() for g in first), inputs))
    for a, b in zip(*second):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_opcheck_registration():
    densities, values, t_starts, t_ends = make_dense(1, 3, 4, 2, dtype=torch.float32)
    composite(densities, values, t_starts, t_ends, impl="native")
    args = (densities.reshape(-1), values.reshape(-1, 2), t_starts.reshape(-1), t_ends.reshape(-1), torch.arange(4) * 4)
    args = tuple(a.requires_grad_() if a.is_floating_point() else a for a in args)
    torch.library.opcheck(torch.ops.render3d.composite_fwd.default, args)


# --- nerfacc as an outside oracle -------------------------------------------------------------

def test_against_nerfacc_batched_reference():
    nerfacc = pytest.importorskip("nerfacc")
    densities, values, t_starts, t_ends = [t.squeeze(0) for t in make_dense(1, 64, 24, 3, dtype=torch.float32)]
    inputs = [t.clone().requires_grad_() for t in (densities, values, t_starts, t_ends)]
    ref_inputs = [t.clone().requires_grad_() for t in (densities, values, t_starts, t_ends)]

    weights_ref, _, _ = nerfacc.render_weight_from_density(ref_inputs[2], ref_inputs[3], ref_inputs[0])
    color_ref = nerfacc.accumulate_along_rays(weights_ref, ref_inputs[1])
    opacity_ref = nerfacc.accumulate_along_rays(weights_ref, None)[..., 0]
    out = composite(*[t[None] for t in inputs], return_weights=True, impl="native")

    torch.testing.assert_close(out["weights"][0], weights_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["values"][0], color_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["opacity"][0], opacity_ref, rtol=1e-5, atol=1e-6)
    loss = lambda c, o: (c * torch.linspace(-1, 1, 3)).sum() + (o**2).sum()  # noqa: E731
    ours = torch.autograd.grad(loss(out["values"][0], out["opacity"][0]), inputs[:2])
    theirs = torch.autograd.grad(loss(color_ref, opacity_ref), ref_inputs[:2])
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("impl", ["native", "torch"])
def test_nerfacc_hand_vectors_packed(impl):
    """nerfacc's own test vectors: two rays [0, 1, 1, 1, 1], unit intervals."""
    sigmas = torch.tensor([0.4, 0.8, 0.1, 0.8, 0.1], dtype=torch.float64, requires_grad=True)
    t_starts = torch.tensor([0.0, 0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    out = composite_packed(
        sigmas, torch.ones(5, 1, dtype=torch.float64), t_starts, t_starts + 1,
        ray_ids=torch.tensor([0, 1, 1, 1, 1]), n_rays=2, return_weights=True, impl=impl,
    )
    torch.testing.assert_close(
        out["weights"], torch.tensor([0.3297, 0.5507, 0.0428, 0.2239, 0.0174], dtype=torch.float64), atol=1e-4, rtol=0
    )
    (grad,) = torch.autograd.grad(out["weights"].sum(), sigmas)
    torch.testing.assert_close(
        grad, torch.tensor([0.6703, 0.1653, 0.1653, 0.1653, 0.1653], dtype=torch.float64), atol=1e-4, rtol=0
    )


# --- analytic cases -------------------------------------------------------------------------

@pytest.mark.parametrize("impl", ["native", "torch"])
@pytest.mark.parametrize("n_samples", [1, 7, 64])
def test_uniform_medium_transmittance(impl, n_samples):
    """Transmittance through a uniform medium of density sigma and length d is exp(-sigma d),
    whatever the sampling; the expected depth has a closed form too."""
    sigma, near, far = 0.7, 1.0, 3.5
    edges = torch.linspace(near, far, n_samples + 1, dtype=torch.float64)
    densities = torch.full((1, 1, n_samples), sigma, dtype=torch.float64)
    out = composite(densities, torch.ones(1, 1, n_samples, 1, dtype=torch.float64), edges[:-1][None, None],
                    edges[1:][None, None], background=torch.tensor([0.25], dtype=torch.float64), impl=impl)
    transmittance = math.exp(-sigma * (far - near))
    assert out["opacity"].item() == pytest.approx(1 - transmittance, rel=1e-12)
    assert out["values"].item() == pytest.approx(1 - transmittance + 0.25 * transmittance, rel=1e-12)
    if n_samples == 64:  # midpoint quadrature of the depth integral converges at O(h^2)
        d = far - near
        exact = near + (1 / sigma - (d * transmittance) / (1 - transmittance))
        assert out["depth"].item() == pytest.approx(exact, rel=1e-4)


@pytest.mark.parametrize("impl", ["native", "torch"])
def test_packed_equals_dense_and_handles_empty_rays(impl):
    densities, values, t_starts, t_ends = make_dense(1, 5, 6, 3)
    counts = torch.tensor([6, 0, 3, 0, 6])  # rays 1 and 3 have no samples
    keep = torch.arange(6)[None, :] < counts[:, None]
    dense = composite(densities, values, t_starts, t_ends, impl=impl)
    packed = composite_packed(
        densities[0][keep], values[0][keep], t_starts[0][keep], t_ends[0][keep],
        offsets=torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)]), background=0.5, impl=impl,
    )
    for r in (0, 4):
        torch.testing.assert_close(packed["values"][r], dense["values"][0, r] + 0.5 * (1 - dense["opacity"][0, r]))
        torch.testing.assert_close(packed["depth"][r], dense["depth"][0, r])
    for r in (1, 3):
        assert packed["opacity"][r] == 0 and packed["depth"][r] == 0
        torch.testing.assert_close(packed["values"][r], torch.full((3,), 0.5, dtype=torch.float64))


def test_twin_signature_matches_op():
    densities, values, t_starts, t_ends = make_dense(1, 2, 3, 2)
    offsets = torch.arange(3) * 3
    flat = (densities.reshape(-1), values.reshape(-1, 2), t_starts.reshape(-1), t_ends.reshape(-1), offsets)
    composite(densities, values, t_starts, t_ends, impl="native")
    native = torch.ops.render3d.composite_fwd(*flat)
    twin = composite_torch(*flat)
    assert [t.shape for t in native] == [t.shape for t in twin]


# --- bad input ------------------------------------------------------------------------------

def test_bad_input_messages():
    densities, values, t_starts, t_ends = make_dense(1, 2, 3, 2)
    with pytest.raises(ValueError, match=r"composite: argument 'values' expected shape \[B, R, S, C\]"
                                         r".*got \[1, 2, 4, 2\]"):
        composite(densities, torch.zeros(1, 2, 4, 2, dtype=torch.float64), t_starts, t_ends)
    with pytest.raises(ValueError, match=r"argument 'densities' expected shape \[B, R, S\], got \[2, 3\]"):
        composite(densities[0], values, t_starts, t_ends)
    with pytest.raises(ValueError, match=r"argument 't_ends' expected dtype float64 \(as densities\), got float32"):
        composite(densities, values, t_starts, t_ends.float())
    with pytest.raises(ValueError, match=r"argument 'densities' expected dtype float32 or float64, got int64"):
        composite(densities.long(), values, t_starts, t_ends)
    with pytest.raises(ValueError, match=r"argument 'densities' expected device cpu|argument 'values' expected device"):
        composite(densities, values.to("meta"), t_starts, t_ends)
    nan = densities.clone()
    nan[0, 1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"argument 'densities' expected finite, non-negative values, "
                                         r"got nan at index \(0, 1, 2\)"):
        composite(nan, values, t_starts, t_ends)
    with pytest.raises(ValueError, match=r"non-negative values, got -1.0"):
        composite(-torch.ones_like(densities), values, t_starts, t_ends)
    with pytest.raises(ValueError, match=r"argument 'impl' expected one of 'auto', 'native', 'torch', got 'cuda'"):
        composite(densities, values, t_starts, t_ends, impl="cuda")
    with pytest.raises(ValueError, match=r"argument 'background' expected a float, \[C=2\]"):
        composite(densities, values, t_starts, t_ends, background=torch.zeros(3))
    with pytest.raises(ValueError, match=r"expected at least one sample per ray"):
        composite(densities[..., :0], values[..., :0, :], t_starts[..., :0], t_ends[..., :0])


def test_bad_packed_input_messages():
    s = torch.rand(5, dtype=torch.float64)
    v = torch.rand(5, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="give exactly one of 'offsets' or 'ray_ids', got neither"):
        composite_packed(s, v, s, s + 1)
    with pytest.raises(ValueError, match=r"'offsets' expected non-decreasing values from 0 to N=5, "
                                         r"got first=0, last=4"):
        composite_packed(s, v, s, s + 1, offsets=torch.tensor([0, 2, 4]))
    with pytest.raises(ValueError, match=r"'ray_ids' expected non-decreasing ids"):
        composite_packed(s, v, s, s + 1, ray_ids=torch.tensor([0, 1, 0, 1, 1]), n_rays=2)
    with pytest.raises(ValueError, match=r"'n_rays' is required"):
        composite_packed(s, v, s, s + 1, ray_ids=torch.tensor([0, 0, 0, 1, 1]))


@pytest.mark.parametrize("impl", ["native", "torch"])
def test_intervals_that_are_not_intervals_are_named(impl):
    """t_ends < t_starts gave negative opacity and colours; a NaN t a NaN pixel. Checked with
    the densities (check_values); any C, 0 too, composites (C=0 was a reshape error)."""
    densities, values = torch.rand(1, 2, 4) * 5, torch.rand(1, 2, 4, 3)
    edges = torch.linspace(0, 1, 5).expand(1, 2, 5)
    with pytest.raises(ValueError, match=r"composite: argument 't_ends' expected values >= t_starts, got 0.0 < 0.25 "
                                         r"at index \(0, 0, 0\)"):
        composite(densities, values, edges[..., 1:], edges[..., :-1], impl=impl)
    starts = edges[..., :-1].clone()
    starts[0, 1, 2] = math.nan
    with pytest.raises(ValueError, match=r"composite: argument 't_starts' expected finite values, got nan at index "
                                         r"\(0, 1, 2\)"):
        composite(densities, values, starts, edges[..., 1:], impl=impl)
    with pytest.raises(ValueError, match=r"composite_packed: argument 't_ends' expected values >= t_starts"):
        composite_packed(densities.reshape(-1), values.reshape(-1, 3), edges[..., 1:].reshape(-1),
                         edges[..., :-1].reshape(-1), ray_ids=torch.arange(2).repeat_interleave(4), n_rays=2, impl=impl)
    assert composite(densities, values[..., :0], edges[..., :-1], edges[..., 1:],
                     impl=impl)["values"].shape == (1, 2, 0)
