// CPU implementation of inverse-CDF sampling: at::parallel_for over rays.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "sample_pdf_torch.h"

namespace render3d {
namespace {

at::Tensor sample_pdf_cpu(const at::Tensor& bins, const at::Tensor& weights, const at::Tensor& u) {
  return sample_pdf_torch(bins, weights, u, [&](const auto& p) {
    const int64_t per_ray = p.n_bins + p.n_samples * 8;
    at::parallel_for(0, p.n_rays, grain_for(per_ray), [&](int64_t begin, int64_t end) {
      for (int64_t ray = begin; ray < end; ++ray) {
        sample_pdf_build_cdf(p, ray);
        for (int64_t j = 0; j < p.n_samples; ++j) sample_pdf_invert(p, ray, j);
      }
    });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(render3d, CPU, m) { m.impl("sample_pdf", &sample_pdf_cpu); }

}  // namespace render3d
