"""Training configs: typed configs from YAML and `key=value` overrides, unknown keys and bad
values refused with the key that holds them, the presets, and the dotted keys that differ
between two configs (what a resumed run says it changed)."""

import json

import pytest
from _gan import tiny_config, tiny_train_config

from render3d.config import apply_overrides
from render3d.training import config_dict, resolve_config


@pytest.mark.parametrize("override, pattern", [
    ("bacth=8", r"config: unknown key 'bacth'; valid keys: generator_type, generator, .*batch"),
    ("generator.width=8", r"generator: unknown key 'width'; valid keys: z_dim, w_dim, .*mlp_width"),
    ("data.root=x", r"config.data: unknown key 'root'; valid keys: path, xflip, workers"),
    ("batch=many", r"config.batch: expected an int, got 'many'"),
    # a component config's own checks, named by the override key (they said "StyleGAN2LossConfig: argument ...")
    ("loss.gpc_swap=1.5", r"^loss.gpc_swap: expected a number in \[0, 1\], got 1.5$"),
    ("generator.resolution=-1", r"^generator.resolution: expected a power of two >= 4, got -1$"),
    ("discriminator_type=patchgan", r"discriminator_type: expected one of 'stylegan2', got 'patchgan'")])
def test_unknown_keys_and_bad_values_are_named_by_their_key(data, override, pattern):
    with pytest.raises(ValueError, match=pattern):
        resolve_config(apply_overrides(tiny_config(data), [override]))


def test_a_setting_the_built_component_checks_is_named_by_its_key(data):
    """VolumeGAN's renderer checks n_coarse itself."""
    from render3d.registry import GENERATORS

    with pytest.raises(ValueError, match=r"^generator.n_coarse: expected a positive int, got 0$"):
        GENERATORS.build("volumegan", {**tiny_config(data)["generator"], "n_coarse": 0})


@pytest.mark.parametrize("override, message", [
    ("total_kimg=0", "config.total_kimg: expected a positive number, got 0.0"),
    ("total_kimg=0.003", "config.total_kimg: expected at least one batch (4 images: 0.004), got 0.003"),  # 0 steps
    ("lr_g=-1", "config.lr_g: expected a positive number, got -1.0"),       # Adam's own words, before
    ("betas=[1.5, 0.9]", "config.betas: expected two numbers in [0, 1), got [1.5, 0.9]"),
    ("ema_rampup=0", "config.ema_rampup: expected null or a positive number, got 0.0"),
    ("seed=-3", "config.seed: expected an int in [0, 2**32), got -3"),      # numpy's, before
    ("device=tpu", "config.device: expected one of 'auto', 'cpu', 'cuda', got 'tpu'"),  # ran on the CPU
    ("precision=float16", "config.precision: expected one of 'float32', 'bfloat16', got 'float16'"),
    ("tf32=maybe", "config.tf32: expected bool, got 'maybe'"),
    ("log_every=0", "config.log_every: expected a positive int, got 0"),     # ZeroDivisionError at step 1
    ("checkpoint_every=0", "config.checkpoint_every: expected a positive int, got 0"),
    ("video_every=-1", "config.video_every: expected a non-negative int, got -1"),
    ("keep_checkpoints=-2", "config.keep_checkpoints: expected a non-negative int, got -2"),
    ("data.workers=-1", "config.data.workers: expected a non-negative int, got -1"),
    ("poses.distribution=normal",
     "config.poses.distribution: expected one of 'gaussian', 'uniform', got 'normal'"),
    ("poses.radius=0", "config.poses.radius: expected a positive finite number, got 0.0"),
    ("poses.fov_degrees=180", "config.poses.fov_degrees: expected degrees in (0, 180), got 180.0"),
    ("poses.pitch_spread=-0.1", "config.poses.pitch_spread: expected a finite non-negative number (radians), got -0.1"),
    # the prior's checks are the synthetic dataset's (cameras.pose_prior_problem): these passed before
    ("poses.yaw_spread=-1", "config.poses.yaw_spread: expected a finite non-negative number (radians), got -1.0"),
    # no float setting means inf or NaN: refused as the config is read (lr_g=1e400 diverged at step 1)
    ("poses.yaw_spread=.inf", "config.poses.yaw_spread: expected a finite number, got inf"),
    ("lr_g=1e400", "config.lr_g: expected a finite number, got inf"),
    ("generator.near=.nan", "generator.near: expected a finite number, got nan"),
    ("poses.pitch_mean=4", "config.poses.pitch_mean: expected radians in [0, pi] (0 looks down from +y, pi up from "
                           "below), got 4.0"),
    ("progressive.fade_kimg=-1", "config.progressive.fade_kimg: expected a non-negative number, got -1.0"),
])
def test_values_that_would_fail_mid_run_are_refused_with_their_key(data, override, message):
    """Each used to pass the config and fail later: at the first step, after the run folder was
    made, or in another library's words (or, for device, to run on the CPU unasked)."""
    with pytest.raises(ValueError) as error:
        resolve_config(apply_overrides(tiny_config(data), [override]))
    assert str(error.value) == message


def test_overrides_reach_nested_typed_configs(data):
    config = resolve_config(apply_overrides(tiny_config(data), ["generator.feature_dim=4", "loss.r1_gamma=3",
                                                                "betas=[0.5, 0.9]", "poses.source=prior"]))
    assert config.generator.feature_dim == 4 and config.loss.r1_gamma == 3.0
    assert config.betas == (0.5, 0.9) and config.poses.source == "prior"
    # YAML 1.1 reads exponents without a dot (1e-3) as strings; float fields take them.
    config = resolve_config(apply_overrides(tiny_config(data), ["lr_g=1e-3", "loss.r1_gamma=2E+1", "lr_d=.5e-2"]))
    assert (config.lr_g, config.loss.r1_gamma, config.lr_d) == (0.001, 20.0, 0.005)
    with pytest.raises(ValueError, match=r"config.batch: expected an int, got '1e3'"):
        resolve_config(apply_overrides(tiny_config(data), ["batch=1e3"]))


@pytest.mark.parametrize("preset", ["synth64", "ffhq256"])
def test_presets_resolve_and_build(preset):
    from render3d.cli.train import preset_path
    from render3d.registry import DISCRIMINATORS, GENERATORS
    from render3d.training import load_config

    config = load_config(preset_path(f"volumegan/{preset}"))
    G = GENERATORS.build(config.generator_type, config.generator)
    D = DISCRIMINATORS.build(config.discriminator_type, config.discriminator)
    assert G.resolutions[-1] == D.config.resolution == config.generator.resolution
    if preset == "ffhq256":   # the official sizes (methods.md §1): 12 ws, 32^3 x 32 volume, 32^2 feature map
        assert G.num_ws == 12 and G.resolutions == [32, 64, 128, 256]
        assert config.generator.volume_channels == (256, 128, 64, 32) and config.generator.feature_dim == 512


def test_config_changes_lists_the_dotted_keys_that_differ(data):
    from render3d.training.config import config_changes

    before = config_dict(tiny_train_config(data))
    after = config_dict(tiny_train_config(data, lr_g=0.001, loss={"r1_gamma": 3.0, "r1_interval": 2,
                                                                  "style_mixing": 0.5}))
    assert config_changes(before, after) == [("loss.r1_gamma", 1.0, 3.0), ("lr_g", 0.002, 0.001)]
    assert config_changes(before, json.loads(json.dumps(before))) == []     # as state.json holds it
    assert config_changes({"a": {"b": 1}}, {"a": {"c": 2}}) == [("a.b", 1, None), ("a.c", None, 2)]
    older = json.loads(json.dumps(before))                  # written before precision existed
    del older["precision"]
    assert config_changes(older, before) == []
    assert config_changes(older, config_dict(tiny_train_config(data, precision="bfloat16"))) == [
        ("precision", "float32", "bfloat16")]
