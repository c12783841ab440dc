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
