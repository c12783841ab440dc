// CPU implementation of occupancy-grid marching: at::parallel_for over rays, count then fill.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "march_torch.h"

namespace render3d {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> occupancy_march_cpu(
    const at::Tensor& origins, const at::Tensor& directions, const at::Tensor& t_near, const at::Tensor& t_far,
    const at::Tensor& bitfield, at::ArrayRef<double> center, at::ArrayRef<double> half, int64_t resolution,
    double step_size, double cone_angle, double max_step, int64_t max_samples) {
  constexpr int64_t kGrain = 64;
  return occupancy_march_torch(
      origins, directions, t_near, t_far, bitfield, center, half, resolution, step_size, cone_angle, max_step,
      max_samples,
      [&](const auto& p) {
        at::parallel_for(0, p.n_rays, kGrain, [&](int64_t begin, int64_t end) {
          for (int64_t ray = begin; ray < end; ++ray) p.counts[ray] = march_ray<decltype(p.step_size), false>(p, ray);
        });
      },
      [&](const auto& p) {
        at::parallel_for(0, p.n_rays, kGrain, [&](int64_t begin, int64_t end) {
          for (int64_t ray = begin; ray < end; ++ray) march_ray<decltype(p.step_size), true>(p, ray);
        });
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(render3d, CPU, m) { m.impl("occupancy_march", &occupancy_march_cpu); }

}  // namespace render3d
