"""The shared argument and error helpers of render3d._checks."""

import io

import numpy as np
import pytest
import torch
from PIL import Image, UnidentifiedImageError

from render3d._checks import error_reason, said_choices


def test_error_reason_is_one_line_with_the_type_and_without_a_buffer_address():
    with pytest.raises(UnidentifiedImageError) as caught:
        Image.open(io.BytesIO(b"not an image"))
    assert "BytesIO object at" in str(caught.value)          # what PIL says, which we drop
    assert error_reason(caught.value) == "UnidentifiedImageError: cannot identify image file"
    assert error_reason(ValueError("first line\n  second line")) == "ValueError: first line"
    assert error_reason(KeyError()) == "KeyError"
    assert error_reason(OSError("  \n")) == "OSError"


def test_check_positive_takes_numbers_only():
    """True was taken as 1 and 8.0 as a count; a one-element tensor or a numpy number is a number."""
    import math

    import numpy as np
    import torch

    from render3d._checks import check_number, check_positive

    for value in (3, 2.5, np.int64(3), np.float32(0.5), torch.tensor(4)):
        check_positive("f", "x", value)
    check_positive("f", "x", 0, allow_zero=True, integer=True)
    check_positive("f", "x", math.inf, finite=False)
    for value, kwargs, what in ((True, {}, "a positive number"), ("3", {}, "a positive number"),
                                (math.inf, {}, "a positive number"), (math.nan, {"finite": False}, "a positive number"),
                                (8.0, {"integer": True}, "a positive int"),
                                (-1, {"allow_zero": True}, "a non-negative number"),
                                (torch.tensor([1, 2]), {}, "a positive number")):
        with pytest.raises(ValueError, match=f"f: argument 'x' expected {what}, got "):
            check_positive("f", "x", value, **kwargs)
    check_number("f", "x", -2.5)
    for value in (math.nan, -math.inf, None, False):
        with pytest.raises(ValueError, match="f: argument 'x' expected a finite number"):
            check_number("f", "x", value)


def test_restate_names_an_argument_by_what_set_it():
    from render3d._checks import restate

    options = {"level": "--level", "path": "MESH"}
    assert restate(ValueError("render3d.mesh.extract_mesh: the field has no surface inside bbox: argument 'level' "
                              "expected a value in [0, 1], got 5"), options) == (
        "the field has no surface inside bbox: --level expected a value in [0, 1], got 5")
    assert restate(ValueError("load_mesh: argument 'path' expected a mesh,\nsee 'x'"), options) == (
        "MESH expected a mesh,\nsee 'x'")                                     # the whole message, lines and all
    # another argument, or none: the library's words, its function name included
    for kept in ("render3d.volume.composite: argument 'densities' expected finite values",
                 "EG3DDataset: entry 2 cannot be decoded", "no function: argument 'level' is not first",
                 "discriminator.mbstd_group expected a divisor of 4, got 3"):
        assert restate(ValueError(kept), options) == kept


def _choice_refusals():
    """(what the choices are, a call that refuses a value not among them), from every layer that
    lists choices: a layer, a config, the registry, a scene, a dataset, a metric, cameras."""
    from render3d.cameras import Cameras
    from render3d.cameras.camera import _PINHOLE_MODELS
    from render3d.datasets.procedural import PRIMITIVES, _local_sdf
    from render3d.metrics.shapes import NORMALIZE, normalize_points
    from render3d.nn.layers import ACTIVATIONS, FullyConnected
    from render3d.nn.modulated import ModulatedLinear
    from render3d.registry import GENERATORS
    from render3d.training.config import PRECISIONS, TrainConfig
    from render3d.training.data import progressive_stage
    from render3d.volume import make_scene, scene_names

    frame = {"transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}
    transforms = {"camera_model": "FISHEYE", "fl_x": 1, "fl_y": 1, "cx": 1, "cy": 1, "w": 2, "h": 2, "frames": [frame]}
    return [
        (ACTIVATIONS, lambda: FullyConnected(2, 2, activation="gelu")),
        (ACTIVATIONS, lambda: ModulatedLinear(2, 2, 2, activation="gelu")),
        (PRECISIONS, lambda: TrainConfig(precision="fp16")),
        (GENERATORS.names(), lambda: GENERATORS.get("nerf")),
        (scene_names(), lambda: make_scene("teapot")),
        (PRIMITIVES, lambda: _local_sdf("cone", (1.0,), torch.zeros(1, 3))),
        (NORMALIZE, lambda: normalize_points(np.zeros((1, 3)), "unit_sphere")),
        (_PINHOLE_MODELS, lambda: Cameras.from_transforms_json(transforms)),
        ((8, 16, 32), lambda: progressive_stage(0, [8, 16, 32], 12, 1.0, 1.0)),
    ]


@pytest.mark.parametrize("case", range(len(_choice_refusals())))
def test_every_refusal_words_its_choices_alike(case):
    """'a', 'b' as Python writes them (as argparse's "choose from" does): a config said them
    as bare words and layers as a tuple, next to the quoted ones of the registry."""
    choices, call = _choice_refusals()[case]
    with pytest.raises(ValueError) as error:
        call()
    assert f"one of {said_choices(choices)}, got " in str(error.value)


def test_choices_are_said_as_python_writes_them():
    assert said_choices(("a", 8, None)) == "'a', 8, None"
