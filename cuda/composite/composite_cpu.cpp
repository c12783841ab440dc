// CPU implementation of volume compositing: at::parallel_for over rays, each ray walked by
// the shared math of composite.h.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "composite_torch.h"

namespace render3d {
namespace {

template <typename scalar_t>
void composite_forward_cpu_ray(const CompositeForwardParams<scalar_t>& p, int64_t ray) {
  const int64_t C = p.n_channels;
  scalar_t* acc = p.acc + ray * C;  // zero-initialised by the glue
  scalar_t depth_sum = scalar_t(0), opacity = scalar_t(0);
  composite_walk(p.sigmas, p.t_starts, p.t_ends, p.offsets[ray], p.offsets[ray + 1], [&](int64_t i, scalar_t w) {
    p.weights[i] = w;
    depth_sum += w * scalar_t(0.5) * (p.t_starts[i] + p.t_ends[i]);
    opacity += w;
    const scalar_t* v = p.values + i * C;
    for (int64_t c = 0; c < C; ++c) acc[c] += w * v[c];
  });
  p.depth_sum[ray] = depth_sum;
  p.opacity[ray] = opacity;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> composite_fwd_cpu(
    const at::Tensor& sigmas, const at::Tensor& values, const at::Tensor& t_starts, const at::Tensor& t_ends,
    const at::Tensor& offsets) {
  return composite_forward_torch(sigmas, values, t_starts, t_ends, offsets, [&](const auto& p) {
    const int64_t per_ray = (sigmas.size(0) / std::max<int64_t>(1, p.n_rays) + 1) * (p.n_channels + 4);
    at::parallel_for(0, p.n_rays, grain_for(per_ray), [&](int64_t begin, int64_t end) {
      for (int64_t ray = begin; ray < end; ++ray) composite_forward_cpu_ray(p, ray);
    });
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> composite_bwd_cpu(
    const at::Tensor& grad_acc, const at::Tensor& grad_depth_sum, const at::Tensor& grad_opacity,
    const std::optional<at::Tensor>& grad_weights, const at::Tensor& sigmas, const at::Tensor& values,
    const at::Tensor& t_starts, const at::Tensor& t_ends, const at::Tensor& offsets, const at::Tensor& weights,
    bool values_grad, bool t_grads) {
  return composite_backward_torch(
      grad_acc, grad_depth_sum, grad_opacity, grad_weights, sigmas, values, t_starts, t_ends, offsets, weights,
      values_grad, t_grads, [&](const auto& p, int64_t n_samples) {
        const int64_t per_ray = (n_samples / std::max<int64_t>(1, p.n_rays) + 1) * (2 * p.n_channels + 8);
        at::parallel_for(0, p.n_rays, grain_for(per_ray), [&](int64_t begin, int64_t end) {
          for (int64_t ray = begin; ray < end; ++ray) {
            for (int64_t i = p.offsets[ray]; i < p.offsets[ray + 1]; ++i) composite_backward_sample(p, ray, i);
            composite_backward_ray(p, ray);
          }
        });
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(render3d, CPU, m) {
  m.impl("composite_fwd", &composite_fwd_cpu);
  m.impl("composite_bwd", &composite_bwd_cpu);
}

}  // namespace render3d
