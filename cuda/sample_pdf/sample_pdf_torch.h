// Torch glue of inverse-CDF sampling shared by the CPU and CUDA registrations.
#pragma once

#include "render3d/torch_glue.h"
#include "sample_pdf.h"

namespace render3d {

template <typename Run>
at::Tensor sample_pdf_torch(const at::Tensor& bins, const at::Tensor& weights, const at::Tensor& u, Run&& run) {
  constexpr const char* fn = "render3d::sample_pdf";
  TORCH_CHECK(weights.dim() == 2, fn, ": argument 'weights' expected shape [R, K], got ", weights.sizes());
  const int64_t n_rays = weights.size(0), n_bins = weights.size(1);
  TORCH_CHECK(n_bins >= 1, fn, ": argument 'weights' expected at least one bin, got ", weights.sizes());
  TORCH_CHECK(bins.dim() == 2 && bins.size(0) == n_rays && bins.size(1) == n_bins + 1, fn,
              ": argument 'bins' expected shape [", n_rays, ", ", n_bins + 1, "], got ", bins.sizes());
  TORCH_CHECK(u.dim() == 2 && u.size(0) == n_rays, fn, ": argument 'u' expected shape [", n_rays, ", n], got ",
              u.sizes());
  TORCH_CHECK(weights.scalar_type() == at::kFloat || weights.scalar_type() == at::kDouble, fn,
              ": argument 'weights' expected dtype float32 or float64, got ", weights.scalar_type());
  TORCH_CHECK(weights.is_contiguous(), fn, ": argument 'weights' must be contiguous");
  check_same(bins, weights, fn, "bins");
  check_same(u, weights, fn, "u");
  auto samples = at::empty({n_rays, u.size(1)}, weights.options());
  auto cdf = at::empty({n_rays, n_bins + 1}, weights.options());
  if (n_rays > 0) {
    AT_DISPATCH_FLOATING_TYPES(weights.scalar_type(), "sample_pdf", [&] {
      SamplePdfParams<scalar_t> p;
      p.n_rays = n_rays;
      p.n_bins = n_bins;
      p.n_samples = u.size(1);
      p.bins = bins.data_ptr<scalar_t>();
      p.weights = weights.data_ptr<scalar_t>();
      p.u = u.data_ptr<scalar_t>();
      p.cdf = cdf.data_ptr<scalar_t>();
      p.samples = samples.data_ptr<scalar_t>();
      run(p);
    });
  }
  return samples;
}

}  // namespace render3d
