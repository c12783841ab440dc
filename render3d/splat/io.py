"""Gaussian-splat files: the 3DGS PLY layout that splat viewers read, and antimatter15's `.splat`.

3DGS PLY (binary little-endian, one ``vertex`` element, float32 properties in this order):
``x y z nx ny nz f_dc_0..2 f_rest_0..(3(K-1)-1) opacity scale_0..2 rot_0..3`` where f_rest is
channel-major (all red coefficients, then green, then blue), opacity is a logit, scales are
logs, and rot is the quaternion (w, x, y, z). Normals are written as zeros (readers ignore them).

`.splat`: 32 bytes per splat, no header: position (3 x float32), linear scale (3 x float32),
RGBA (4 x uint8: the degree-0 colour and the opacity), rotation (4 x uint8: q * 128 + 128 of
the unit quaternion w, x, y, z); splats sorted by decreasing size x opacity, as its viewer
expects.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import torch

from .._checks import Sizes, check_finite, check_tensor, error_reason
from .._files import write_file
from .sh import SH_C0, rgb_to_sh

_EPS = 1e-7
# Log-scales are clamped to [-30, 30] (1e-13 to 1e13 units) on reading: a 3DGS PLY may hold
# any float, but beyond this a scale's square (the covariance) times a focal length squared
# leaves float32 (0 or inf), and a splat that much smaller or larger looks the same.
_LOG_SCALE_RANGE = (-30.0, 30.0)
# One splat of a .splat file (32 bytes, no header; see the module docstring).
SPLAT_RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rotation", "u1", 4)])


def _check_set(fn, means, quats, scales, opacities, sh):
    sizes = Sizes()
    check_tensor(fn, "means", means, ("N", 3), sizes=sizes)
    check_tensor(fn, "quats", quats, ("N", 4), sizes=sizes)
    check_tensor(fn, "scales", scales, ("N", 3), sizes=sizes)
    check_tensor(fn, "opacities", opacities, ("N",), sizes=sizes)
    check_tensor(fn, "sh", sh, ("N", "K", 3), sizes=sizes)
    k = sizes["K"]
    if k not in (1, 4, 9, 16):
        raise ValueError(f"{fn}: argument 'sh' expected 1, 4, 9 or 16 coefficients (degree 0 to 3), got {k}")
    for name, values in (("means", means), ("quats", quats), ("scales", scales), ("opacities", opacities),
                         ("sh", sh)):
        check_finite(fn, name, values)
    if bool((scales <= 0).any()):
        raise ValueError(f"{fn}: argument 'scales' expected positive values, got {scales.min().item()}")
    if bool((quats == 0).all(-1).any()):
        raise ValueError(f"{fn}: argument 'quats' expected non-zero quaternions, got a zero one at index "
                         f"{int((quats == 0).all(-1).nonzero()[0, 0])}")
    if bool(((opacities < 0) | (opacities > 1)).any()):
        raise ValueError(f"{fn}: argument 'opacities' expected values in [0, 1]")


def _writable(fn: str, path) -> Path:
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"{fn}: argument 'path' expected a file in an existing folder, got {path}")
    if path.is_dir():
        raise ValueError(f"{fn}: argument 'path' expected a file path, got the folder {path}")
    return path


def _readable(fn: str, path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        got = "which is a folder" if path.is_dir() else "which does not exist"
        raise ValueError(f"{fn}: argument 'path' expected {what}, got {path}, {got}")
    return path


def _check_read(fn: str, path: Path, splats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Refuse a file whose splats hold NaN or infinity, non-positive scales or a zero
    quaternion: they cannot be drawn, and would be written on unnoticed. Names the file and
    counts the splats per field."""
    bad = {name: ~(torch.isfinite(values).flatten(1).all(-1) if values.ndim > 1 else torch.isfinite(values))
           for name, values in splats.items()}
    bad["scales"] |= (splats["scales"] <= 0).any(-1)
    bad["quats"] |= (splats["quats"] == 0).all(-1)
    counts = {name: int(rows.sum()) for name, rows in bad.items() if rows.any()}
    if counts:
        rows = torch.stack(list(bad.values())).any(0).nonzero()[:, 0].tolist()
        first = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        fields = ", ".join(f"{count} in {name}" for name, count in counts.items())
        raise ValueError(f"{fn}: argument 'path' expected finite splats with positive scales and non-zero "
                         f"quaternions, got {path} with {len(rows)} that are not ({fields}; splats {first})")
    return splats


def save_ply(path, means, quats, scales, opacities, sh) -> Path:
    """Write one Gaussian set as a 3DGS PLY.

    Args: means ``[N, 3]``; quats ``[N, 4]`` (w, x, y, z); scales ``[N, 3]`` (linear, > 0);
    opacities ``[N]`` in [0, 1]; sh ``[N, K, 3]`` coefficients (K = 1, 4, 9 or 16), or use
    `render3d.splat.rgb_to_sh(rgb)[:, None]` for plain colours.
    """
    from plyfile import PlyData, PlyElement

    fn = "render3d.splat.save_ply"
    _check_set(fn, means, quats, scales, opacities, sh)
    path = _writable(fn, path)
    n = sh.shape[0]
    columns = {"x": means[:, 0], "y": means[:, 1], "z": means[:, 2]}
    columns.update({name: torch.zeros(n) for name in ("nx", "ny", "nz")})
    columns.update({f"f_dc_{c}": sh[:, 0, c] for c in range(3)})
    rest = sh[:, 1:, :].transpose(1, 2).reshape(n, 3 * (sh.shape[1] - 1))  # channel-major
    columns.update({f"f_rest_{i}": rest[:, i] for i in range(rest.shape[1])})
    o = opacities.clamp(_EPS, 1 - _EPS)
    columns["opacity"] = torch.log(o / (1 - o))
    columns.update({f"scale_{i}": torch.log(scales[:, i]) for i in range(3)})
    columns.update({f"rot_{i}": quats[:, i] for i in range(4)})
    data = np.empty(n, dtype=[(name, "<f4") for name in columns])
    for name, values in columns.items():
        data[name] = values.detach().cpu().float().numpy()
    buffer = io.BytesIO()
    PlyData([PlyElement.describe(data, "vertex")], byte_order="<").write(buffer)
    return write_file(path, buffer.getvalue())


def load_ply(path) -> dict[str, torch.Tensor]:
    """Read a 3DGS PLY: ``means [N,3]``, ``quats [N,4]`` (as stored), ``scales [N,3]`` (linear;
    log-scales clamped to [-30, 30]), ``opacities [N]`` (in [0, 1]), ``sh [N, K, 3]``; the
    degree follows from the f_rest count. ValueError naming the file when it is not a 3DGS
    PLY, or when a splat holds NaN or infinity or a zero quaternion."""
    from plyfile import PlyData

    fn = "render3d.splat.load_ply"
    path = _readable(fn, path, "a PLY file")
    try:
        ply = PlyData.read(str(path))
    except Exception as error:      # plyfile raises many kinds: not a PLY, cut short, a bad header
        raise ValueError(f"{fn}: argument 'path' expected a PLY file, got {path}, which plyfile cannot read "
                         f"({error_reason(error)})") from None
    if "vertex" not in ply:
        raise ValueError(f"{fn}: {path} has no 'vertex' element, so it is not a Gaussian-splat PLY")
    v = ply["vertex"].data
    names = v.dtype.names
    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
                "rot_0", "rot_1", "rot_2", "rot_3"]
    missing = [name for name in required if name not in names]
    if missing:
        raise ValueError(f"{fn}: {path} lacks the 3DGS properties {missing}")
    rest_names = sorted((n for n in names if re.fullmatch(r"f_rest_\d+", n)), key=lambda n: int(n[len("f_rest_"):]))
    if len(rest_names) % 3 or (len(rest_names) // 3 + 1) not in (1, 4, 9, 16):
        raise ValueError(f"{fn}: {path} has {len(rest_names)} f_rest properties; expected 0, 9, 24 or 45")
    for name in required + rest_names:
        if v.dtype[name].kind not in "fiu":                   # a list property, say
            raise ValueError(f"{fn}: {path} has a property {name!r} that is not one number per splat "
                             f"({v.dtype[name]})")

    def column(*keys: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.asarray(v[k], dtype=np.float32) for k in keys], -1))

    n = len(v)
    dc = column("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :]
    if rest_names:
        rest = column(*rest_names).reshape(n, 3, len(rest_names) // 3).transpose(1, 2)
        sh = torch.cat([dc, rest], dim=1)
    else:
        sh = dc
    return _check_read(fn, path, {
        "means": column("x", "y", "z"),
        "quats": column("rot_0", "rot_1", "rot_2", "rot_3"),
        "scales": torch.exp(column("scale_0", "scale_1", "scale_2").clamp(*_LOG_SCALE_RANGE)),
        "opacities": torch.sigmoid(column("opacity")[:, 0]),
        "sh": sh,
    })


def save_splat(path, means, quats, scales, opacities, sh) -> Path:
    """Write antimatter15's `.splat` (degree-0 colour only; see the module docstring)."""
    fn = "render3d.splat.save_splat"
    _check_set(fn, means, quats, scales, opacities, sh)
    path = _writable(fn, path)
    order = torch.argsort(-(scales.prod(-1) * opacities), stable=True)
    q = torch.nn.functional.normalize(quats, dim=-1)[order]
    rgba = torch.cat([0.5 + SH_C0 * sh[order, 0, :], opacities[order, None]], dim=-1)
    records = np.empty(len(order), dtype=SPLAT_RECORD)
    records["position"] = means[order].detach().cpu().float().numpy()
    records["scale"] = scales[order].detach().cpu().float().numpy()
    records["rgba"] = (rgba.clamp(0, 1) * 255).round().detach().cpu().numpy().astype(np.uint8)
    records["rotation"] = (q * 128 + 128).round().clamp(0, 255).detach().cpu().numpy().astype(np.uint8)
    return write_file(path, records.tobytes())


def load_splat(path) -> dict[str, torch.Tensor]:
    """Read a `.splat` file back (colours quantised to 8 bits, so ``sh`` is degree 0)."""
    fn = "render3d.splat.load_splat"
    path = _readable(fn, path, "a .splat file")
    data = path.read_bytes()
    size = SPLAT_RECORD.itemsize
    if data.startswith(b"ply\n") or data.startswith(b"ply\r\n"):
        raise ValueError(f"{fn}: argument 'path' expected a .splat file, got {path}, which is a PLY file "
                         f"(it starts with 'ply'): read it with load_ply, or name it .ply")
    if len(data) % size:
        raise ValueError(f"{fn}: argument 'path' expected a .splat file (records of {size} "
                         f"bytes), got {path}: {len(data):,} bytes, not a multiple of {size}")
    raw = np.frombuffer(data, dtype=SPLAT_RECORD)
    rgba = torch.from_numpy(raw["rgba"].astype(np.float32) / 255)
    return _check_read(fn, path, {
        "means": torch.from_numpy(raw["position"].copy()),
        "scales": torch.from_numpy(raw["scale"].copy()),
        "quats": (torch.from_numpy(raw["rotation"].astype(np.float32)) - 128) / 128,
        "opacities": rgba[:, 3],
        "sh": rgb_to_sh(rgba[:, None, :3]),
    })
