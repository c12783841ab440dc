"""Argument checks for public entry points.

Every public function checks its tensors here, so that a bad shape, dtype or device fails
with a `ValueError` naming the function, the argument, what was expected and what was
received, instead of a broadcasting surprise three calls later.

Shapes are written as tuples of dimension specs:

- an ``int`` must match exactly;
- a ``str`` names a symbolic size (``"B"``, ``"R"``); the first argument that uses a name
  binds it and later arguments must agree, so one `Sizes` is shared across a call;
- ``None`` accepts any size;
- ``"..."`` (only first) accepts any number of leading dimensions.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence

import numpy as np
import torch

FLOATING = (torch.float32, torch.float64)
Dim = int | str | None


def _fmt_shape(shape: Sequence) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _fmt_dtypes(dtypes: Sequence[torch.dtype]) -> str:
    return " or ".join(str(d).replace("torch.", "") for d in dtypes)


class Sizes(dict):
    """Symbolic sizes bound while checking one call, with where each was bound."""

    def __init__(self) -> None:
        super().__init__()
        self.origin: dict[str, str] = {}


def check_tensor(
    fn: str,
    name: str,
    x,
    shape: Sequence[Dim] | None = None,
    *,
    sizes: Sizes | None = None,
    dtype: torch.dtype | Sequence[torch.dtype] | None = FLOATING,
    device: torch.device | None = None,
    like: torch.Tensor | None = None,
    like_name: str | None = None,
) -> torch.Tensor:
    """Check one tensor argument; returns it unchanged.

    `like`: a tensor whose device and dtype `x` must share (named `like_name` in errors).
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{fn}: argument '{name}' expected a torch.Tensor, got {type(x).__name__}")
    if shape is not None:
        _check_shape(fn, name, x, shape, sizes if sizes is not None else Sizes())
    if dtype is not None:
        allowed = (dtype,) if isinstance(dtype, torch.dtype) else tuple(dtype)
        if x.dtype not in allowed:
            raise ValueError(
                f"{fn}: argument '{name}' expected dtype {_fmt_dtypes(allowed)}, "
                f"got {str(x.dtype).replace('torch.', '')}"
            )
    if like is not None:
        ref = like_name or "the first tensor argument"
        if x.device != like.device:
            raise ValueError(f"{fn}: argument '{name}' expected device {like.device} (as {ref}), got {x.device}")
        if dtype is not None and x.dtype != like.dtype and like.dtype in FLOATING and x.dtype in FLOATING:
            raise ValueError(
                f"{fn}: argument '{name}' expected dtype {str(like.dtype).replace('torch.', '')} (as {ref}), "
                f"got {str(x.dtype).replace('torch.', '')}"
            )
    if device is not None and x.device != torch.device(device):
        raise ValueError(f"{fn}: argument '{name}' expected device {device}, got {x.device}")
    return x


def _check_shape(fn: str, name: str, x: torch.Tensor, shape: Sequence[Dim], sizes: Sizes) -> None:
    spec = list(shape)
    leading = bool(spec) and spec[0] == "..."
    if leading:
        spec = spec[1:]
    got = tuple(x.shape)
    expected = _fmt_shape(shape)
    if (leading and len(got) < len(spec)) or (not leading and len(got) != len(spec)):
        raise ValueError(f"{fn}: argument '{name}' expected shape {expected}, got {_fmt_shape(got)}")
    tail = got[len(got) - len(spec):]
    for dim, size in zip(spec, tail):
        if dim is None:
            continue
        if isinstance(dim, int):
            if size != dim:
                raise ValueError(f"{fn}: argument '{name}' expected shape {expected}, got {_fmt_shape(got)}")
        elif dim in sizes:
            if sizes[dim] != size:
                raise ValueError(
                    f"{fn}: argument '{name}' expected shape {expected} with {dim}={sizes[dim]} "
                    f"(from '{sizes.origin[dim]}'), got {_fmt_shape(got)}"
                )
        else:
            sizes[dim] = size
            sizes.origin[dim] = name


def check_finite(fn: str, name: str, x: torch.Tensor, *, nonnegative: bool = False) -> None:
    """Raise if `x` holds NaN/inf (or, with `nonnegative`, a negative value). One device sync."""
    ok = (x >= 0) & torch.isfinite(x) if nonnegative else torch.isfinite(x)
    if bool(ok.all()):
        return
    bad = (~ok).nonzero()[0].tolist()
    value = x[tuple(bad)].item()
    what = "finite, non-negative values" if nonnegative else "finite values"
    raise ValueError(f"{fn}: argument '{name}' expected {what}, got {value} at index {tuple(bad)}")


def said_choices(choices) -> str:
    """The valid values of a setting as an error message lists them: ``'a', 'b', 'c'`` (each
    as Python writes it, as argparse's "choose from" does), so every "expected one of" of the
    package, the command line's included, reads the same."""
    return ", ".join(repr(c) for c in choices)


def check_choice(fn: str, name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f"{fn}: argument '{name}' expected one of {said_choices(choices)}, got {value!r}")


def _scalar(value):
    """A one-element tensor as its Python number; anything else as it is."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool:
        return value.item()
    return value


def is_number(value, integer: bool = False) -> bool:
    """A real number (an int with `integer`): Python's, numpy's; not a bool, not a string."""
    kind = numbers.Integral if integer else numbers.Real
    return isinstance(value, kind) and not isinstance(value, (bool, np.bool_))


def check_number(fn: str, name: str, value, *, integer: bool = False) -> None:
    """`value` a finite real number (an int with `integer`): NaN, infinity, a bool or a string
    raise a ValueError naming the argument, before they surface as a wrong message elsewhere."""
    value = _scalar(value)
    if not is_number(value, integer) or not math.isfinite(value):
        what = "an int" if integer else "a finite number"
        raise ValueError(f"{fn}: argument '{name}' expected {what}, got {value!r}")


def check_positive(fn: str, name: str, value, *, allow_zero: bool = False, integer: bool = False,
                   finite: bool = True) -> None:
    """`value` > 0 (>= 0 with `allow_zero`), a real number (an int with `integer`), finite
    unless `finite=False` allows +inf. A bool is not a number here (True was taken as 1)."""
    value = _scalar(value)
    ok = is_number(value, integer) and not math.isnan(value) and (not finite or math.isfinite(value))
    if not (ok and (value >= 0 if allow_zero else value > 0)):
        what = ("a non-negative" if allow_zero else "a positive") + (" int" if integer else " number")
        raise ValueError(f"{fn}: argument '{name}' expected {what}, got {value!r}")


def check_box(fn: str, name: str, box) -> tuple[np.ndarray, np.ndarray]:
    """``(min_xyz, max_xyz)`` (numbers, sequences or tensors) -> two float64 arrays of 3,
    finite, max > min on every axis."""
    try:
        lo, hi = (np.asarray(torch.as_tensor(b, dtype=torch.float64).cpu(), dtype=np.float64).reshape(-1)
                  for b in box)
    except (TypeError, ValueError, RuntimeError):
        lo = hi = np.zeros(0)
    if lo.shape != (3,) or hi.shape != (3,) or not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise ValueError(f"{fn}: argument '{name}' expected (min_xyz, max_xyz) with 3 finite numbers each, "
                         f"got {box!r}")
    if not (hi > lo).all():
        raise ValueError(f"{fn}: argument '{name}' expected max > min on every axis, got min {lo.tolist()}, "
                         f"max {hi.tolist()}")
    return lo, hi


def check_device(fn: str, name: str, device) -> torch.device:
    """A torch device this process can use: a valid spelling ('cpu', 'cuda', 'cuda:1'), and
    CUDA only when torch sees a CUDA device (with that index)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{fn}: argument '{name}' expected a torch device such as 'cpu', 'cuda' or 'cuda:1', "
                         f"got {device!r}") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (parsed.index or 0) >= count:
            raise ValueError(f"{fn}: argument '{name}' expected a device this machine has, got {device!r} while "
                             f"torch sees {count} CUDA device(s)")
    return parsed


def error_reason(error: BaseException) -> str:
    """'Type: first line' of a reader's exception, for a message that says a file cannot be
    read: short enough for one line of output, and without the address of an in-memory
    buffer that PIL puts in its messages."""
    text = re.sub(r" <_io\.BytesIO object at \w+>", "", str(error)).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def restate(error: BaseException, names: dict[str, str]) -> str:
    """A check's message said in the caller's terms: "<function>: [context: ]argument 'x'
    expected ..." becomes "[context: ]<names[x]> expected ..." when `names` maps x to what
    set it (a command-line option such as "--level", a config key such as "data.path"). A
    message about another argument, or none, is kept whole, its function name included: it
    says where to look."""
    text = str(error)
    match = re.fullmatch(r"[\w.]+: (.*?)argument '(\w+)' (.*)", text, re.DOTALL)
    if match is None or match[2] not in names:
        return text
    return f"{match[1]}{names[match[2]]} {match[3]}"
