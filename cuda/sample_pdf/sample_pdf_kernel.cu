// CUDA kernels of inverse-CDF sampling: one thread per ray builds the CDF, then one thread
// per (ray, sample) inverts it.
#include <cuda_runtime.h>

#include "sample_pdf.h"
#include "render3d/launch.h"

namespace render3d {
namespace {

template <typename scalar_t>
__global__ void sample_pdf_cdf_kernel(SamplePdfParams<scalar_t> p) {
  const int64_t ray = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ray < p.n_rays) sample_pdf_build_cdf(p, ray);
}

template <typename scalar_t>
__global__ void sample_pdf_invert_kernel(SamplePdfParams<scalar_t> p) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= p.n_rays * p.n_samples) return;
  sample_pdf_invert(p, idx / p.n_samples, idx % p.n_samples);
}

}  // namespace

template <typename scalar_t>
void sample_pdf_cuda(const SamplePdfParams<scalar_t>& p, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  if (p.n_rays == 0) return;
  sample_pdf_cdf_kernel<<<blocks_for(p.n_rays), kThreads, 0, s>>>(p);
  const int64_t n = p.n_rays * p.n_samples;
  if (n > 0) sample_pdf_invert_kernel<<<blocks_for(n), kThreads, 0, s>>>(p);
}

template void sample_pdf_cuda<float>(const SamplePdfParams<float>&, void*);
template void sample_pdf_cuda<double>(const SamplePdfParams<double>&, void*);

}  // namespace render3d
