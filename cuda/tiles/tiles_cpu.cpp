// CPU implementation of tile binning: parallel count and fill over Gaussians, then a stable sort.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "tiles_torch.h"

namespace render3d {
namespace {

constexpr int64_t kGrain = 2048;

std::tuple<at::Tensor, at::Tensor, at::Tensor> isect_tiles_cpu(const at::Tensor& means2d, const at::Tensor& radii,
                                                               const at::Tensor& depths, int64_t tiles_x,
                                                               int64_t tiles_y) {
  return isect_tiles_torch(
      means2d, radii, depths, tiles_x, tiles_y,
      [&](const auto& p) {
        at::parallel_for(0, p.n_images * p.n_gaussians, kGrain, [&](int64_t begin, int64_t end) {
          for (int64_t g = begin; g < end; ++g) tile_count(p, g);
        });
      },
      [&](const auto& p) {
        at::parallel_for(0, p.n_images * p.n_gaussians, kGrain, [&](int64_t begin, int64_t end) {
          for (int64_t g = begin; g < end; ++g) tile_fill(p, g);
        });
      },
      [](const at::Tensor& keys, const at::Tensor& ids, int /*bits*/) {
        auto [sorted, order] = at::sort(keys, /*stable=*/true, /*dim=*/0, /*descending=*/false);
        return std::make_tuple(sorted, ids.index_select(0, order));
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(render3d, CPU, m) { m.impl("isect_tiles", &isect_tiles_cpu); }

}  // namespace render3d
