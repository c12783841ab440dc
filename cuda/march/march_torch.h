// Torch glue of occupancy-grid marching shared by the CPU and CUDA registrations: checks,
// the count pass, an exclusive scan of the counts, allocation, the fill pass.
#pragma once

#include <tuple>

#include "march.h"
#include "render3d/torch_glue.h"

namespace render3d {

// `count(p)` fills p.counts; `fill(p)` writes the samples.
template <typename Count, typename Fill>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> occupancy_march_torch(
    const at::Tensor& origins, const at::Tensor& directions, const at::Tensor& t_near, const at::Tensor& t_far,
    const at::Tensor& bitfield, at::ArrayRef<double> center, at::ArrayRef<double> half, int64_t resolution,
    double step_size, double cone_angle, double max_step, int64_t max_samples, Count&& count, Fill&& fill) {
  constexpr const char* fn = "render3d::occupancy_march";
  TORCH_CHECK(origins.dim() == 2 && origins.size(1) == 3, fn, ": argument 'origins' expected shape [R, 3], got ",
              origins.sizes());
  const int64_t n_rays = origins.size(0);
  TORCH_CHECK(origins.scalar_type() == at::kFloat || origins.scalar_type() == at::kDouble, fn,
              ": argument 'origins' expected dtype float32 or float64, got ", origins.scalar_type());
  TORCH_CHECK(origins.is_contiguous(), fn, ": argument 'origins' must be contiguous");
  check_same(directions, origins, fn, "directions");
  TORCH_CHECK(directions.sizes() == origins.sizes(), fn, ": argument 'directions' expected shape ",
              origins.sizes(), ", got ", directions.sizes());
  check_same(t_near, origins, fn, "t_near");
  check_same(t_far, origins, fn, "t_far");
  check_float_1d(t_near, fn, "t_near", n_rays);
  check_float_1d(t_far, fn, "t_far", n_rays);
  TORCH_CHECK(center.size() == 3 && half.size() == 3, fn, ": 'center' and 'half' expected 3 values each");
  TORCH_CHECK(resolution > 0 && resolution % 4 == 0, fn, ": argument 'resolution' expected a positive multiple of 4, got ",
              resolution);
  const int64_t level_bytes = resolution * resolution * resolution / 8;
  TORCH_CHECK(bitfield.dim() == 2 && bitfield.size(1) == level_bytes && bitfield.size(0) >= 1, fn,
              ": argument 'bitfield' expected shape [L, ", level_bytes, "], got ", bitfield.sizes());
  TORCH_CHECK(bitfield.scalar_type() == at::kByte && bitfield.is_contiguous() &&
                  bitfield.device() == origins.device(),
              fn, ": argument 'bitfield' expected a contiguous uint8 tensor on ", origins.device());
  TORCH_CHECK(step_size > 0, fn, ": argument 'step_size' expected a positive number, got ", step_size);

  auto counts = at::zeros({n_rays}, origins.options().dtype(at::kLong));
  auto offsets = at::zeros({n_rays + 1}, origins.options().dtype(at::kLong));
  at::Tensor ray_ids, t_starts, t_ends;
  AT_DISPATCH_FLOATING_TYPES(origins.scalar_type(), "occupancy_march", [&] {
    MarchParams<scalar_t> p;
    p.n_rays = n_rays;
    p.origins = origins.data_ptr<scalar_t>();
    p.directions = directions.data_ptr<scalar_t>();
    p.t_near = t_near.data_ptr<scalar_t>();
    p.t_far = t_far.data_ptr<scalar_t>();
    p.bitfield = bitfield.data_ptr<uint8_t>();
    p.levels = static_cast<int32_t>(bitfield.size(0));
    p.resolution = static_cast<int32_t>(resolution);
    for (int a = 0; a < 3; ++a) {
      p.center[a] = static_cast<scalar_t>(center[a]);
      p.half[a] = static_cast<scalar_t>(half[a]);
    }
    p.step_size = static_cast<scalar_t>(step_size);
    p.cone_angle = static_cast<scalar_t>(cone_angle);
    p.max_step = static_cast<scalar_t>(max_step);
    p.max_samples = max_samples;
    p.counts = counts.data_ptr<int64_t>();
    p.offsets = nullptr;
    p.ray_ids = nullptr;
    p.t_starts = nullptr;
    p.t_ends = nullptr;
    if (n_rays > 0) count(p);
    offsets.narrow(0, 1, n_rays).copy_(counts.cumsum(0));
    const int64_t n_samples = offsets[n_rays].item<int64_t>();
    ray_ids = at::empty({n_samples}, counts.options());
    t_starts = at::empty({n_samples}, origins.options());
    t_ends = at::empty({n_samples}, origins.options());
    if (n_samples > 0) {
      p.offsets = offsets.data_ptr<int64_t>();
      p.ray_ids = ray_ids.data_ptr<int64_t>();
      p.t_starts = t_starts.data_ptr<scalar_t>();
      p.t_ends = t_ends.data_ptr<scalar_t>();
      fill(p);
    }
  });
  return {offsets, ray_ids, t_starts, t_ends};
}

}  // namespace render3d
