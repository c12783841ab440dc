// CUDA kernels of Gaussian projection: one thread per (image, Gaussian).
#include <cuda_runtime.h>

#include "project.h"
#include "render3d/launch.h"

namespace render3d {
namespace {

template <typename scalar_t>
__global__ void project_forward_kernel(ProjectParams<scalar_t> p) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g < p.n_images * p.n_gaussians) project_forward(p, g / p.n_gaussians, g % p.n_gaussians);
}

template <typename scalar_t>
__global__ void project_backward_kernel(ProjectBackwardParams<scalar_t> p) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t n = p.fwd.n_gaussians;
  if (g < p.fwd.n_images * n) project_backward(p, g / n, g % n);
}

}  // namespace

template <typename scalar_t>
void project_forward_cuda(const ProjectParams<scalar_t>& p, void* stream) {
  const int64_t n = p.n_images * p.n_gaussians;
  if (n > 0) project_forward_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
}

template <typename scalar_t>
void project_backward_cuda(const ProjectBackwardParams<scalar_t>& p, void* stream) {
  const int64_t n = p.fwd.n_images * p.fwd.n_gaussians;
  if (n > 0) project_backward_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
}

template void project_forward_cuda<float>(const ProjectParams<float>&, void*);
template void project_forward_cuda<double>(const ProjectParams<double>&, void*);
template void project_backward_cuda<float>(const ProjectBackwardParams<float>&, void*);
template void project_backward_cuda<double>(const ProjectBackwardParams<double>&, void*);

}  // namespace render3d
