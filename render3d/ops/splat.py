"""Gaussian splatting ops: projection, tile binning and rasterization; native and PyTorch twins.

The twins follow the definitions in cuda/project/project.h, cuda/tiles/tiles.h and
cuda/raster/raster.h with plain tensor operations (autograd gives their backward). Public,
checked entry: `render3d.splat.rasterize`.
"""

from __future__ import annotations

import torch

from ._dispatch import use_native

TILE_SIZE = 16  # pixels per tile side; the native rasterizer is built for this size
MAX_RADIUS = 2 ** 31 - 128  # largest int32 radius, exact in float32 (kMaxRadius in cuda/project/project.h)


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (w, x, y, z) ``[..., 4]`` -> rotation matrices ``[..., 3, 3]``."""
    w, x, y, z = quats.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*quats.shape[:-1], 3, 3)


def covariance(quats, scales, covars) -> torch.Tensor:
    """World covariances ``[..., 3, 3]`` from quaternions and scales, or from 6 covariance values."""
    if covars is not None:
        xx, xy, xz, yy, yz, zz = covars.unbind(-1)
        return torch.stack([xx, xy, xz, xy, yy, yz, xz, yz, zz], dim=-1).reshape(*covars.shape[:-1], 3, 3)
    rot = quat_to_rotmat(quats / quats.norm(dim=-1, keepdim=True))
    m = rot * scales[..., None, :]
    return m @ m.transpose(-1, -2)


def project_torch(means, quats, scales, covars, opacities, viewmats, intrinsics, width, height, near_plane, far_plane,
                  eps2d, alpha_min, antialiased):
    """Twin of ``render3d::project_fwd``: (radii [B,N,2] int32, means2d [B,N,2], depths [B,N],
    conics [B,N,3], compensations [B,N]); culled Gaussians have radius 0 and zeros elsewhere."""
    rot_c, t_c = viewmats[:, None, :3, :3], viewmats[:, None, :3, 3]
    cam = (rot_c @ means[..., None])[..., 0] + t_c
    cov_c = rot_c @ covariance(quats, scales, covars) @ rot_c.transpose(-1, -2)
    x, y, z = cam.unbind(-1)
    in_depth = (z > near_plane) & (z < far_plane)
    z = torch.where(in_depth, z, torch.ones_like(z))  # culled entries stay finite (no NaN gradients)
    fx, fy, cx, cy = intrinsics[:, None, :].unbind(-1)
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    tx = z * torch.clamp(x / z, min=-(cx / fx + 0.3 * tan_x), max=(width - cx) / fx + 0.3 * tan_x)
    ty = z * torch.clamp(y / z, min=-(cy / fy + 0.3 * tan_y), max=(height - cy) / fy + 0.3 * tan_y)
    zero = torch.zeros_like(z)
    jac = torch.stack([fx / z, zero, -fx * tx / z**2, zero, fy / z, -fy * ty / z**2], dim=-1).reshape(*z.shape, 2, 3)
    cov2d = jac @ cov_c @ jac.transpose(-1, -2)
    a0, b, c0 = cov2d[..., 0, 0], cov2d[..., 0, 1], cov2d[..., 1, 1]
    a, c = a0 + eps2d, c0 + eps2d
    det_orig = a0 * c0 - b * b
    det = a * c - b * b
    valid = in_depth & (det > 0)
    det = torch.where(valid, det, torch.ones_like(det))
    comp = torch.sqrt(torch.clamp(det_orig / det, min=0))
    conics = torch.stack([c / det, -b / det, a / det], dim=-1)
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)
    with torch.no_grad():
        k = torch.full_like(z, 3.33)
        if opacities is not None:
            effective = opacities * (comp if antialiased else 1)
            valid = valid & (effective >= alpha_min)
            k = torch.minimum(k, torch.sqrt(2 * torch.log(torch.clamp(effective, min=alpha_min) / alpha_min)))
        radius = torch.ceil(k[..., None] * torch.sqrt(torch.stack([a, c], dim=-1).clamp(min=0)))
        valid = valid & (radius > 0).all(-1)
        radius = radius.clamp(max=MAX_RADIUS)
        mx, my = means2d.detach().unbind(-1)
        valid = valid & (mx + radius[..., 0] > 0) & (mx - radius[..., 0] < width)
        valid = valid & (my + radius[..., 1] > 0) & (my - radius[..., 1] < height)
        radii = torch.where(valid[..., None], radius, 0).to(torch.int32)
    keep = valid[..., None]
    return (radii, torch.where(keep, means2d, 0), torch.where(valid, cam[..., 2], 0), torch.where(keep, conics, 0),
            torch.where(valid, comp, 0))


@torch.no_grad()
def isect_tiles_torch(means2d, radii, depths, tiles_x, tiles_y):
    """Twin of ``render3d::isect_tiles``: (keys [M] int64 sorted, ids [M] int32, tile_offsets [B*T+1])."""
    B, N = depths.shape
    device = means2d.device
    tile_bits = (tiles_x * tiles_y).bit_length()
    m, r = means2d / TILE_SIZE, radii.to(means2d.dtype) / TILE_SIZE
    x0 = torch.floor(m[..., 0] - r[..., 0]).clamp(0, tiles_x).to(torch.int64)
    x1 = torch.ceil(m[..., 0] + r[..., 0]).clamp(0, tiles_x).to(torch.int64)
    y0 = torch.floor(m[..., 1] - r[..., 1]).clamp(0, tiles_y).to(torch.int64)
    y1 = torch.ceil(m[..., 1] + r[..., 1]).clamp(0, tiles_y).to(torch.int64)
    counts = ((x1 - x0) * (y1 - y0) * (radii > 0).all(-1)).reshape(-1).clamp(min=0)
    flat = torch.repeat_interleave(torch.arange(B * N, device=device), counts)
    local = torch.arange(flat.numel(), device=device) - (torch.cumsum(counts, 0) - counts)[flat]
    width = (x1 - x0).reshape(-1)[flat]
    tile_x = x0.reshape(-1)[flat] + local % width
    tile_y = y0.reshape(-1)[flat] + local // width
    depth_bits = depths.reshape(-1)[flat].to(torch.float32).view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    image = flat // N
    keys = (image << (32 + tile_bits)) | ((tile_y * tiles_x + tile_x) << 32) | depth_bits
    keys, order = torch.sort(keys, stable=True)
    ids = flat[order].to(torch.int32)
    queries = (torch.arange(B, device=device)[:, None] << tile_bits) + torch.arange(tiles_x * tiles_y, device=device)
    starts = torch.searchsorted(keys >> 32, queries.reshape(-1))
    return keys, ids, torch.cat([starts, torch.tensor([keys.numel()], device=device)])


def raster_torch(means2d, conics, features, opacities, tile_offsets, ids, width, height, alpha_max, alpha_min,
                 transmittance_eps):
    """Twin of ``render3d::raster_fwd``: every pixel against its tile's list, vectorised over
    pixels and list entries (tiles in chunks, to bound memory). Returns (acc [B,H,W,K],
    transmittance [B,H,W], last [B,H,W])."""
    B, N, K = features.shape
    device = means2d.device
    tiles_x, tiles_y = -(-width // TILE_SIZE), -(-height // TILE_SIZE)
    if ids.numel() == 0:  # nothing overlaps any tile
        return (means2d.new_zeros(B, height, width, K), means2d.new_ones(B, height, width),
                torch.zeros(B, height, width, dtype=torch.int64, device=device))
    counts = tile_offsets[1:] - tile_offsets[:-1]
    pixels = TILE_SIZE * TILE_SIZE
    step = max(1, _TWIN_BUDGET // (pixels * max(int(counts.max()), 1)))
    pieces = [
        _raster_tiles(means2d, conics, features, opacities, tile_offsets, ids, start, min(start + step, counts.numel()),
                      tiles_x, tiles_y, alpha_max, alpha_min, transmittance_eps)
        for start in range(0, counts.numel(), step)
    ]
    acc, transmittance, last = (torch.cat(parts) for parts in zip(*pieces))

    def image(x):  # [tiles, pixels, ...] -> [B, H, W, ...] cropped to the image
        tail = x.shape[2:]
        x = x.reshape(B, tiles_y, tiles_x, TILE_SIZE, TILE_SIZE, *tail).transpose(2, 3)
        return x.reshape(B, tiles_y * TILE_SIZE, tiles_x * TILE_SIZE, *tail)[:, :height, :width]

    return image(acc).contiguous(), image(transmittance).contiguous(), image(last).contiguous()


_TWIN_BUDGET = 1 << 24  # (pixel, list entry) pairs the twin evaluates at once


def _raster_tiles(means2d, conics, features, opacities, tile_offsets, ids, first, stop, tiles_x, tiles_y, alpha_max,
                  alpha_min, transmittance_eps):
    """The twin's work for tiles [first, stop): acc [T, P, K], transmittance [T, P], last [T, P]."""
    device, dtype = means2d.device, means2d.dtype
    offsets = tile_offsets[first:stop + 1]
    counts = offsets[1:] - offsets[:-1]
    slot = torch.arange(max(int(counts.max()), 1), device=device)
    in_list = slot[None, :] < counts[:, None]                                       # [T, L]
    gauss = ids[(offsets[:-1, None] + slot).clamp(max=ids.numel() - 1)].to(torch.int64)
    t = torch.arange(first, stop, device=device) % (tiles_x * tiles_y)
    within = torch.arange(TILE_SIZE, device=device)
    ly, lx = torch.meshgrid(within, within, indexing="ij")
    px = (t % tiles_x)[:, None] * TILE_SIZE + lx.reshape(1, -1)                      # [T, P]
    py = (t // tiles_x)[:, None] * TILE_SIZE + ly.reshape(1, -1)
    flat_means, flat_conics = means2d.reshape(-1, 2)[gauss], conics.reshape(-1, 3)[gauss]  # [T, L, *]
    dx = flat_means[:, None, :, 0] - (px.to(dtype) + 0.5)[..., None]                  # [T, P, L]
    dy = flat_means[:, None, :, 1] - (py.to(dtype) + 0.5)[..., None]
    a, b, c = (flat_conics[:, None, :, i] for i in range(3))
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = torch.clamp(opacities.reshape(-1)[gauss][:, None, :] * torch.exp(-sigma), max=alpha_max)
    valid = in_list[:, None, :] & (sigma >= 0) & (alpha >= alpha_min)
    alpha = torch.where(valid, alpha, 0)
    before = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1 - alpha[..., :-1]], dim=-1), dim=-1)
    stops = valid & (before * (1 - alpha) <= transmittance_eps)
    blended = valid & (torch.cumsum(stops.to(torch.int32), dim=-1) == 0)
    weights = torch.where(blended, alpha * before, 0)
    acc = torch.einsum("tpl,tlk->tpk", weights, features.flatten(0, 1)[gauss])  # [B*N, K], K may be 0
    transmittance = torch.prod(torch.where(blended, 1 - alpha, 1), dim=-1)
    last = offsets[:-1, None] + torch.where(blended, slot + 1, 0).amax(dim=-1)
    return acc, transmittance, last


def project_op(means, quats, scales, covars, opacities, viewmats, intrinsics, width, height, near_plane, far_plane,
               eps2d, alpha_min, antialiased, *, impl: str, fn: str):
    args = (means, quats, scales, covars, opacities, viewmats, intrinsics, int(width), int(height), float(near_plane),
            float(far_plane), float(eps2d), float(alpha_min), bool(antialiased))
    if use_native(fn, impl, means.device):
        return torch.ops.render3d.project_fwd(*[a.contiguous() if isinstance(a, torch.Tensor) else a for a in args])
    return project_torch(*args)


def isect_tiles_op(means2d, radii, depths, width, height, *, impl: str, fn: str):
    tiles_x, tiles_y = -(-width // TILE_SIZE), -(-height // TILE_SIZE)
    with torch.no_grad():
        if use_native(fn, impl, means2d.device):
            return torch.ops.render3d.isect_tiles(means2d.detach().contiguous(), radii.contiguous(),
                                                  depths.detach().contiguous(), tiles_x, tiles_y)
        return isect_tiles_torch(means2d.detach(), radii, depths.detach(), tiles_x, tiles_y)


def raster_op(means2d, conics, features, opacities, tile_offsets, ids, width, height, alpha_max, alpha_min,
              transmittance_eps, *, impl: str, fn: str):
    args = (means2d, conics, features, opacities, tile_offsets, ids, int(width), int(height), float(alpha_max),
            float(alpha_min), float(transmittance_eps))
    if use_native(fn, impl, means2d.device):
        return torch.ops.render3d.raster_fwd(*[a.contiguous() if isinstance(a, torch.Tensor) else a for a in args])
    return raster_torch(*args)
