"""VolumeGAN and the StyleGAN2 discriminator at tiny sizes: output shapes, depth inside each
ray's sampling range, gradients reaching every parameter, and a loss that falls when one
batch is trained on."""

import math

import pytest
import torch
import torch.nn.functional as F
from _gan import SIZE, tiny_generator

from render3d.cameras import sample_yaw_pitch
from render3d.discriminators import StyleGAN2Discriminator, StyleGAN2DiscriminatorConfig
from render3d.generators import VolumeGAN, VolumeGANConfig
from render3d.generators.volumegan import FeatureVolume
from render3d.generators.sampling import latents_from_seeds, styles_from_seeds, view_cameras
from render3d.losses import ns_discriminator_loss, ns_generator_loss, opacity_entropy, r1_penalty
from render3d.rays import ray_aabb
from render3d.registry import GENERATORS


def make_generator(**overrides) -> VolumeGAN:
    torch.manual_seed(0)
    return GENERATORS.build("volumegan", tiny_generator(**overrides))


def make_discriminator(**overrides) -> StyleGAN2Discriminator:
    torch.manual_seed(1)
    config = {"resolution": SIZE, "channel_base": 128, "channel_max": 16, "mbstd_group": 2, **overrides}
    return StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig(**config))


def cameras(n: int = 2, seed: int = 0):
    return sample_yaw_pitch(n, yaw_spread=1.0, pitch_spread=0.2, radius=2.4, width=SIZE, height=SIZE,
                            fov_degrees=32.0, generator=torch.Generator().manual_seed(seed))


def test_synthesis_shapes_and_interface():
    G = make_generator()
    ws = G.mapping(torch.randn(2, 8))
    assert ws.shape == (2, G.num_ws, 16) and G.num_ws == 2 + 2 * 2   # MLP layers + 2 per renderer resolution
    out = G.synthesis(ws, cameras())
    assert out["image"].shape == (2, 3, SIZE, SIZE)
    assert out["image_raw"].shape == (2, 3, 8, 8) and out["features"].shape == (2, 8, 8, 8)
    assert out["depth"].shape == out["alpha"].shape == (2, 1, 8, 8)
    assert G.synthesis(ws, cameras(), resolution=8)["image"].shape == (2, 3, 8, 8)
    points = torch.rand(2, 5, 3) - 0.5
    assert G.density(points, ws).shape == (2, 5) and bool((G.density(points, ws) >= 0).all())
    rgb = G.color(points, ws)
    assert rgb.shape == (2, 5, 3) and bool(((rgb >= 0) & (rgb <= 1)).all())


def test_density_is_what_the_renderer_composites():
    """`G.density` (mesh extraction, metrics) runs the point MLP and the density head alone; it
    is the density of the field that `synthesis` renders, bit for bit."""
    G = make_generator()
    ws = G.mapping(torch.randn(2, 8))
    points = torch.rand(2, 7, 3) - 0.5
    with torch.no_grad():
        sigma, _ = G._field(ws)(points, torch.zeros_like(points))
        assert torch.equal(G.density(points, ws), sigma) and bool((sigma > 0).any())


VIEW = {"radius": 2.4, "fov_degrees": 32.0, "pitch": math.pi / 2 - 0.1, "pivot": [0.0, 0.0, 0.0]}


def test_styles_from_seeds_condition_on_the_front_view():
    """Seeds -> ws, as every sampler does it: z from the seed alone, and for a camera-
    conditioned generator (c_dim=25) the front view's EG3D label, or the labels given."""
    G = make_generator()
    z = latents_from_seeds([3, 4], G.z_dim)
    torch.testing.assert_close(styles_from_seeds(G, [3, 4], truncation=0.5), G.mapping(z, truncation=0.5))
    C = make_generator(c_dim=25)
    assert G.c_dim == 0 and C.c_dim == 25
    front = view_cameras(VIEW, 4, SIZE)[0].to_eg3d_label()
    ws = styles_from_seeds(C, [3, 4], VIEW)
    torch.testing.assert_close(ws, C.mapping(z, front.expand(2, 25)))
    torch.testing.assert_close(ws[1:], styles_from_seeds(C, [4], VIEW))      # a seed is the same subject alone
    side = view_cameras(VIEW, 4, SIZE)[1].to_eg3d_label().expand(2, 25)
    torch.testing.assert_close(styles_from_seeds(C, [3, 4], labels=side), C.mapping(z, side))
    assert (styles_from_seeds(C, [3, 4], labels=side) - ws).abs().max() > 1e-4    # the label does matter
    with pytest.raises(ValueError, match=r"styles_from_seeds: argument 'view' expected the generator's metadata "
                                         r"view \(it is camera-conditioned, c_dim=25\), got None"):
        styles_from_seeds(C, [3])
    with pytest.raises(ValueError, match=r"styles_from_seeds: argument 'truncation' expected a finite number, "
                                         r"got nan"):
        styles_from_seeds(G, [3], truncation=float("nan"))   # NaN styles, then NaN densities deep in a render
    with pytest.raises(ValueError, match=r"styles_from_seeds: argument 'seeds' expected at least one seed, got none"):
        styles_from_seeds(G, [])                              # was torch.stack's "non-empty TensorList"
    for seed in (-1, 2 ** 64):                                # was torch's "Overflow when unpacking long long"
        with pytest.raises(ValueError, match=f"latents_from_seeds: argument 'seeds' expected ints in 0..2\\*\\*64-1, "
                                             f"got {seed}"):
            styles_from_seeds(G, [0, seed])
    assert torch.equal(latents_from_seeds([2 ** 64 - 1], 4), latents_from_seeds([2 ** 64 - 1], 4))
    with pytest.raises(ValueError, match="latents_from_seeds: argument 'seeds' expected a list of ints, got '12'"):
        latents_from_seeds("12", 4)                               # was the seeds 1 and 2
    for seed in (1.7, True):                                      # 1.7 was seed 1
        with pytest.raises(ValueError, match=f"expected ints in 0..2\\*\\*64-1, got {seed!r}"):
            latents_from_seeds([seed], 4)
    with pytest.raises(ValueError, match="styles_from_seeds: argument 'truncation' expected a finite number, got 'a'"):
        styles_from_seeds(G, [3], truncation="a")


def test_nonfinite_density_finds_the_first_subject_whose_centre_is_not_finite():
    """The cheap check the command line and the viewer run before a render: one density per
    subject, at the view's pivot, in chunks."""
    from render3d.generators.sampling import nonfinite_density

    G = make_generator()
    ws = styles_from_seeds(G, list(range(5)))
    assert nonfinite_density(G, ws, VIEW) is None
    pivot = torch.tensor([VIEW["pivot"]])
    for chunk in (1, 2, 16):
        broken = ws.clone()
        broken[3] = float("nan")                            # a subject past the first chunk
        index, value = nonfinite_density(G, broken, VIEW, chunk=chunk)
        assert index == 3 and math.isnan(value)
        assert math.isnan(G.density(pivot[None], broken[3:4]).item())     # what it probes
    with torch.no_grad():
        G.density_head.weight.fill_(float("inf"))        # every subject, as a diverged run
    assert nonfinite_density(G, ws, VIEW)[0] == 0
    with pytest.raises(ValueError, match="nonfinite_density: argument 'view' expected a generator's metadata view"):
        nonfinite_density(G, ws, {"radius": 2.0})


def test_a_view_that_is_not_one_is_named():
    """view_cameras({}) was KeyError 'radius'; a pitch of 10 was 'math domain error'."""
    from render3d.generators.sampling import orbit_frames, view_framing

    with pytest.raises(ValueError, match=r"view_cameras: argument 'view' expected a generator's metadata view with "
                                         r"radius, pitch, fov_degrees, pivot, got \{\}, without radius, pitch, "
                                         r"fov_degrees, pivot"):
        view_cameras({}, 2, 8)
    for bad in ({"pitch": 10}, {"fov_degrees": 0}, {"pivot": [0, 0]}, {"pivot": [0, 0, math.nan]}):
        with pytest.raises(ValueError, match=r"view_framing: argument 'view' expected a pitch in \(0, pi\), "
                                             r"fov_degrees in \(0, 180\) and a pivot of 3 finite numbers"):
            view_framing({**VIEW, **bad})
    with pytest.raises(ValueError, match=r"view_cameras: argument 'view\['radius'\]' expected a positive number"):
        view_cameras({**VIEW, "radius": -1}, 2, 8)
    G = make_generator()
    with pytest.raises(ValueError, match="orbit_frames: argument 'ws' expected at least one subject, got none"):
        orbit_frames(G, G.mapping(torch.randn(0, G.z_dim)), VIEW, 2, SIZE)


def test_views_and_orbits_render_several_views_a_call_as_one_at_a_time():
    """render_views, orbit_frames and the colour baking render up to VIEWS_PER_CALL views of a
    subject in one synthesis call: the pictures are those of one view at a time, up to float
    rounding, over more views than one call takes (so the last call is a short one)."""
    from render3d.cameras import spiral
    from render3d.generators.sampling import VIEWS_PER_CALL, orbit_frames, render_views, synthesize_views

    G = make_generator().eval()
    ws = G.mapping(torch.randn(2, G.z_dim))
    n = VIEWS_PER_CALL + 3
    views = view_cameras(VIEW, n, SIZE)
    with torch.no_grad():
        one = [G.synthesis(ws[s:s + 1], views[v], noise_mode="const") for s in range(2) for v in range(n)]
        calls = list(synthesize_views(G, ws[1:], views))
        rendered = render_views(G, ws, views)
        frames = orbit_frames(G, ws, VIEW, n, SIZE)
    assert [len(c["image"]) for c in calls] == [VIEWS_PER_CALL, 3]
    for key in ("image", "depth", "alpha"):
        expected = torch.cat([o[key] for o in one]).reshape(2, n, *one[0][key].shape[1:])
        if key == "image":
            expected = ((expected + 1) / 2).clamp(0, 1)
        torch.testing.assert_close(rendered[key], expected, rtol=1e-5, atol=1e-5)
    # the orbit's frames: each subject's tile is its picture from that frame's camera
    orbit = spiral(n, radius=VIEW["radius"], width=SIZE, height=SIZE, pitch_range=0.15, pitch_cycles=1,
                   pitch_mean=VIEW["pitch"], pivot=tuple(VIEW["pivot"]), fov_degrees=VIEW["fov_degrees"])
    with torch.no_grad():
        for i in (0, VIEWS_PER_CALL, n - 1):
            for s in range(2):
                expected = ((G.synthesis(ws[s:s + 1], orbit[i], noise_mode="const")["image"][0] + 1) / 2).clamp(0, 1)
                torch.testing.assert_close(frames[i, :, :, s * SIZE:(s + 1) * SIZE], expected, rtol=1e-5, atol=1e-5)


def test_synthesis_rejects_bad_arguments():
    G = make_generator()
    ws = G.mapping(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"VolumeGAN.synthesis: argument 'ws' expected shape \[B, 6, 16\], "
                                         r"got \[2, 3, 16\]"):
        G.synthesis(ws[:, :3], cameras())
    with pytest.raises(ValueError, match="argument 'cameras' expected 2 cameras"):
        G.synthesis(ws, cameras(3))
    with pytest.raises(ValueError, match=r"argument 'resolution' expected one of 8, 16, got 32"):
        G.synthesis(ws, cameras(), resolution=32)


def test_a_growing_generator_shows_its_stage_up_sampled_unless_asked_for_a_resolution():
    """set_stage (progressive growing, as Hammer's lod): the default picture is the stage's,
    nearest up-sampled to the largest size; an explicit resolution is as before; the largest
    resolution with blend 1 clears the stage."""
    G = make_generator().eval()
    ws, views = G.mapping(torch.randn(2, 8)), cameras()
    full = G.synthesis(ws, views, noise_mode="const")["image"]
    for stage in ((8, 1.0), (16, 0.25)):
        G.set_stage(*stage)
        assert G.stage == stage
        staged = G.synthesis(ws, views, noise_mode="const")
        own = G.synthesis(ws, views, stage[0], blend=stage[1], noise_mode="const")["image"]
        assert torch.equal(staged["image"], F.interpolate(own, size=SIZE, mode="nearest"))
        assert not torch.allclose(staged["image"], full, atol=1e-3)
        assert torch.equal(G.synthesis(ws, views, 16, noise_mode="const")["image"], full)
        assert torch.equal(staged["depth"], G.synthesis(ws, views, 16)["depth"])   # the 3D part does not grow
    G.set_stage(16, 1.0)
    assert G.stage is None and torch.equal(G.synthesis(ws, views, noise_mode="const")["image"], full)
    with pytest.raises(ValueError, match=r"VolumeGAN.set_stage: argument 'resolution' expected one of 8, 16, got 32"):
        G.set_stage(32)
    with pytest.raises(ValueError, match=r"set_stage: argument 'blend' expected a number in \[0, 1\], got 1.5"):
        G.set_stage(16, 1.5)


def test_depth_lies_inside_each_rays_sampling_range():
    G = make_generator().eval()
    cams = cameras(3, seed=4)
    with torch.no_grad():
        depth = G(torch.randn(3, 8), cams)["depth"].reshape(3, -1)
    origins, directions = cams.resized(8, 8).generate_rays()
    near, far, hit = ray_aabb(origins, directions, *G.bbox, near=1.0, far=4.0)
    assert bool(hit.any())
    assert bool((depth >= near - 1e-5).all() & (depth <= far + 1e-5).all())
    inside = depth[hit]
    assert bool((inside >= 1.4).all() & (inside <= 3.4).all())   # the box seen from radius 2.4


def test_feature_volume_bounds_map_world_points_to_the_volume():
    """A density bump written into one corner cell of the feature volume shows up at that
    corner of the world box and not at the opposite one."""
    G = make_generator()
    ws = G.mapping(torch.randn(1, 8))
    lo, hi = torch.tensor(G.bbox[0]), torch.tensor(G.bbox[1])
    corner = lo + (hi - lo) * 0.03
    opposite = hi - (hi - lo) * 0.03
    points = torch.stack([corner, opposite])[None]
    base = G.density(points, ws)
    with torch.no_grad():
        volume = G.volume(ws[:, 0])
        bumped = volume.clone()
        bumped[:, :, 0, 0, 0] += 50.0                         # cell (x, y, z) = (0, 0, 0): the min corner
    raw_base, _ = G._point_features(volume, points, ws)
    raw_bumped, _ = G._point_features(bumped, points, ws)
    assert (raw_bumped[0, 0] - raw_base[0, 0]).abs() > 1e-3
    torch.testing.assert_close(raw_bumped[0, 1], raw_base[0, 1])
    assert base.shape == (1, 2)


def test_feature_volume_computes_its_stages_written_out():
    """Each 3D stage (nearest x2 up-sampling but the first, 3x3x3 convolution, instance norm
    whose scale and shift come from w, leaky ReLU times sqrt 2) written out step by step, in
    float64: the module folds the gain into the scale and shift, which must not change it."""
    torch.manual_seed(0)
    volume = FeatureVolume(6, (8, 5, 3)).double()
    with torch.no_grad():
        volume.style.bias.copy_(torch.randn_like(volume.style.bias))
    w = torch.randn(2, 6, dtype=torch.float64)
    scales_shifts = volume.style(w).split([16, 10, 6], dim=1)
    x = volume.const.expand(2, -1, -1, -1, -1)
    for stage, (weight, ss) in enumerate(zip(volume.weights, scales_shifts)):
        x = F.interpolate(x, scale_factor=2, mode="nearest") if stage else x
        x = F.conv3d(x, weight / math.sqrt(weight.shape[1] * 27), padding=1)
        mean, var = x.mean(dim=(2, 3, 4), keepdim=True), x.var(dim=(2, 3, 4), unbiased=False, keepdim=True)
        scale, shift = ss[:, :, None, None, None].chunk(2, dim=1)
        x = F.leaky_relu((x - mean) / (var + 1e-5).sqrt() * (1 + scale) + shift, 0.2) * math.sqrt(2)
    torch.testing.assert_close(volume(w), x, rtol=1e-12, atol=1e-12)
    assert x.shape == (2, 3, 16, 16, 16)


def test_gradients_reach_every_parameter():
    G, D = make_generator(), make_discriminator(c_dim=25)
    cams = cameras()
    out = G(torch.randn(2, 8), cams)
    loss = ns_generator_loss(D(out["image"], cams.to_eg3d_label())).mean() + out["image_raw"].mean()
    reals = torch.randn(2, 3, SIZE, SIZE, requires_grad=True)
    scores = D(reals, cams.to_eg3d_label())
    loss = loss + ns_discriminator_loss(scores, scores.detach()).mean() + r1_penalty(scores, reals).mean()
    # the from-RGB layers of lower resolutions work while progressive growing runs there
    loss = loss + D(reals[..., ::2, ::2], cams.to_eg3d_label()).mean()
    loss.backward()
    for net in (G, D):
        missing = [name for name, p in net.named_parameters()
                   if p.grad is None or not bool(p.grad.abs().sum() > 0)]
        assert missing == [], f"{type(net).__name__}: no gradient reaches {missing}"


def test_discriminator_label_noise_is_eg3ds_and_only_in_training():
    """c_noise: labels + N(0, 1) * their batch std * c_noise, drawn from torch's RNG, in
    training only; the caller's labels are left alone."""
    D = make_discriminator(c_dim=25, c_noise=0.5)
    images, labels = torch.randn(4, 3, SIZE, SIZE), cameras(4).to_eg3d_label()
    kept = labels.clone()
    torch.manual_seed(7)
    noisy = D.train()(images, labels)
    torch.manual_seed(7)
    expected = labels + torch.randn_like(labels) * labels.std(0) * 0.5
    D.eval()
    torch.testing.assert_close(noisy, D(images, expected))
    assert torch.equal(labels, kept)
    assert not torch.allclose(noisy, D(images, labels), atol=1e-4)       # the noise does matter
    torch.testing.assert_close(D(images, labels), make_discriminator(c_dim=25).eval()(images, labels))
    with pytest.raises(ValueError, match=r"argument 'c_noise' expected a number >= 0, got -1"):
        make_discriminator(c_dim=25, c_noise=-1.0)


def test_progressive_discriminator_accepts_each_resolution_and_fades():
    D = make_discriminator()
    x = torch.randn(2, 3, SIZE, SIZE)
    assert D(x).shape == (2,) and D(x[..., ::2, ::2]).shape == (2,)
    faded, full = D(x, blend=0.0), D(x, blend=1.0)
    assert not torch.allclose(faded, full)
    with pytest.raises(ValueError, match=r"expected a square size in \[16, 8\]"):
        D(torch.randn(2, 3, 12, 12))


def test_losses_fall_when_training_on_one_batch():
    """D learns to tell one fixed real batch from one fixed fake batch; then G, against that
    frozen D, learns to raise the fakes' scores."""
    G, D = make_generator(), make_discriminator()
    cams, z = cameras(4, seed=2), torch.randn(4, 8)
    reals = torch.rand(4, 3, SIZE, SIZE) * 2 - 1
    with torch.no_grad():
        fakes = G(z, cams, noise_mode="const")["image"]
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.0, 0.99))
    d_losses = []
    for _ in range(40):
        loss = ns_discriminator_loss(D(reals), D(fakes)).mean()
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
        d_losses.append(loss.item())
    assert d_losses[-1] < 0.5 * d_losses[0]
    D.requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.0, 0.99))
    g_losses = []
    for _ in range(40):
        loss = ns_generator_loss(D(G(z, cams, noise_mode="const")["image"])).mean()
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        g_losses.append(loss.item())
    assert g_losses[-1] < 0.7 * g_losses[0]


def test_opacity_entropy_values_and_direction():
    """ln 2 for half-transparent pixels, ~0 for empty or opaque ones; its gradient moves
    opacity away from 1/2; and minimizing it through the generator makes solid pixels."""
    alpha = torch.tensor([[0.5, 0.5], [0.0, 1.0], [0.2, 0.9]]).reshape(3, 1, 1, 2).requires_grad_()
    entropy = opacity_entropy(alpha)
    torch.testing.assert_close(entropy[:2], torch.tensor([0.6931472, 0.0]), atol=2e-3, rtol=0)
    expected = -(0.2 * math.log(0.2) + 0.8 * math.log(0.8) + 0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / 2
    torch.testing.assert_close(entropy[2], torch.tensor(expected))
    (grad,) = torch.autograd.grad(entropy.sum(), alpha)
    assert grad[2, 0, 0, 0] > 0 and grad[2, 0, 0, 1] < 0  # descent: 0.2 -> 0, 0.9 -> 1
    G = make_generator(use_noise=False, jitter=False)
    cams, z = cameras(2, seed=3), torch.randn(2, 8)
    opt = torch.optim.Adam(G.parameters(), lr=5e-3)
    values = []
    for _ in range(30):
        loss = opacity_entropy(G(z, cams)["alpha"]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(loss.item())
    assert values[-1] < 0.5 * values[0]


@pytest.mark.parametrize("key, value, expected", [
    ("opacity_entropy", -1.0, "expected a non-negative number, got -1.0"),
    ("r1_gamma", -0.5, "expected a non-negative number, got -0.5"),
    ("pl_interval", 0, "expected a positive int, got 0"),
    ("style_mixing", 1.5, r"expected a number in \[0, 1\], got 1.5"),
])
def test_loss_config_rejects_bad_values(key, value, expected):
    from render3d.losses import StyleGAN2LossConfig

    with pytest.raises(ValueError, match=f"StyleGAN2LossConfig: argument '{key}' {expected}"):
        StyleGAN2LossConfig(**{key: value})


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="argument 'neural_resolution' expected a power of two >= 4, got 12"):
        VolumeGANConfig(neural_resolution=12)
    with pytest.raises(ValueError, match="argument 'density_activation' expected one of"):
        VolumeGANConfig(density_activation="sigmoid")
    with pytest.raises(ValueError, match="argument 'pe_frequencies' expected a non-negative int, got -1"):
        VolumeGANConfig(pe_frequencies=-1)                 # failed in torch.arange at the first render
    with pytest.raises(ValueError, match=r"argument 'bounds' expected \[min corner, max corner\] with min < max on "
                                         r"every axis, got \[\[0, 0, 0\], \[1, 1, 0\]\]"):
        VolumeGANConfig(bounds=((0, 0, 0), (1, 1, 0)))     # failed in ray_aabb at the first render
    # each of these built a network that failed on its first step (0 channels, ZeroDivisionError)
    for key, value, expected in (("feature_dim", 0, "expected a positive int, got 0"),
                                 ("renderer_fmap_max", 0, "expected a positive int, got 0"),
                                 ("volume_channels", (8, 0), r"expected positive ints, got \(8, 0\)"),
                                 ("renderer_fmap_base", 128, "expected at least resolution=256")):
        with pytest.raises(ValueError, match=f"VolumeGANConfig: argument '{key}' {expected}"):
            VolumeGANConfig(**{key: value})


@pytest.mark.parametrize("key, value, expected", [
    ("channel_base", 32, "expected at least resolution=64"),
    ("channel_max", 0, "expected an int >= 1, got 0"),
    ("mbstd_group", 0, "expected an int >= 1, got 0"),
    ("mbstd_channels", 3, "expected a divisor of the 512 channels at 4 x 4, got 3"),
    ("cmap_dim", -1, "expected an int >= 0, got -1"),
])
def test_discriminator_config_rejects_networks_that_cannot_run(key, value, expected):
    with pytest.raises(ValueError, match=f"StyleGAN2DiscriminatorConfig: argument '{key}' {expected}"):
        StyleGAN2DiscriminatorConfig(resolution=64, **{key: value})


def test_discriminator_without_minibatch_stddev():
    """mbstd_channels=0 leaves the layer out, as StyleGAN2-ADA's mbstd_num_channels=0: the
    scores of a batch are those of its images one at a time, whatever the group size."""
    D = make_discriminator(mbstd_channels=0, mbstd_group=3)
    D.check_batch(4)                                   # no groups to fill
    images = torch.randn(4, 3, SIZE, SIZE)
    torch.testing.assert_close(D(images), torch.cat([D(image[None]) for image in images]))
    with_mbstd = make_discriminator()
    assert with_mbstd.epilogue_conv.weight.shape[1] == D.epilogue_conv.weight.shape[1] + 1


@pytest.mark.parametrize("impl", ["torch", "native"])
def test_path_length_gradients_match_finite_differences(impl):
    """Second derivatives through compositing: the path-length gradient of a 3D weight
    matches float64 finite differences, with the twin and with the native op (whose backward
    recomputes through the twin under create_graph). Sample positions are fixed (no jitter,
    no importance samples, whose positions move with the weights), so the differences see
    only what autograd sees."""
    from render3d.losses import path_lengths

    G = make_generator(jitter=False, use_noise=False, n_fine=0).double()
    cams = cameras().to(dtype=torch.float64)
    z = torch.randn(2, 8, dtype=torch.float64)
    weight = G.volume.weights[0]
    direction = torch.randn_like(weight)

    def penalty():
        ws = G.mapping(z)
        image = G.synthesis(ws, cams, impl=impl)["image"]
        torch.manual_seed(5)
        return path_lengths(image, ws).sum()

    (grad,) = torch.autograd.grad(penalty(), weight)
    eps = 1e-5
    with torch.no_grad():
        weight += eps * direction
    plus = penalty().item()
    with torch.no_grad():
        weight -= 2 * eps * direction
    minus = penalty().item()
    with torch.no_grad():
        weight += eps * direction
    numeric = (plus - minus) / (2 * eps)
    assert abs(float((grad * direction).sum()) - numeric) < 1e-6 * max(1.0, abs(numeric))


def test_under_autocast_only_the_neural_renderer_runs_in_bf16():
    """`render3d train` with precision=bfloat16 runs synthesis under bf16 autocast: the 3D part
    (feature volume, point MLP, compositing: the native kernels take float32/float64) must not
    see it, the 2D renderer must, and the outputs stay float32."""
    G = make_generator(jitter=False)
    ws, cams = G.mapping(torch.randn(2, 8)), cameras()
    plain = G.synthesis(ws, cams, noise_mode="const")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = G.synthesis(ws, cams, noise_mode="const")
    assert all(low[key].dtype == torch.float32 for key in low)
    for key in ("features", "depth", "alpha"):
        assert torch.equal(low[key], plain[key]), key
    for key in ("image", "image_raw"):                      # bf16: 8 bits of mantissa, a few layers deep
        error = (low[key] - plain[key]).abs()
        assert 0 < error.max() < 0.05 * plain[key].abs().max(), key
