// Torch glue of the compositing op shared by the CPU and CUDA registrations: checks,
// allocation and dtype dispatch. `run` receives the filled params struct.
#pragma once

#include <tuple>

#include "composite.h"
#include "render3d/torch_glue.h"

namespace render3d {

template <typename Run>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> composite_forward_torch(
    const at::Tensor& sigmas, const at::Tensor& values, const at::Tensor& t_starts, const at::Tensor& t_ends,
    const at::Tensor& offsets, Run&& run) {
  constexpr const char* fn = "render3d::composite_fwd";
  TORCH_CHECK(sigmas.dim() == 1, fn, ": argument 'sigmas' expected shape [N], got ", sigmas.sizes());
  const int64_t n = sigmas.size(0);
  TORCH_CHECK(values.dim() == 2 && values.size(0) == n, fn, ": argument 'values' expected shape [", n,
              ", C], got ", values.sizes());
  TORCH_CHECK(sigmas.scalar_type() == at::kFloat || sigmas.scalar_type() == at::kDouble, fn,
              ": argument 'sigmas' expected dtype float32 or float64, got ", sigmas.scalar_type());
  TORCH_CHECK(sigmas.is_contiguous(), fn, ": argument 'sigmas' must be contiguous");
  check_same(values, sigmas, fn, "values");
  check_same(t_starts, sigmas, fn, "t_starts");
  check_same(t_ends, sigmas, fn, "t_ends");
  check_float_1d(t_starts, fn, "t_starts", n);
  check_float_1d(t_ends, fn, "t_ends", n);
  check_offsets(offsets, sigmas, fn);

  const int64_t n_rays = offsets.size(0) - 1;
  const int64_t n_channels = values.size(1);
  auto acc = at::zeros({n_rays, n_channels}, sigmas.options());
  auto depth_sum = at::zeros({n_rays}, sigmas.options());
  auto opacity = at::zeros({n_rays}, sigmas.options());
  auto weights = at::empty({n}, sigmas.options());  // written for every sample
  if (n_rays > 0) {
    AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "composite_fwd", [&] {
      CompositeForwardParams<scalar_t> p;
      p.n_rays = n_rays;
      p.n_channels = n_channels;
      p.offsets = offsets.data_ptr<int64_t>();
      p.sigmas = sigmas.data_ptr<scalar_t>();
      p.values = values.data_ptr<scalar_t>();
      p.t_starts = t_starts.data_ptr<scalar_t>();
      p.t_ends = t_ends.data_ptr<scalar_t>();
      p.acc = acc.data_ptr<scalar_t>();
      p.depth_sum = depth_sum.data_ptr<scalar_t>();
      p.opacity = opacity.data_ptr<scalar_t>();
      p.weights = weights.data_ptr<scalar_t>();
      run(p);
    });
  }
  return {acc, depth_sum, opacity, weights};
}

template <typename Run>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> composite_backward_torch(
    const at::Tensor& grad_acc, const at::Tensor& grad_depth_sum, const at::Tensor& grad_opacity,
    const std::optional<at::Tensor>& grad_weights, const at::Tensor& sigmas, const at::Tensor& values,
    const at::Tensor& t_starts, const at::Tensor& t_ends, const at::Tensor& offsets, const at::Tensor& weights,
    bool values_grad, bool t_grads, Run&& run) {
  constexpr const char* fn = "render3d::composite_bwd";
  TORCH_CHECK(sigmas.dim() == 1, fn, ": argument 'sigmas' expected shape [N], got ", sigmas.sizes());
  TORCH_CHECK(sigmas.scalar_type() == at::kFloat || sigmas.scalar_type() == at::kDouble, fn,
              ": argument 'sigmas' expected dtype float32 or float64, got ", sigmas.scalar_type());
  TORCH_CHECK(sigmas.is_contiguous(), fn, ": argument 'sigmas' must be contiguous");
  const int64_t n = sigmas.size(0);
  check_offsets(offsets, sigmas, fn);
  const int64_t n_rays = offsets.size(0) - 1;
  TORCH_CHECK(values.dim() == 2 && values.size(0) == n, fn, ": argument 'values' expected shape [", n,
              ", C], got ", values.sizes());
  const int64_t n_channels = values.size(1);
  check_same(values, sigmas, fn, "values");
  for (auto [t, name] : {Named{&t_starts, "t_starts"}, Named{&t_ends, "t_ends"}, Named{&weights, "weights"}}) {
    check_same(*t, sigmas, fn, name);
    check_float_1d(*t, fn, name, n);
  }
  TORCH_CHECK(grad_acc.dim() == 2 && grad_acc.size(0) == n_rays && grad_acc.size(1) == n_channels, fn,
              ": argument 'grad_acc' expected shape [", n_rays, ", ", n_channels, "], got ", grad_acc.sizes());
  check_same(grad_acc, sigmas, fn, "grad_acc");
  check_same(grad_depth_sum, sigmas, fn, "grad_depth_sum");
  check_same(grad_opacity, sigmas, fn, "grad_opacity");
  check_float_1d(grad_depth_sum, fn, "grad_depth_sum", n_rays);
  check_float_1d(grad_opacity, fn, "grad_opacity", n_rays);
  const bool has_grad_weights = grad_weights.has_value() && grad_weights->defined();
  if (has_grad_weights) {
    check_same(*grad_weights, sigmas, fn, "grad_weights");
    check_float_1d(*grad_weights, fn, "grad_weights", n);
  }

  // Every sample belongs to a ray (the Python entry checks offsets[0] == 0 and offsets[R] == N),
  // so the kernels write every element: no zero-fill pass over [N, C]. Gradients nobody asked
  // for are not computed (returned with zero size): they would cost a fresh [N, C] buffer.
  auto grad_sigmas = at::empty({n}, sigmas.options());
  auto grad_values = values_grad ? at::empty({n, n_channels}, sigmas.options()) : at::empty({0}, sigmas.options());
  auto grad_t_starts = at::empty({t_grads ? n : 0}, sigmas.options());
  auto grad_t_ends = at::empty({t_grads ? n : 0}, sigmas.options());
  auto scratch = at::empty({n}, sigmas.options());
  if (n > 0) {
    AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "composite_bwd", [&] {
      CompositeBackwardParams<scalar_t> p;
      p.n_rays = n_rays;
      p.n_channels = n_channels;
      p.offsets = offsets.data_ptr<int64_t>();
      p.sigmas = sigmas.data_ptr<scalar_t>();
      p.values = values.data_ptr<scalar_t>();
      p.t_starts = t_starts.data_ptr<scalar_t>();
      p.t_ends = t_ends.data_ptr<scalar_t>();
      p.weights = weights.data_ptr<scalar_t>();
      p.grad_acc = grad_acc.data_ptr<scalar_t>();
      p.grad_depth_sum = grad_depth_sum.data_ptr<scalar_t>();
      p.grad_opacity = grad_opacity.data_ptr<scalar_t>();
      p.grad_weights = has_grad_weights ? grad_weights->data_ptr<scalar_t>() : nullptr;
      p.grad_weight_total = scratch.data_ptr<scalar_t>();
      p.grad_sigmas = grad_sigmas.data_ptr<scalar_t>();
      p.grad_values = values_grad ? grad_values.data_ptr<scalar_t>() : nullptr;
      p.grad_t_starts = t_grads ? grad_t_starts.data_ptr<scalar_t>() : nullptr;
      p.grad_t_ends = t_grads ? grad_t_ends.data_ptr<scalar_t>() : nullptr;
      run(p, n);
    });
  }
  return {grad_sigmas, grad_values, grad_t_starts, grad_t_ends};
}

}  // namespace render3d
