// Rasterization of projected Gaussians: front-to-back alpha blending per pixel over the
// depth-sorted Gaussians of the pixel's tile. The per-(pixel, Gaussian) math is here, shared by
// the CPU loop and the CUDA kernels.
//
// For pixel centre (px, py) and a Gaussian with 2D mean m, conic (a, b, c) and opacity o:
//   d = m - (px, py),  sigma = 0.5 (a dx^2 + c dy^2) + b dx dy,  alpha = min(alpha_max, o e^-sigma);
// skipped if sigma < 0 or alpha < alpha_min; blending stops (without blending) at the first
// Gaussian that would bring the transmittance to transmittance_eps or below. Then
//   acc_k = sum_i f_ik alpha_i T_i,  T_final = prod_i (1 - alpha_i)  over blended Gaussians.
// Backward (back to front, T_i = T_{i+1} / (1 - alpha_i), S_k = sum_{j>i} f_jk alpha_j T_j):
//   dL/dalpha_i = sum_k g_k (f_ik T_i - S_k / (1 - alpha_i)) - g_T T_final / (1 - alpha_i),
//   dL/df_ik = alpha_i T_i g_k, and through alpha (unless clamped) to o, the conic and m.
#pragma once

#include "render3d/common.h"
#include "tiles/tiles.h"

namespace render3d {

template <typename scalar_t>
struct RasterParams {
  int64_t n_images;               // B
  int64_t n_gaussians;            // N
  int64_t n_channels;             // K features per Gaussian
  int32_t width, height;          // pixels
  int32_t tiles_x, tiles_y;       // tiles per row and column
  const scalar_t* means2d;        // [B * N, 2] pixels
  const scalar_t* conics;         // [B * N, 3]
  const scalar_t* features;       // [B * N, K]
  const scalar_t* opacities;      // [B * N] in [0, 1]
  const int64_t* tile_offsets;    // [B * tiles + 1] range of each tile in the sorted lists
  const int32_t* ids;             // [M] flat Gaussian ids, sorted by image, tile, depth
  scalar_t alpha_max;             // alpha clamp
  scalar_t alpha_min;             // fainter contributions are skipped
  scalar_t transmittance_eps;     // blending stops before T would reach this
  scalar_t* acc;                  // [B, H, W, K] out: blended features
  scalar_t* transmittance;        // [B, H, W] out: T_final
  int64_t* last;                  // [B, H, W] out: end of the blended part of the tile's list
};

template <typename scalar_t>
struct RasterBackwardParams {
  RasterParams<scalar_t> fwd;           // forward inputs and outputs (acc unused)
  const scalar_t* v_acc;                // [B, H, W, K] dL/dacc
  const scalar_t* v_transmittance;      // [B, H, W] dL/dT_final
  // CPU: one gradient slot per entry of the sorted lists (summed per Gaussian afterwards);
  // CUDA: per-Gaussian gradients accumulated with atomics.
  scalar_t* v_means2d;                  // [M or B * N, 2] out
  scalar_t* v_conics;                   // [M or B * N, 3] out
  scalar_t* v_features;                 // [M or B * N, K] out
  scalar_t* v_opacities;                // [M or B * N] out
};

// The Gaussian's exponent at pixel centre (px, py).
template <typename scalar_t>
R3D_HD scalar_t splat_sigma(scalar_t mx, scalar_t my, const scalar_t* conic, scalar_t px, scalar_t py) {
  const scalar_t dx = mx - px, dy = my - py;
  return scalar_t(0.5) * (conic[0] * dx * dx + conic[2] * dy * dy) + conic[1] * dx * dy;
}

// Alpha from the exponent; false when the contribution is skipped.
template <typename scalar_t>
R3D_HD bool splat_alpha_from_sigma(scalar_t sigma, scalar_t opacity, scalar_t alpha_max, scalar_t alpha_min,
                                   scalar_t& alpha, scalar_t& gauss, bool& clamped) {
  if (sigma < scalar_t(0)) return false;
  gauss = exp_neg(sigma);
  const scalar_t raw = opacity * gauss;
  clamped = raw > alpha_max;
  alpha = clamped ? alpha_max : raw;
  return alpha >= alpha_min;
}

// An exponent above this cannot reach alpha_min: a filter that saves the exponential (its
// slack of 1e-5 is far above exp's rounding, so it never skips a pair the exact test keeps).
// With alpha_min 0 every pair with sigma >= 0 is blended, a zero opacity too, as the exact
// test does: no limit.
template <typename scalar_t>
R3D_HD scalar_t splat_sigma_limit(scalar_t opacity, scalar_t alpha_min) {
  if (!(alpha_min > scalar_t(0))) return scalar_t(INFINITY);
  return opacity > scalar_t(0) ? log(opacity / alpha_min) + scalar_t(1e-5) : scalar_t(-1);
}

// Alpha of Gaussian g at pixel centre (px, py); false when it is skipped.
template <typename scalar_t>
R3D_HD bool splat_alpha(const RasterParams<scalar_t>& p, int64_t g, scalar_t px, scalar_t py, scalar_t& alpha,
                        scalar_t& gauss, bool& clamped) {
  const scalar_t sigma = splat_sigma(p.means2d[2 * g], p.means2d[2 * g + 1], p.conics + 3 * g, px, py);
  return splat_alpha_from_sigma(sigma, p.opacities[g], p.alpha_max, p.alpha_min, alpha, gauss, clamped);
}

// dL/d(mean2d, conic, opacity) of Gaussian g at (px, py) given dL/dalpha.
template <typename scalar_t>
R3D_HD void splat_alpha_vjp(const RasterParams<scalar_t>& p, int64_t g, scalar_t px, scalar_t py, scalar_t v_alpha,
                            scalar_t alpha, scalar_t gauss, bool clamped, scalar_t v_mean[2], scalar_t v_conic[3],
                            scalar_t& v_opacity) {
  if (clamped) {
    v_mean[0] = v_mean[1] = v_conic[0] = v_conic[1] = v_conic[2] = v_opacity = scalar_t(0);
    return;
  }
  const scalar_t dx = p.means2d[2 * g] - px, dy = p.means2d[2 * g + 1] - py;
  const scalar_t* con = p.conics + 3 * g;
  const scalar_t v_sigma = -alpha * v_alpha;  // alpha = o e^-sigma
  v_opacity = gauss * v_alpha;
  v_conic[0] = scalar_t(0.5) * v_sigma * dx * dx;
  v_conic[1] = v_sigma * dx * dy;
  v_conic[2] = scalar_t(0.5) * v_sigma * dy * dy;
  v_mean[0] = v_sigma * (con[0] * dx + con[1] * dy);
  v_mean[1] = v_sigma * (con[1] * dx + con[2] * dy);
}

template <typename scalar_t>
void raster_forward_cuda(const RasterParams<scalar_t>& p, void* stream);
template <typename scalar_t>
void raster_backward_cuda(const RasterBackwardParams<scalar_t>& p, void* stream);

}  // namespace render3d
