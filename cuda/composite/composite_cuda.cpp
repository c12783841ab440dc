// CUDA registration of volume compositing: the shared glue, a device guard and the stream;
// the kernels are in composite_kernel.cu (plain CUDA, no torch headers).
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "composite_torch.h"

namespace render3d {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> composite_fwd_cuda(
    const at::Tensor& sigmas, const at::Tensor& values, const at::Tensor& t_starts, const at::Tensor& t_ends,
    const at::Tensor& offsets) {
  check_cuda(sigmas, "render3d::composite_fwd", "sigmas");
  const c10::cuda::CUDAGuard guard(sigmas.device());
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  return composite_forward_torch(sigmas, values, t_starts, t_ends, offsets,
                                 [&](const auto& p) {
                                   composite_forward_cuda(p, stream);
                                   C10_CUDA_KERNEL_LAUNCH_CHECK();
                                 });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> composite_bwd_cuda(
    const at::Tensor& grad_acc, const at::Tensor& grad_depth_sum, const at::Tensor& grad_opacity,
    const std::optional<at::Tensor>& grad_weights, const at::Tensor& sigmas, const at::Tensor& values,
    const at::Tensor& t_starts, const at::Tensor& t_ends, const at::Tensor& offsets, const at::Tensor& weights,
    bool values_grad, bool t_grads) {
  check_cuda(sigmas, "render3d::composite_bwd", "sigmas");
  const c10::cuda::CUDAGuard guard(sigmas.device());
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  return composite_backward_torch(grad_acc, grad_depth_sum, grad_opacity, grad_weights, sigmas, values, t_starts,
                                  t_ends, offsets, weights, values_grad, t_grads,
                                  [&](const auto& p, int64_t n_samples) {
                                    composite_backward_cuda(p, n_samples, stream);
                                    C10_CUDA_KERNEL_LAUNCH_CHECK();
                                  });
}

}  // namespace

TORCH_LIBRARY_IMPL(render3d, CUDA, m) {
  m.impl("composite_fwd", &composite_fwd_cuda);
  m.impl("composite_bwd", &composite_bwd_cuda);
}

}  // namespace render3d
