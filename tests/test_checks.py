"""The shared argument and error helpers of render3d._checks."""

import io

import pytest
from PIL import Image, UnidentifiedImageError

from render3d._checks import error_reason


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
