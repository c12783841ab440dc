// CUDA registration of Gaussian projection; kernels in project_kernel.cu.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "project_torch.h"

namespace render3d {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_fwd_cuda(
    const at::Tensor& means, const std::optional<at::Tensor>& quats, const std::optional<at::Tensor>& scales,
    const std::optional<at::Tensor>& covars, const std::optional<at::Tensor>& opacities, const at::Tensor& viewmats,
    const at::Tensor& intrinsics, int64_t width, int64_t height, double near_plane, double far_plane, double eps2d,
    double alpha_min, bool antialiased) {
  check_cuda(means, "render3d::project_fwd", "means");
  const c10::cuda::CUDAGuard guard(means.device());
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  const ProjectArgs a{means, quats, scales, covars, opacities, viewmats, intrinsics, width, height,
                      near_plane, far_plane, eps2d, alpha_min, antialiased};
  return project_forward_torch(a, [&](const auto& p) {
    project_forward_cuda(p, stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_bwd_cuda(
    const at::Tensor& means, const std::optional<at::Tensor>& quats, const std::optional<at::Tensor>& scales,
    const std::optional<at::Tensor>& covars, const std::optional<at::Tensor>& opacities, const at::Tensor& viewmats,
    const at::Tensor& intrinsics, int64_t width, int64_t height, double near_plane, double far_plane, double eps2d,
    double alpha_min, bool antialiased, const at::Tensor& radii, const at::Tensor& conics,
    const at::Tensor& compensations, const at::Tensor& v_means2d, const at::Tensor& v_depths,
    const at::Tensor& v_conics, const at::Tensor& v_compensations) {
  check_cuda(means, "render3d::project_bwd", "means");
  const c10::cuda::CUDAGuard guard(means.device());
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  const ProjectArgs a{means, quats, scales, covars, opacities, viewmats, intrinsics, width, height,
                      near_plane, far_plane, eps2d, alpha_min, antialiased};
  return project_backward_torch(a, radii, conics, compensations, v_means2d, v_depths, v_conics, v_compensations,
                                [&](const auto& p) {
                                  project_backward_cuda(p, stream);
                                  C10_CUDA_KERNEL_LAUNCH_CHECK();
                                });
}

}  // namespace

TORCH_LIBRARY_IMPL(render3d, CUDA, m) {
  m.impl("project_fwd", &project_fwd_cuda);
  m.impl("project_bwd", &project_bwd_cuda);
}

}  // namespace render3d
