// Helpers for the torch-facing glue (.cpp files only; never included by a .cu file).
#pragma once

#include <ATen/ATen.h>

#include <utility>

namespace render3d {

// Argument checks of the C++ entry points. The Python wrappers check everything a user can
// get wrong with friendlier messages first; these guard direct torch.ops calls.
inline void check_float_1d(const at::Tensor& t, const char* fn, const char* name, int64_t n) {
  TORCH_CHECK(t.dim() == 1 && t.size(0) == n, fn, ": argument '", name, "' expected shape [", n, "], got ", t.sizes());
}

// A tensor and its argument name, for checking several alike in one loop.
using Named = std::pair<const at::Tensor*, const char*>;

inline void check_shape(const at::Tensor& t, at::IntArrayRef shape, const char* fn, const char* name) {
  TORCH_CHECK(t.sizes() == shape, fn, ": argument '", name, "' expected shape ", shape, ", got ", t.sizes());
}

inline void check_device(const at::Tensor& t, const at::Tensor& ref, const char* fn, const char* name) {
  TORCH_CHECK(t.device() == ref.device(), fn, ": argument '", name, "' expected device ", ref.device(), ", got ",
              t.device());
}

// CUDA registrations call this before building their CUDAGuard: a CUDA op reached with a CPU
// tensor first (another argument being on the GPU) gets this message, not c10's internal assert.
inline void check_cuda(const at::Tensor& t, const char* fn, const char* name) {
  TORCH_CHECK(t.is_cuda(), fn, ": argument '", name, "' expected a CUDA tensor like the other arguments, got ",
              t.device());
}

inline void check_same(const at::Tensor& t, const at::Tensor& ref, const char* fn, const char* name) {
  check_device(t, ref, fn, name);
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), fn, ": argument '", name, "' expected dtype ",
              ref.scalar_type(), ", got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), fn, ": argument '", name, "' must be contiguous");
}

inline void check_offsets(const at::Tensor& offsets, const at::Tensor& ref, const char* fn) {
  TORCH_CHECK(offsets.dim() == 1 && offsets.size(0) >= 1, fn, ": argument 'offsets' expected shape [R + 1], got ",
              offsets.sizes());
  TORCH_CHECK(offsets.scalar_type() == at::kLong, fn, ": argument 'offsets' expected dtype int64, got ",
              offsets.scalar_type());
  check_device(offsets, ref, fn, "offsets");
  TORCH_CHECK(offsets.is_contiguous(), fn, ": argument 'offsets' must be contiguous");
}

// Items per at::parallel_for chunk so that each chunk does roughly `work` element operations.
inline int64_t grain_for(int64_t work_per_item, int64_t work = 32768) {
  return std::max<int64_t>(1, work / std::max<int64_t>(1, work_per_item));
}

}  // namespace render3d
