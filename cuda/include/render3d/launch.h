// Launch geometry shared by the CUDA kernels' launchers (included by .cu files).
#pragma once

#include <cstdint>

namespace render3d {

constexpr int kThreads = 256;  // threads per block of every 1-D launch

inline unsigned int blocks_for(int64_t n) { return static_cast<unsigned int>((n + kThreads - 1) / kThreads); }

}  // namespace render3d
