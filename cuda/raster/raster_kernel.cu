// CUDA kernels of Gaussian rasterization: one block per (image, tile) and chunk of up to
// kChunk channels (blockIdx.y), one thread per pixel; the tile's list is staged in shared
// memory in batches of one id per thread. The backward pass walks the list back to front,
// sums each Gaussian's gradient over a warp with shuffles and adds it to the Gaussian's
// gradient with one atomic per warp. Channel chunks split dL/dalpha linearly: each adds its
// channels' part (chunk 0 also the transmittance term).
#include <cuda_runtime.h>

#include "raster.h"

namespace render3d {
namespace {

constexpr int kBlock = kTileSize * kTileSize;  // threads per block: one per pixel of a tile
constexpr int kChunk = 8;                      // channels per block
constexpr unsigned kFullMask = 0xffffffffu;

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(kFullMask, v, offset);
  return v;
}

struct PixelOf {
  int64_t tile_index, image, x, y;
  bool inside;
};

template <typename scalar_t>
__device__ PixelOf pixel_of(const RasterParams<scalar_t>& p) {
  const int64_t tiles = int64_t(p.tiles_x) * p.tiles_y;
  PixelOf out;
  out.tile_index = blockIdx.x;
  out.image = out.tile_index / tiles;
  const int64_t t = out.tile_index % tiles;
  out.x = (t % p.tiles_x) * kTileSize + threadIdx.x % kTileSize;
  out.y = (t / p.tiles_x) * kTileSize + threadIdx.x / kTileSize;
  out.inside = out.x < p.width && out.y < p.height;
  return out;
}

template <typename scalar_t>
__global__ void __launch_bounds__(kBlock) raster_forward_kernel(RasterParams<scalar_t> p) {
  __shared__ int32_t ids[kBlock];
  const PixelOf pix = pixel_of(p);
  const int64_t index = (pix.image * p.height + pix.y) * p.width + pix.x;
  const scalar_t px = scalar_t(pix.x) + scalar_t(0.5), py = scalar_t(pix.y) + scalar_t(0.5);
  const int64_t K = p.n_channels, c0 = int64_t(blockIdx.y) * kChunk;
  const int nch = static_cast<int>(min_<int64_t>(kChunk, K - c0));
  const int64_t start = p.tile_offsets[pix.tile_index], end = p.tile_offsets[pix.tile_index + 1];

  scalar_t acc[kChunk];
  for (int c = 0; c < kChunk; ++c) acc[c] = scalar_t(0);
  scalar_t transmittance = scalar_t(1);
  int64_t last = start;
  bool done = !pix.inside;
  for (int64_t batch = start; batch < end; batch += kBlock) {
    if (__syncthreads_count(!done) == 0) break;  // every pixel of the tile has finished
    if (batch + threadIdx.x < end) ids[threadIdx.x] = p.ids[batch + threadIdx.x];
    __syncthreads();
    const int n = static_cast<int>(min_<int64_t>(kBlock, end - batch));
    for (int j = 0; j < n && !done; ++j) {
      const int64_t g = ids[j];
      scalar_t alpha, gauss;
      bool clamped;
      if (!splat_alpha(p, g, px, py, alpha, gauss, clamped)) continue;
      const scalar_t next = transmittance * (scalar_t(1) - alpha);
      if (next <= p.transmittance_eps) {
        done = true;
        break;
      }
      const scalar_t weight = alpha * transmittance;
      const scalar_t* f = p.features + g * K + c0;
      for (int c = 0; c < nch; ++c) acc[c] += f[c] * weight;
      transmittance = next;
      last = batch + j + 1;
    }
    __syncthreads();  // the next batch overwrites ids
  }
  if (!pix.inside) return;
  for (int c = 0; c < nch; ++c) p.acc[index * K + c0 + c] = acc[c];
  if (blockIdx.y == 0) {
    p.transmittance[index] = transmittance;
    p.last[index] = last;
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kBlock) raster_backward_kernel(RasterBackwardParams<scalar_t> bp) {
  __shared__ int32_t ids[kBlock];
  const RasterParams<scalar_t>& p = bp.fwd;
  const PixelOf pix = pixel_of(p);
  const int64_t index = (pix.image * p.height + pix.y) * p.width + pix.x;
  const scalar_t px = scalar_t(pix.x) + scalar_t(0.5), py = scalar_t(pix.y) + scalar_t(0.5);
  const int64_t K = p.n_channels, c0 = int64_t(blockIdx.y) * kChunk;
  const int nch = static_cast<int>(min_<int64_t>(kChunk, K - c0));
  const int64_t start = p.tile_offsets[pix.tile_index], end = p.tile_offsets[pix.tile_index + 1];
  const int lane = threadIdx.x % 32;

  const scalar_t final_t = pix.inside ? p.transmittance[index] : scalar_t(1);
  const int64_t last = pix.inside ? p.last[index] : start;
  const scalar_t v_t = (pix.inside && blockIdx.y == 0) ? bp.v_transmittance[index] : scalar_t(0);
  scalar_t g_acc[kChunk], suffix[kChunk];
  for (int c = 0; c < kChunk; ++c) {
    g_acc[c] = (pix.inside && c < nch) ? bp.v_acc[index * K + c0 + c] : scalar_t(0);
    suffix[c] = scalar_t(0);
  }
  scalar_t transmittance = final_t;
  for (int64_t batch_end = end; batch_end > start; batch_end -= kBlock) {
    const int64_t batch = max_(start, batch_end - kBlock);
    __syncthreads();  // the previous batch is done with ids
    if (batch + threadIdx.x < batch_end) ids[threadIdx.x] = p.ids[batch + threadIdx.x];
    __syncthreads();
    for (int j = static_cast<int>(batch_end - batch) - 1; j >= 0; --j) {
      const int64_t i = batch + j;
      const int64_t g = ids[j];
      scalar_t alpha = 0, gauss = 0;
      bool clamped = false;
      bool valid = pix.inside && i < last && splat_alpha(p, g, px, py, alpha, gauss, clamped);
      scalar_t v_mean[2] = {0, 0}, v_conic[3] = {0, 0, 0}, v_opacity = 0, v_f[kChunk];
      for (int c = 0; c < kChunk; ++c) v_f[c] = scalar_t(0);
      if (valid) {
        const scalar_t inv_one_minus = scalar_t(1) / (scalar_t(1) - alpha);
        const scalar_t t_before = transmittance * inv_one_minus;
        const scalar_t weight = alpha * t_before;
        const scalar_t* f = p.features + g * K + c0;
        scalar_t v_alpha = -v_t * final_t * inv_one_minus;
        for (int c = 0; c < nch; ++c) {
          v_alpha += g_acc[c] * (f[c] * t_before - suffix[c] * inv_one_minus);
          v_f[c] = weight * g_acc[c];
          suffix[c] += f[c] * weight;
        }
        splat_alpha_vjp(p, g, px, py, v_alpha, alpha, gauss, clamped, v_mean, v_conic, v_opacity);
        transmittance = t_before;
      }
      if (!__any_sync(kFullMask, valid)) continue;  // uniform across the warp
      v_mean[0] = warp_sum(v_mean[0]);
      v_mean[1] = warp_sum(v_mean[1]);
      for (int k = 0; k < 3; ++k) v_conic[k] = warp_sum(v_conic[k]);
      v_opacity = warp_sum(v_opacity);
      for (int c = 0; c < kChunk; ++c) v_f[c] = warp_sum(v_f[c]);
      if (lane == 0) {
        atomicAdd(bp.v_means2d + 2 * g, v_mean[0]);
        atomicAdd(bp.v_means2d + 2 * g + 1, v_mean[1]);
        for (int k = 0; k < 3; ++k) atomicAdd(bp.v_conics + 3 * g + k, v_conic[k]);
        atomicAdd(bp.v_opacities + g, v_opacity);
        for (int c = 0; c < nch; ++c) atomicAdd(bp.v_features + g * K + c0 + c, v_f[c]);
      }
    }
  }
}

// One chunk at least: with no channels the blocks still blend transmittance (and its gradient).
dim3 grid_for(int64_t n_tiles, int64_t channels) {
  const int64_t chunks = channels > 0 ? (channels + kChunk - 1) / kChunk : 1;
  return dim3(static_cast<unsigned int>(n_tiles), static_cast<unsigned int>(chunks));
}

}  // namespace

template <typename scalar_t>
void raster_forward_cuda(const RasterParams<scalar_t>& p, void* stream) {
  const int64_t n_tiles = p.n_images * p.tiles_x * p.tiles_y;
  if (n_tiles == 0) return;
  raster_forward_kernel<<<grid_for(n_tiles, p.n_channels), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(p);
}

template <typename scalar_t>
void raster_backward_cuda(const RasterBackwardParams<scalar_t>& p, void* stream) {
  const int64_t n_tiles = p.fwd.n_images * p.fwd.tiles_x * p.fwd.tiles_y;
  if (n_tiles == 0) return;
  raster_backward_kernel<<<grid_for(n_tiles, p.fwd.n_channels), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(p);
}

template void raster_forward_cuda<float>(const RasterParams<float>&, void*);
template void raster_forward_cuda<double>(const RasterParams<double>&, void*);
template void raster_backward_cuda<float>(const RasterBackwardParams<float>&, void*);
template void raster_backward_cuda<double>(const RasterBackwardParams<double>&, void*);

}  // namespace render3d
