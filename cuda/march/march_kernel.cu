// CUDA kernels of occupancy-grid marching: one thread per ray, a count pass and a fill pass.
#include <cuda_runtime.h>

#include "march.h"
#include "render3d/launch.h"

namespace render3d {
namespace {

template <typename scalar_t>
__global__ void march_count_kernel(MarchParams<scalar_t> p) {
  const int64_t ray = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ray < p.n_rays) p.counts[ray] = march_ray<scalar_t, false>(p, ray);
}

template <typename scalar_t>
__global__ void march_fill_kernel(MarchParams<scalar_t> p) {
  const int64_t ray = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ray < p.n_rays) march_ray<scalar_t, true>(p, ray);
}

}  // namespace

template <typename scalar_t>
void march_count_cuda(const MarchParams<scalar_t>& p, void* stream) {
  march_count_kernel<<<blocks_for(p.n_rays), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
}

template <typename scalar_t>
void march_fill_cuda(const MarchParams<scalar_t>& p, void* stream) {
  march_fill_kernel<<<blocks_for(p.n_rays), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
}

template void march_count_cuda<float>(const MarchParams<float>&, void*);
template void march_count_cuda<double>(const MarchParams<double>&, void*);
template void march_fill_cuda<float>(const MarchParams<float>&, void*);
template void march_fill_cuda<double>(const MarchParams<double>&, void*);

}  // namespace render3d
