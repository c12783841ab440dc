// CUDA registration of inverse-CDF sampling; kernels in sample_pdf_kernel.cu.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "sample_pdf_torch.h"

namespace render3d {
namespace {

at::Tensor sample_pdf_cuda_impl(const at::Tensor& bins, const at::Tensor& weights, const at::Tensor& u) {
  check_cuda(weights, "render3d::sample_pdf", "weights");
  const c10::cuda::CUDAGuard guard(weights.device());
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  return sample_pdf_torch(bins, weights, u, [&](const auto& p) {
    sample_pdf_cuda(p, stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(render3d, CUDA, m) { m.impl("sample_pdf", &sample_pdf_cuda_impl); }

}  // namespace render3d
