// CUDA kernels of tile binning (one thread per Gaussian for count and fill) and the radix sort
// of the keys over only the bits in use (CUB).
#include <cuda_runtime.h>

#include <cub/device/device_radix_sort.cuh>

#include "render3d/launch.h"
#include "tiles.h"

namespace render3d {
namespace {

template <typename scalar_t>
__global__ void tiles_count_kernel(TileParams<scalar_t> p) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g < p.n_images * p.n_gaussians) tile_count(p, g);
}

template <typename scalar_t>
__global__ void tiles_fill_kernel(TileParams<scalar_t> p) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g < p.n_images * p.n_gaussians) tile_fill(p, g);
}

}  // namespace

template <typename scalar_t>
void tiles_count_cuda(const TileParams<scalar_t>& p, void* stream) {
  const int64_t n = p.n_images * p.n_gaussians;
  if (n > 0) tiles_count_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
}

template <typename scalar_t>
void tiles_fill_cuda(const TileParams<scalar_t>& p, void* stream) {
  const int64_t n = p.n_images * p.n_gaussians;
  if (n > 0) tiles_fill_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
}

int tiles_sort_cuda(const int64_t* keys_in, int64_t* keys_out, const int32_t* ids_in, int32_t* ids_out, int64_t n,
                    int end_bit, void* temp, size_t& temp_bytes, void* stream) {
  // Keys are non-negative, so their order as unsigned integers is their order.
  const cudaError_t err = cub::DeviceRadixSort::SortPairs(
      temp, temp_bytes, reinterpret_cast<const unsigned long long*>(keys_in),
      reinterpret_cast<unsigned long long*>(keys_out), ids_in, ids_out, n, 0, end_bit,
      static_cast<cudaStream_t>(stream));
  return static_cast<int>(err);
}

template void tiles_count_cuda<float>(const TileParams<float>&, void*);
template void tiles_count_cuda<double>(const TileParams<double>&, void*);
template void tiles_fill_cuda<float>(const TileParams<float>&, void*);
template void tiles_fill_cuda<double>(const TileParams<double>&, void*);

}  // namespace render3d
