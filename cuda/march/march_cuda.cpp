// CUDA registration of occupancy-grid marching; kernels in march_kernel.cu.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "march_torch.h"

namespace render3d {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> occupancy_march_cuda(
    const at::Tensor& origins, const at::Tensor& directions, const at::Tensor& t_near, const at::Tensor& t_far,
    const at::Tensor& bitfield, at::ArrayRef<double> center, at::ArrayRef<double> half, int64_t resolution,
    double step_size, double cone_angle, double max_step, int64_t max_samples) {
  check_cuda(origins, "render3d::occupancy_march", "origins");
  const c10::cuda::CUDAGuard guard(origins.device());
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  return occupancy_march_torch(
      origins, directions, t_near, t_far, bitfield, center, half, resolution, step_size, cone_angle, max_step,
      max_samples,
      [&](const auto& p) {
        march_count_cuda(p, stream);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      },
      [&](const auto& p) {
        march_fill_cuda(p, stream);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(render3d, CUDA, m) { m.impl("occupancy_march", &occupancy_march_cuda); }

}  // namespace render3d
