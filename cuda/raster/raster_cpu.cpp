// CPU implementation of Gaussian rasterization: at::parallel_for over (image, tile), the same
// work units as the CUDA grid. Within a tile the CPU goes Gaussian by Gaussian in depth order,
// visiting only the pixels where the Gaussian can reach alpha_min (a box from its conic), with
// per-pixel transmittance kept in a small tile-sized state; each pixel still sees its
// Gaussians in depth order under the same rules, so the result equals the pixel-by-pixel walk
// of the CUDA kernel and the PyTorch twin.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "raster_torch.h"

namespace render3d {
namespace {

constexpr int kPixels = kTileSize * kTileSize;

// The first and last pixel of a box edge within a tile, from a whole number in tile pixels.
// Clamped before the cast, which is undefined beyond int64 (an infinite limit, a nearly
// degenerate conic); NaN gives the whole tile. A larger box only costs time: each pixel in it
// still takes the exact test.
template <typename scalar_t>
int64_t box_low(scalar_t edge) {
  return edge > scalar_t(0) ? (edge < scalar_t(kTileSize) ? static_cast<int64_t>(edge) : kTileSize) : 0;
}

template <typename scalar_t>
int64_t box_high(scalar_t edge) {
  return edge < scalar_t(kTileSize - 1) ? (edge > scalar_t(-1) ? static_cast<int64_t>(edge) : -1) : kTileSize - 1;
}

// The pixels of one tile and the tile's Gaussians, gathered contiguously.
template <typename scalar_t>
struct Tile {
  int64_t image, x0, y0, start, end;
  std::vector<scalar_t> mx, my, conic, opacity, limit;  // conic: 3 per entry
  std::vector<int64_t> ids;
  std::vector<int32_t> px0, px1, py0, py1;  // pixel box of each entry within the tile, inclusive

  void load(const RasterParams<scalar_t>& p, int64_t tile_index) {
    const int64_t tiles = int64_t(p.tiles_x) * p.tiles_y;
    image = tile_index / tiles;
    const int64_t t = tile_index % tiles;
    x0 = (t % p.tiles_x) * kTileSize;
    y0 = (t / p.tiles_x) * kTileSize;
    start = p.tile_offsets[tile_index];
    end = p.tile_offsets[tile_index + 1];
    const int64_t n = end - start;
    for (auto* v : {&mx, &my, &opacity, &limit}) v->resize(n);
    conic.resize(3 * n);
    ids.resize(n);
    for (auto* v : {&px0, &px1, &py0, &py1}) v->resize(n);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t g = p.ids[start + j];
      ids[j] = g;
      mx[j] = p.means2d[2 * g];
      my[j] = p.means2d[2 * g + 1];
      const scalar_t* c = p.conics + 3 * g;
      for (int k = 0; k < 3; ++k) conic[3 * j + k] = c[k];
      opacity[j] = p.opacities[g];
      limit[j] = splat_sigma_limit(opacity[j], p.alpha_min);
      // sigma <= limit needs |dx| <= sqrt(2 limit Sigma_xx) with Sigma = conic^-1 (the minimum of
      // the quadratic form over dy at fixed dx), likewise for dy. Rounded outwards.
      int64_t bx0 = 0, bx1 = kTileSize - 1, by0 = 0, by1 = kTileSize - 1;
      const scalar_t det = c[0] * c[2] - c[1] * c[1];
      if (!(limit[j] >= 0)) {
        bx0 = 1, bx1 = 0;  // empty: cannot reach alpha_min anywhere
      } else if (det > 0) {
        const scalar_t ex = std::sqrt(2 * limit[j] * c[2] / det), ey = std::sqrt(2 * limit[j] * c[0] / det);
        bx0 = box_low(std::floor(mx[j] - ex - scalar_t(0.5)) - scalar_t(x0 + 1));
        bx1 = box_high(std::ceil(mx[j] + ex - scalar_t(0.5)) - scalar_t(x0 - 1));
        by0 = box_low(std::floor(my[j] - ey - scalar_t(0.5)) - scalar_t(y0 + 1));
        by1 = box_high(std::ceil(my[j] + ey - scalar_t(0.5)) - scalar_t(y0 - 1));
      }
      px0[j] = static_cast<int32_t>(bx0), px1[j] = static_cast<int32_t>(bx1);
      py0[j] = static_cast<int32_t>(by0), py1[j] = static_cast<int32_t>(by1);
    }
  }

  bool inside(const RasterParams<scalar_t>& p, int lx, int ly) const {
    return x0 + lx < p.width && y0 + ly < p.height;
  }

  int64_t pixel(const RasterParams<scalar_t>& p, int lx, int ly) const {
    return (image * p.height + y0 + ly) * p.width + x0 + lx;
  }

  // Alpha of entry j at local pixel (lx, ly); false when the pair is skipped.
  bool alpha(const RasterParams<scalar_t>& p, int64_t j, int lx, int ly, scalar_t& a, scalar_t& gauss,
             bool& clamped) const {
    const scalar_t px = scalar_t(x0 + lx) + scalar_t(0.5), py = scalar_t(y0 + ly) + scalar_t(0.5);
    const scalar_t sigma = splat_sigma(mx[j], my[j], conic.data() + 3 * j, px, py);
    if (!(sigma <= limit[j])) return false;
    return splat_alpha_from_sigma(sigma, opacity[j], p.alpha_max, p.alpha_min, a, gauss, clamped);
  }
};

template <typename scalar_t>
void raster_forward_tile(const RasterParams<scalar_t>& p, int64_t tile_index, Tile<scalar_t>& tile,
                         std::vector<scalar_t>& acc_tile) {
  tile.load(p, tile_index);
  const int64_t K = p.n_channels;
  acc_tile.assign(kPixels * K, scalar_t(0));
  scalar_t transmittance[kPixels];
  int64_t last[kPixels];
  bool done[kPixels];
  int active = 0;
  for (int lp = 0; lp < kPixels; ++lp) {
    transmittance[lp] = scalar_t(1);
    last[lp] = tile.start;
    done[lp] = !tile.inside(p, lp % kTileSize, lp / kTileSize);
    active += !done[lp];
  }
  for (int64_t j = 0; j < tile.end - tile.start && active > 0; ++j) {
    const scalar_t* f = p.features + tile.ids[j] * K;
    for (int ly = tile.py0[j]; ly <= tile.py1[j]; ++ly)
      for (int lx = tile.px0[j]; lx <= tile.px1[j]; ++lx) {
        const int lp = ly * kTileSize + lx;
        if (done[lp]) continue;
        scalar_t alpha, gauss;
        bool clamped;
        if (!tile.alpha(p, j, lx, ly, alpha, gauss, clamped)) continue;
        const scalar_t next = transmittance[lp] * (scalar_t(1) - alpha);
        if (next <= p.transmittance_eps) {
          done[lp] = true;
          --active;
          continue;
        }
        const scalar_t weight = alpha * transmittance[lp];
        scalar_t* acc = acc_tile.data() + lp * K;
        for (int64_t c = 0; c < K; ++c) acc[c] += f[c] * weight;
        transmittance[lp] = next;
        last[lp] = tile.start + j + 1;
      }
  }
  for (int lp = 0; lp < kPixels; ++lp) {
    const int lx = lp % kTileSize, ly = lp / kTileSize;
    if (!tile.inside(p, lx, ly)) continue;
    const int64_t pix = tile.pixel(p, lx, ly);
    std::copy_n(acc_tile.data() + lp * K, K, p.acc + pix * K);
    p.transmittance[pix] = transmittance[lp];
    p.last[pix] = last[lp];
  }
}

// Back to front over the tile's list, each pixel from its own last entry; one gradient slot per
// list entry (entry start + j belongs to this work unit alone).
template <typename scalar_t>
void raster_backward_tile(const RasterBackwardParams<scalar_t>& bp, int64_t tile_index, Tile<scalar_t>& tile,
                          std::vector<scalar_t>& suffix) {
  const RasterParams<scalar_t>& p = bp.fwd;
  tile.load(p, tile_index);
  const int64_t K = p.n_channels;
  suffix.assign(kPixels * K, scalar_t(0));
  scalar_t transmittance[kPixels], final_t[kPixels], v_t[kPixels];
  int64_t last[kPixels];
  for (int lp = 0; lp < kPixels; ++lp) {
    const int lx = lp % kTileSize, ly = lp / kTileSize;
    const bool inside = tile.inside(p, lx, ly);
    const int64_t pix = inside ? tile.pixel(p, lx, ly) : 0;
    final_t[lp] = transmittance[lp] = inside ? p.transmittance[pix] : scalar_t(1);
    v_t[lp] = inside ? bp.v_transmittance[pix] : scalar_t(0);
    last[lp] = inside ? p.last[pix] : tile.start;
  }
  for (int64_t j = tile.end - tile.start - 1; j >= 0; --j) {
    const int64_t i = tile.start + j, g = tile.ids[j];
    const scalar_t* f = p.features + g * K;
    scalar_t* v_f = bp.v_features + i * K;
    for (int ly = tile.py0[j]; ly <= tile.py1[j]; ++ly)
      for (int lx = tile.px0[j]; lx <= tile.px1[j]; ++lx) {
        const int lp = ly * kTileSize + lx;
        if (i >= last[lp]) continue;  // not blended into this pixel (also covers pixels off the image)
        scalar_t alpha, gauss;
        bool clamped;
        if (!tile.alpha(p, j, lx, ly, alpha, gauss, clamped)) continue;
        const scalar_t* g_acc = bp.v_acc + tile.pixel(p, lx, ly) * K;
        scalar_t* s = suffix.data() + lp * K;
        const scalar_t inv_one_minus = scalar_t(1) / (scalar_t(1) - alpha);
        const scalar_t t_before = transmittance[lp] * inv_one_minus;
        const scalar_t weight = alpha * t_before;
        scalar_t v_alpha = -v_t[lp] * final_t[lp] * inv_one_minus;
        for (int64_t c = 0; c < K; ++c) {
          v_alpha += g_acc[c] * (f[c] * t_before - s[c] * inv_one_minus);
          v_f[c] += weight * g_acc[c];
          s[c] += f[c] * weight;
        }
        const scalar_t px = scalar_t(tile.x0 + lx) + scalar_t(0.5), py = scalar_t(tile.y0 + ly) + scalar_t(0.5);
        scalar_t v_mean[2], v_conic[3], v_opacity;
        splat_alpha_vjp(p, g, px, py, v_alpha, alpha, gauss, clamped, v_mean, v_conic, v_opacity);
        bp.v_means2d[2 * i] += v_mean[0];
        bp.v_means2d[2 * i + 1] += v_mean[1];
        for (int k = 0; k < 3; ++k) bp.v_conics[3 * i + k] += v_conic[k];
        bp.v_opacities[i] += v_opacity;
        transmittance[lp] = t_before;
      }
  }
}

RasterArgs args(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& features,
                const at::Tensor& opacities, const at::Tensor& tile_offsets, const at::Tensor& ids, int64_t width,
                int64_t height, double alpha_max, double alpha_min, double transmittance_eps) {
  return RasterArgs{means2d, conics, features, opacities, tile_offsets, ids, width, height,
                    alpha_max, alpha_min, transmittance_eps};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> raster_fwd_cpu(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& features, const at::Tensor& opacities,
    const at::Tensor& tile_offsets, const at::Tensor& ids, int64_t width, int64_t height, double alpha_max,
    double alpha_min, double transmittance_eps) {
  const auto a = args(means2d, conics, features, opacities, tile_offsets, ids, width, height, alpha_max, alpha_min,
                      transmittance_eps);
  return raster_forward_torch(a, [&](const auto& p) {
    using scalar_t = std::remove_cv_t<std::remove_pointer_t<decltype(p.acc)>>;
    at::parallel_for(0, tile_offsets.numel() - 1, 1, [&](int64_t begin, int64_t end) {
      Tile<scalar_t> tile;
      std::vector<scalar_t> acc_tile;
      for (int64_t index = begin; index < end; ++index) raster_forward_tile(p, index, tile, acc_tile);
    });
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> raster_bwd_cpu(
    const at::Tensor& v_acc, const at::Tensor& v_transmittance, const at::Tensor& means2d, const at::Tensor& conics,
    const at::Tensor& features, const at::Tensor& opacities, const at::Tensor& tile_offsets, const at::Tensor& ids,
    const at::Tensor& transmittance, const at::Tensor& last, int64_t width, int64_t height, double alpha_max,
    double alpha_min, double transmittance_eps) {
  const auto a = args(means2d, conics, features, opacities, tile_offsets, ids, width, height, alpha_max, alpha_min,
                      transmittance_eps);
  return raster_backward_torch(a, transmittance, last, v_acc, v_transmittance, /*per_entry=*/true,
                               [&](const auto& p) {
                                 using scalar_t = std::remove_cv_t<std::remove_pointer_t<decltype(p.v_acc)>>;
                                 at::parallel_for(0, tile_offsets.numel() - 1, 1, [&](int64_t begin, int64_t end) {
                                   Tile<scalar_t> tile;
                                   std::vector<scalar_t> suffix;
                                   for (int64_t index = begin; index < end; ++index)
                                     raster_backward_tile(p, index, tile, suffix);
                                 });
                               });
}

}  // namespace

TORCH_LIBRARY_IMPL(render3d, CPU, m) {
  m.impl("raster_fwd", &raster_fwd_cpu);
  m.impl("raster_bwd", &raster_bwd_cpu);
}

}  // namespace render3d
