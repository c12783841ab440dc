// CPU implementation of Gaussian projection: at::parallel_for over (image, Gaussian).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "project_torch.h"

namespace render3d {
namespace {

constexpr int64_t kGrain = 1024;

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_fwd_cpu(
    const at::Tensor& means, const std::optional<at::Tensor>& quats, const std::optional<at::Tensor>& scales,
    const std::optional<at::Tensor>& covars, const std::optional<at::Tensor>& opacities, const at::Tensor& viewmats,
    const at::Tensor& intrinsics, int64_t width, int64_t height, double near_plane, double far_plane, double eps2d,
    double alpha_min, bool antialiased) {
  const ProjectArgs a{means, quats, scales, covars, opacities, viewmats, intrinsics, width, height,
                      near_plane, far_plane, eps2d, alpha_min, antialiased};
  return project_forward_torch(a, [&](const auto& p) {
    at::parallel_for(0, p.n_images * p.n_gaussians, kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t g = begin; g < end; ++g) project_forward(p, g / p.n_gaussians, g % p.n_gaussians);
    });
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_bwd_cpu(
    const at::Tensor& means, const std::optional<at::Tensor>& quats, const std::optional<at::Tensor>& scales,
    const std::optional<at::Tensor>& covars, const std::optional<at::Tensor>& opacities, const at::Tensor& viewmats,
    const at::Tensor& intrinsics, int64_t width, int64_t height, double near_plane, double far_plane, double eps2d,
    double alpha_min, bool antialiased, const at::Tensor& radii, const at::Tensor& conics,
    const at::Tensor& compensations, const at::Tensor& v_means2d, const at::Tensor& v_depths,
    const at::Tensor& v_conics, const at::Tensor& v_compensations) {
  const ProjectArgs a{means, quats, scales, covars, opacities, viewmats, intrinsics, width, height,
                      near_plane, far_plane, eps2d, alpha_min, antialiased};
  return project_backward_torch(a, radii, conics, compensations, v_means2d, v_depths, v_conics, v_compensations,
                                [&](const auto& p) {
                                  const int64_t N = p.fwd.n_gaussians;
                                  at::parallel_for(0, p.fwd.n_images * N, kGrain, [&](int64_t begin, int64_t end) {
                                    for (int64_t g = begin; g < end; ++g) project_backward(p, g / N, g % N);
                                  });
                                });
}

}  // namespace

TORCH_LIBRARY_IMPL(render3d, CPU, m) {
  m.impl("project_fwd", &project_fwd_cpu);
  m.impl("project_bwd", &project_bwd_cpu);
}

}  // namespace render3d
