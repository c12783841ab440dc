// CUDA registration of tile binning; kernels and the radix sort in tiles_kernel.cu.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "tiles_torch.h"

namespace render3d {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> isect_tiles_cuda(const at::Tensor& means2d, const at::Tensor& radii,
                                                                const at::Tensor& depths, int64_t tiles_x,
                                                                int64_t tiles_y) {
  check_cuda(means2d, "render3d::isect_tiles", "means2d");
  const c10::cuda::CUDAGuard guard(means2d.device());
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  return isect_tiles_torch(
      means2d, radii, depths, tiles_x, tiles_y,
      [&](const auto& p) {
        tiles_count_cuda(p, stream);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      },
      [&](const auto& p) {
        tiles_fill_cuda(p, stream);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      },
      [&](const at::Tensor& keys, const at::Tensor& ids, int end_bit) {
        auto keys_out = at::empty_like(keys);
        auto ids_out = at::empty_like(ids);
        size_t temp_bytes = 0;
        C10_CUDA_CHECK(static_cast<cudaError_t>(tiles_sort_cuda(keys.data_ptr<int64_t>(), nullptr, nullptr, nullptr,
                                                                keys.size(0), end_bit, nullptr, temp_bytes, stream)));
        auto temp = at::empty({static_cast<int64_t>(temp_bytes)}, keys.options().dtype(at::kByte));
        C10_CUDA_CHECK(static_cast<cudaError_t>(
            tiles_sort_cuda(keys.data_ptr<int64_t>(), keys_out.data_ptr<int64_t>(), ids.data_ptr<int32_t>(),
                            ids_out.data_ptr<int32_t>(), keys.size(0), end_bit, temp.data_ptr(), temp_bytes, stream)));
        return std::make_tuple(keys_out, ids_out);
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(render3d, CUDA, m) { m.impl("isect_tiles", &isect_tiles_cuda); }

}  // namespace render3d
