// Torch glue of Gaussian rasterization shared by the CPU and CUDA registrations.
#pragma once

#include <tuple>

#include "raster.h"
#include "render3d/torch_glue.h"

namespace render3d {

struct RasterArgs {
  const at::Tensor& means2d;       // [B, N, 2]
  const at::Tensor& conics;        // [B, N, 3]
  const at::Tensor& features;      // [B, N, K]
  const at::Tensor& opacities;     // [B, N]
  const at::Tensor& tile_offsets;  // [B * tiles + 1] int64
  const at::Tensor& ids;           // [M] int32
  int64_t width, height;
  double alpha_max, alpha_min, transmittance_eps;
};

inline int64_t tiles_along(int64_t pixels) { return (pixels + kTileSize - 1) / kTileSize; }

inline void check_raster_args(const RasterArgs& a, const char* fn) {
  TORCH_CHECK(a.means2d.dim() == 3 && a.means2d.size(2) == 2, fn,
              ": argument 'means2d' expected shape [B, N, 2], got ", a.means2d.sizes());
  TORCH_CHECK(a.means2d.scalar_type() == at::kFloat || a.means2d.scalar_type() == at::kDouble, fn,
              ": argument 'means2d' expected dtype float32 or float64, got ", a.means2d.scalar_type());
  TORCH_CHECK(a.means2d.is_contiguous(), fn, ": argument 'means2d' must be contiguous");
  const int64_t B = a.means2d.size(0), N = a.means2d.size(1);
  check_same(a.conics, a.means2d, fn, "conics");
  check_same(a.features, a.means2d, fn, "features");
  check_same(a.opacities, a.means2d, fn, "opacities");
  TORCH_CHECK(a.conics.sizes() == at::IntArrayRef({B, N, 3}), fn, ": argument 'conics' expected [B, N, 3], got ",
              a.conics.sizes());
  TORCH_CHECK(a.features.dim() == 3 && a.features.size(0) == B && a.features.size(1) == N, fn,
              ": argument 'features' expected [B, N, K], got ", a.features.sizes());
  TORCH_CHECK(a.opacities.sizes() == at::IntArrayRef({B, N}), fn, ": argument 'opacities' expected [B, N], got ",
              a.opacities.sizes());
  const int64_t tiles = tiles_along(a.width) * tiles_along(a.height);
  TORCH_CHECK(a.tile_offsets.scalar_type() == at::kLong && a.tile_offsets.is_contiguous() &&
                  a.tile_offsets.numel() == B * tiles + 1,
              fn, ": argument 'tile_offsets' expected a contiguous int64 tensor [", B * tiles + 1, "], got ",
              a.tile_offsets.sizes());
  TORCH_CHECK(a.ids.scalar_type() == at::kInt && a.ids.is_contiguous() && a.ids.dim() == 1, fn,
              ": argument 'ids' expected a contiguous int32 tensor [M]");
  check_device(a.tile_offsets, a.means2d, fn, "tile_offsets");
  check_device(a.ids, a.means2d, fn, "ids");
}

template <typename scalar_t>
RasterParams<scalar_t> raster_params(const RasterArgs& a) {
  RasterParams<scalar_t> p{};
  p.n_images = a.means2d.size(0);
  p.n_gaussians = a.means2d.size(1);
  p.n_channels = a.features.size(2);
  p.width = static_cast<int32_t>(a.width);
  p.height = static_cast<int32_t>(a.height);
  p.tiles_x = static_cast<int32_t>(tiles_along(a.width));
  p.tiles_y = static_cast<int32_t>(tiles_along(a.height));
  p.means2d = a.means2d.data_ptr<scalar_t>();
  p.conics = a.conics.data_ptr<scalar_t>();
  p.features = a.features.data_ptr<scalar_t>();
  p.opacities = a.opacities.data_ptr<scalar_t>();
  p.tile_offsets = a.tile_offsets.data_ptr<int64_t>();
  p.ids = a.ids.data_ptr<int32_t>();
  p.alpha_max = static_cast<scalar_t>(a.alpha_max);
  p.alpha_min = static_cast<scalar_t>(a.alpha_min);
  p.transmittance_eps = static_cast<scalar_t>(a.transmittance_eps);
  return p;
}

// Returns acc [B, H, W, K], transmittance [B, H, W], last [B, H, W] int64.
template <typename Run>
std::tuple<at::Tensor, at::Tensor, at::Tensor> raster_forward_torch(const RasterArgs& a, Run&& run) {
  check_raster_args(a, "render3d::raster_fwd");
  const int64_t B = a.means2d.size(0), K = a.features.size(2);
  auto opts = a.means2d.options();
  auto acc = at::zeros({B, a.height, a.width, K}, opts);  // pixels off every list stay 0
  auto transmittance = at::ones({B, a.height, a.width}, opts);
  auto last = at::zeros({B, a.height, a.width}, opts.dtype(at::kLong));
  if (B > 0 && a.width > 0 && a.height > 0) {
    AT_DISPATCH_FLOATING_TYPES(a.means2d.scalar_type(), "raster_fwd", [&] {
      auto p = raster_params<scalar_t>(a);
      p.acc = acc.data_ptr<scalar_t>();
      p.transmittance = transmittance.data_ptr<scalar_t>();
      p.last = last.data_ptr<int64_t>();
      run(p);
    });
  }
  return {acc, transmittance, last};
}

// Returns v_means2d [B, N, 2], v_conics [B, N, 3], v_features [B, N, K], v_opacities [B, N].
// With `per_entry`, `run` writes one gradient per entry of the sorted lists and they are summed
// per Gaussian here (deterministic); otherwise `run` accumulates per Gaussian itself.
template <typename Run>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> raster_backward_torch(
    const RasterArgs& a, const at::Tensor& transmittance, const at::Tensor& last, const at::Tensor& v_acc,
    const at::Tensor& v_transmittance, bool per_entry, Run&& run) {
  constexpr const char* fn = "render3d::raster_bwd";
  check_raster_args(a, fn);
  const int64_t B = a.means2d.size(0), N = a.means2d.size(1), K = a.features.size(2);
  check_same(transmittance, a.means2d, fn, "transmittance");
  check_same(v_acc, a.means2d, fn, "v_acc");
  check_same(v_transmittance, a.means2d, fn, "v_transmittance");
  check_device(last, a.means2d, fn, "last");
  check_shape(v_acc, {B, a.height, a.width, K}, fn, "v_acc");
  for (auto [t, name] : {Named{&transmittance, "transmittance"}, Named{&last, "last"},
                         Named{&v_transmittance, "v_transmittance"}})
    check_shape(*t, {B, a.height, a.width}, fn, name);
  TORCH_CHECK(last.scalar_type() == at::kLong && last.is_contiguous(), fn, ": argument 'last' expected int64");
  const int64_t rows = per_entry ? a.ids.size(0) : B * N;
  auto opts = a.means2d.options();
  auto v_means2d = at::zeros({rows, 2}, opts);
  auto v_conics = at::zeros({rows, 3}, opts);
  auto v_features = at::zeros({rows, K}, opts);
  auto v_opacities = at::zeros({rows}, opts);
  if (B > 0 && a.ids.size(0) > 0) {
    AT_DISPATCH_FLOATING_TYPES(a.means2d.scalar_type(), "raster_bwd", [&] {
      RasterBackwardParams<scalar_t> p{};
      p.fwd = raster_params<scalar_t>(a);
      p.fwd.transmittance = const_cast<scalar_t*>(transmittance.data_ptr<scalar_t>());
      p.fwd.last = const_cast<int64_t*>(last.data_ptr<int64_t>());
      p.v_acc = v_acc.data_ptr<scalar_t>();
      p.v_transmittance = v_transmittance.data_ptr<scalar_t>();
      p.v_means2d = v_means2d.data_ptr<scalar_t>();
      p.v_conics = v_conics.data_ptr<scalar_t>();
      p.v_features = v_features.data_ptr<scalar_t>();
      p.v_opacities = v_opacities.data_ptr<scalar_t>();
      run(p);
    });
  }
  if (per_entry) {
    auto index = a.ids.to(at::kLong);
    v_means2d = at::zeros({B * N, 2}, opts).index_add_(0, index, v_means2d);
    v_conics = at::zeros({B * N, 3}, opts).index_add_(0, index, v_conics);
    v_features = at::zeros({B * N, K}, opts).index_add_(0, index, v_features);
    v_opacities = at::zeros({B * N}, opts).index_add_(0, index, v_opacities);
  }
  return {v_means2d.view({B, N, 2}), v_conics.view({B, N, 3}), v_features.view({B, N, K}), v_opacities.view({B, N})};
}

}  // namespace render3d
