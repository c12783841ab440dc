// CUDA kernels of volume compositing and their launchers. Only CUDA headers: the torch glue
// lives in composite_cuda.cpp, so this file compiles in seconds.
//
// Forward: one thread per (ray, channel), consecutive threads on consecutive channels of a ray
// so that reads of `values` coalesce; the channel-0 thread also writes weights, depth, opacity
// (with no channels, one thread per ray writes those alone).
// Backward: one thread per sample for e_i and dL/dv (each thread streams its own value row),
// then one thread per ray for the suffix-sum pass.
#include <cuda_runtime.h>

#include "composite.h"
#include "render3d/launch.h"

namespace render3d {
namespace {

template <typename scalar_t>
__global__ void composite_forward_kernel(CompositeForwardParams<scalar_t> p) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t C = p.n_channels, lanes = C > 0 ? C : 1;
  if (idx >= p.n_rays * lanes) return;
  const int64_t ray = idx / lanes;
  const int64_t c = idx - ray * lanes;
  const bool lead = c == 0;
  scalar_t acc = scalar_t(0), depth_sum = scalar_t(0), opacity = scalar_t(0);
  composite_walk(p.sigmas, p.t_starts, p.t_ends, p.offsets[ray], p.offsets[ray + 1], [&](int64_t i, scalar_t w) {
    if (C > 0) acc += w * p.values[i * C + c];
    if (lead) {
      p.weights[i] = w;
      depth_sum += w * scalar_t(0.5) * (p.t_starts[i] + p.t_ends[i]);
      opacity += w;
    }
  });
  if (C > 0) p.acc[idx] = acc;
  if (lead) {
    p.depth_sum[ray] = depth_sum;
    p.opacity[ray] = opacity;
  }
}

template <typename scalar_t>
__global__ void composite_backward_sample_kernel(CompositeBackwardParams<scalar_t> p, int64_t n_samples) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_samples) return;
  composite_backward_sample(p, ray_of_sample(p.offsets, p.n_rays, i), i);
}

template <typename scalar_t>
__global__ void composite_backward_ray_kernel(CompositeBackwardParams<scalar_t> p) {
  const int64_t ray = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ray >= p.n_rays) return;
  composite_backward_ray(p, ray);
}

}  // namespace

template <typename scalar_t>
void composite_forward_cuda(const CompositeForwardParams<scalar_t>& p, void* stream) {
  const int64_t n = p.n_rays * (p.n_channels > 0 ? p.n_channels : 1);
  if (n == 0) return;
  composite_forward_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
}

template <typename scalar_t>
void composite_backward_cuda(const CompositeBackwardParams<scalar_t>& p, int64_t n_samples, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  if (n_samples > 0) composite_backward_sample_kernel<<<blocks_for(n_samples), kThreads, 0, s>>>(p, n_samples);
  if (p.n_rays > 0) composite_backward_ray_kernel<<<blocks_for(p.n_rays), kThreads, 0, s>>>(p);
}

template void composite_forward_cuda<float>(const CompositeForwardParams<float>&, void*);
template void composite_forward_cuda<double>(const CompositeForwardParams<double>&, void*);
template void composite_backward_cuda<float>(const CompositeBackwardParams<float>&, int64_t, void*);
template void composite_backward_cuda<double>(const CompositeBackwardParams<double>&, int64_t, void*);

}  // namespace render3d
