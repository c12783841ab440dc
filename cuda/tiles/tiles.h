// Tile binning of projected Gaussians: which 16x16 pixel tiles each one overlaps, and a key per
// (Gaussian, tile) pair that sorts by image, then tile, then depth:
//   key = image << (32 + tile_bits) | tile << 32 | float bits of the depth
// (the bit pattern of a positive float is monotone in its value). Flat ids are
// image * N + gaussian. The tile rectangle of a Gaussian is floor((m - r) / 16) ..
// ceil((m + r) / 16) per axis (exclusive end), clipped to the image's tiles, as gsplat bins.
#pragma once

#include <string.h>

#include "render3d/common.h"

namespace render3d {

constexpr int kTileSize = 16;  // pixels per tile side (the CUDA rasterizer runs one block per tile)

template <typename scalar_t>
struct TileParams {
  int64_t n_images;          // B
  int64_t n_gaussians;       // N
  const scalar_t* means2d;   // [B, N, 2] pixels
  const int32_t* radii;      // [B, N, 2] pixels, 0 = culled
  const scalar_t* depths;    // [B, N] camera z (> 0 for visible Gaussians)
  int32_t tiles_x, tiles_y;  // tiles per image row and column
  int32_t tile_bits;         // bits of a tile id within an image
  int64_t* counts;           // [B * N] count pass out: tiles touched
  const int64_t* starts;     // [B * N] fill pass in: first output slot of each Gaussian
  int64_t* keys;             // [M] fill pass out
  int32_t* ids;              // [M] fill pass out
};

R3D_HD uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  memcpy(&u, &x, sizeof(u));
  return u;
#endif
}

// Tile rectangle [x0, x1) x [y0, y1) of flat Gaussian g; false when it touches none.
template <typename scalar_t>
R3D_HD bool tile_rect(const TileParams<scalar_t>& p, int64_t g, int32_t& x0, int32_t& y0, int32_t& x1, int32_t& y1) {
  const int32_t rx = p.radii[2 * g], ry = p.radii[2 * g + 1];
  if (rx <= 0 || ry <= 0) return false;
  const scalar_t mx = p.means2d[2 * g] / kTileSize, my = p.means2d[2 * g + 1] / kTileSize;
  const scalar_t tx = scalar_t(rx) / kTileSize, ty = scalar_t(ry) / kTileSize;
  x0 = static_cast<int32_t>(clamp_<scalar_t>(floor(mx - tx), 0, p.tiles_x));
  x1 = static_cast<int32_t>(clamp_<scalar_t>(ceil(mx + tx), 0, p.tiles_x));
  y0 = static_cast<int32_t>(clamp_<scalar_t>(floor(my - ty), 0, p.tiles_y));
  y1 = static_cast<int32_t>(clamp_<scalar_t>(ceil(my + ty), 0, p.tiles_y));
  return x1 > x0 && y1 > y0;
}

template <typename scalar_t>
R3D_HD void tile_count(const TileParams<scalar_t>& p, int64_t g) {
  int32_t x0, y0, x1, y1;
  p.counts[g] = tile_rect(p, g, x0, y0, x1, y1) ? int64_t(x1 - x0) * (y1 - y0) : 0;
}

template <typename scalar_t>
R3D_HD void tile_fill(const TileParams<scalar_t>& p, int64_t g) {
  int32_t x0, y0, x1, y1;
  if (!tile_rect(p, g, x0, y0, x1, y1)) return;
  const int64_t image = g / p.n_gaussians;
  const int64_t base = (image << (32 + p.tile_bits)) | static_cast<int64_t>(float_bits(static_cast<float>(p.depths[g])));
  int64_t slot = p.starts[g];
  for (int32_t y = y0; y < y1; ++y)
    for (int32_t x = x0; x < x1; ++x) {
      p.keys[slot] = base | (static_cast<int64_t>(y) * p.tiles_x + x) << 32;
      p.ids[slot] = static_cast<int32_t>(g);
      ++slot;
    }
}

template <typename scalar_t>
void tiles_count_cuda(const TileParams<scalar_t>& p, void* stream);
template <typename scalar_t>
void tiles_fill_cuda(const TileParams<scalar_t>& p, void* stream);
// Stable radix sort of (keys, ids) pairs on the low `end_bit` bits; `temp` may be null to ask
// for the scratch size, returned in `temp_bytes`. Returns a cudaError_t as int.
int tiles_sort_cuda(const int64_t* keys_in, int64_t* keys_out, const int32_t* ids_in, int32_t* ids_out, int64_t n,
                    int end_bit, void* temp, size_t& temp_bytes, void* stream);

}  // namespace render3d
