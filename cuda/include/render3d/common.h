// Shared by every render3d kernel: the host/device qualifier, and the few math helpers whose
// float and double overloads must resolve identically in g++ and nvcc.
//
// Per-element math lives in each op's header behind R3D_HD, so that the CPU loop
// (at::parallel_for) and the CUDA kernel call exactly the same code.
#pragma once

#include <cstdint>
#include <math.h>

#if defined(__CUDACC__)
#define R3D_HD __host__ __device__ __forceinline__
#else
#define R3D_HD inline
#endif

namespace render3d {

R3D_HD float exp_neg(float x) { return expf(-x); }
R3D_HD double exp_neg(double x) { return exp(-x); }

template <typename T>
R3D_HD T min_(T a, T b) { return a < b ? a : b; }
template <typename T>
R3D_HD T max_(T a, T b) { return a > b ? a : b; }
template <typename T>
R3D_HD T clamp_(T x, T lo, T hi) { return min_(max_(x, lo), hi); }

// Correctly rounded add / multiply / divide: nvcc would otherwise contract a*b+c into one
// fused multiply-add, whose different rounding makes sample positions differ from the CPU
// kernel and the PyTorch twin in the last bit (the CPU build passes -ffp-contract=off).
R3D_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
R3D_HD double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
R3D_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
R3D_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
R3D_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
R3D_HD double div_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

// Index of the ray owning flat sample `i`, given CSR offsets [n_rays + 1] (binary search).
R3D_HD int64_t ray_of_sample(const int64_t* offsets, int64_t n_rays, int64_t i) {
  int64_t lo = 0, hi = n_rays;  // invariant: offsets[lo] <= i < offsets[hi]
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (offsets[mid] <= i) lo = mid; else hi = mid;
  }
  return lo;
}

}  // namespace render3d
