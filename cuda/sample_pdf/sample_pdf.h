// Inverse-CDF ("importance") sampling along rays: the math shared by the CPU loop and the
// CUDA kernels. Ray r has bins with edges bins[r, 0..K] and non-negative weights[r, 0..K-1];
// each u in [0, 1] maps to the point where the piecewise-linear CDF reaches u.
#pragma once

#include "render3d/common.h"

namespace render3d {

template <typename scalar_t>
struct SamplePdfParams {
  int64_t n_rays;           // R
  int64_t n_bins;           // K
  int64_t n_samples;        // n, samples drawn per ray
  const scalar_t* bins;     // [R, K + 1] bin edges along the ray, non-decreasing
  const scalar_t* weights;  // [R, K] non-negative bin weights (a zero row samples uniformly)
  const scalar_t* u;        // [R, n] CDF levels in [0, 1], any order
  scalar_t* cdf;            // [R, K + 1] out: the normalised CDF, cdf[0] = 0, cdf[K] = 1
  scalar_t* samples;        // [R, n] out: sample positions
};

template <typename scalar_t>
R3D_HD void sample_pdf_build_cdf(const SamplePdfParams<scalar_t>& p, int64_t ray) {
  const int64_t K = p.n_bins;
  const scalar_t* w = p.weights + ray * K;
  scalar_t* cdf = p.cdf + ray * (K + 1);
  scalar_t total = scalar_t(0);
  for (int64_t k = 0; k < K; ++k) total += w[k];
  cdf[0] = scalar_t(0);
  if (total > scalar_t(0)) {
    scalar_t running = scalar_t(0);
    for (int64_t k = 0; k < K; ++k) {
      running += w[k];
      cdf[k + 1] = running / total;
    }
  } else {
    for (int64_t k = 0; k < K; ++k) cdf[k + 1] = scalar_t(k + 1) / scalar_t(K);
  }
  cdf[K] = scalar_t(1);
}

template <typename scalar_t>
R3D_HD void sample_pdf_invert(const SamplePdfParams<scalar_t>& p, int64_t ray, int64_t j) {
  const int64_t K = p.n_bins;
  const scalar_t* cdf = p.cdf + ray * (K + 1);
  const scalar_t* edges = p.bins + ray * (K + 1);
  const scalar_t u = p.u[ray * p.n_samples + j];
  // Largest k in [0, K - 1] with cdf[k] <= u.
  int64_t lo = 0, hi = K;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (cdf[mid] <= u) lo = mid; else hi = mid;
  }
  const scalar_t denom = cdf[lo + 1] - cdf[lo];
  const scalar_t frac = denom > scalar_t(0) ? (u - cdf[lo]) / denom : scalar_t(0);
  p.samples[ray * p.n_samples + j] = edges[lo] + frac * (edges[lo + 1] - edges[lo]);
}

template <typename scalar_t>
void sample_pdf_cuda(const SamplePdfParams<scalar_t>& p, void* stream);

}  // namespace render3d
