// CUDA registration of Gaussian rasterization; kernels in raster_kernel.cu.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "raster_torch.h"

namespace render3d {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> raster_fwd_cuda(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& features, const at::Tensor& opacities,
    const at::Tensor& tile_offsets, const at::Tensor& ids, int64_t width, int64_t height, double alpha_max,
    double alpha_min, double transmittance_eps) {
  check_cuda(means2d, "render3d::raster_fwd", "means2d");
  const c10::cuda::CUDAGuard guard(means2d.device());
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  const RasterArgs a{means2d, conics, features, opacities, tile_offsets, ids, width, height,
                     alpha_max, alpha_min, transmittance_eps};
  return raster_forward_torch(a, [&](const auto& p) {
    raster_forward_cuda(p, stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> raster_bwd_cuda(
    const at::Tensor& v_acc, const at::Tensor& v_transmittance, const at::Tensor& means2d, const at::Tensor& conics,
    const at::Tensor& features, const at::Tensor& opacities, const at::Tensor& tile_offsets, const at::Tensor& ids,
    const at::Tensor& transmittance, const at::Tensor& last, int64_t width, int64_t height, double alpha_max,
    double alpha_min, double transmittance_eps) {
  check_cuda(means2d, "render3d::raster_bwd", "means2d");
  const c10::cuda::CUDAGuard guard(means2d.device());
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  const RasterArgs a{means2d, conics, features, opacities, tile_offsets, ids, width, height,
                     alpha_max, alpha_min, transmittance_eps};
  return raster_backward_torch(a, transmittance, last, v_acc, v_transmittance, /*per_entry=*/false,
                               [&](const auto& p) {
                                 raster_backward_cuda(p, stream);
                                 C10_CUDA_KERNEL_LAUNCH_CHECK();
                               });
}

}  // namespace

TORCH_LIBRARY_IMPL(render3d, CUDA, m) {
  m.impl("raster_fwd", &raster_fwd_cuda);
  m.impl("raster_bwd", &raster_bwd_cuda);
}

}  // namespace render3d
