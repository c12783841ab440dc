// Torch glue of Gaussian projection shared by the CPU and CUDA registrations.
#pragma once

#include <tuple>

#include "project.h"
#include "render3d/torch_glue.h"

namespace render3d {

struct ProjectArgs {
  const at::Tensor& means;
  const std::optional<at::Tensor>& quats;
  const std::optional<at::Tensor>& scales;
  const std::optional<at::Tensor>& covars;
  const std::optional<at::Tensor>& opacities;
  const at::Tensor& viewmats;
  const at::Tensor& intrinsics;
  int64_t width, height;
  double near_plane, far_plane, eps2d, alpha_min;
  bool antialiased;
};

inline bool defined(const std::optional<at::Tensor>& t) { return t.has_value() && t->defined(); }

inline void check_project_args(const ProjectArgs& a, const char* fn) {
  TORCH_CHECK(a.means.dim() == 3 && a.means.size(2) == 3, fn, ": argument 'means' expected shape [B, N, 3], got ",
              a.means.sizes());
  TORCH_CHECK(a.means.scalar_type() == at::kFloat || a.means.scalar_type() == at::kDouble, fn,
              ": argument 'means' expected dtype float32 or float64, got ", a.means.scalar_type());
  TORCH_CHECK(a.means.is_contiguous(), fn, ": argument 'means' must be contiguous");
  const int64_t B = a.means.size(0), N = a.means.size(1);
  // the same test as project_params and the backward, which read quats alone
  const bool by_quat = defined(a.quats);
  TORCH_CHECK(by_quat == defined(a.scales) && by_quat != defined(a.covars), fn,
              ": give either quats and scales or covars");
  auto check = [&](const at::Tensor& t, const char* name, std::vector<int64_t> shape) {
    check_same(t, a.means, fn, name);
    TORCH_CHECK(t.sizes() == at::IntArrayRef(shape), fn, ": argument '", name, "' expected shape ", shape, ", got ",
                t.sizes());
  };
  if (by_quat) {
    check(*a.quats, "quats", {B, N, 4});
    check(*a.scales, "scales", {B, N, 3});
  } else {
    check(*a.covars, "covars", {B, N, 6});
  }
  if (defined(a.opacities)) check(*a.opacities, "opacities", {B, N});
  check(a.viewmats, "viewmats", {B, 4, 4});
  check(a.intrinsics, "intrinsics", {B, 4});
}

template <typename scalar_t>
ProjectParams<scalar_t> project_params(const ProjectArgs& a) {
  ProjectParams<scalar_t> p{};
  p.n_images = a.means.size(0);
  p.n_gaussians = a.means.size(1);
  p.means = a.means.data_ptr<scalar_t>();
  const bool by_quat = defined(a.quats);
  p.quats = by_quat ? a.quats->data_ptr<scalar_t>() : nullptr;
  p.scales = by_quat ? a.scales->data_ptr<scalar_t>() : nullptr;
  p.covars = by_quat ? nullptr : a.covars->data_ptr<scalar_t>();
  p.opacities = defined(a.opacities) ? a.opacities->data_ptr<scalar_t>() : nullptr;
  p.viewmats = a.viewmats.data_ptr<scalar_t>();
  p.intrinsics = a.intrinsics.data_ptr<scalar_t>();
  p.width = static_cast<int32_t>(a.width);
  p.height = static_cast<int32_t>(a.height);
  p.near_plane = static_cast<scalar_t>(a.near_plane);
  p.far_plane = static_cast<scalar_t>(a.far_plane);
  p.eps2d = static_cast<scalar_t>(a.eps2d);
  p.alpha_min = static_cast<scalar_t>(a.alpha_min);
  p.antialiased = a.antialiased;
  return p;
}

// Returns radii [B, N, 2] int32, means2d [B, N, 2], depths [B, N], conics [B, N, 3],
// compensations [B, N].
template <typename Run>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_forward_torch(const ProjectArgs& a,
                                                                                            Run&& run) {
  check_project_args(a, "render3d::project_fwd");
  const int64_t B = a.means.size(0), N = a.means.size(1);
  auto opts = a.means.options();
  auto radii = at::empty({B, N, 2}, opts.dtype(at::kInt));
  auto means2d = at::empty({B, N, 2}, opts);
  auto depths = at::empty({B, N}, opts);
  auto conics = at::empty({B, N, 3}, opts);
  auto compensations = at::empty({B, N}, opts);
  if (B * N > 0) {
    AT_DISPATCH_FLOATING_TYPES(a.means.scalar_type(), "project_fwd", [&] {
      auto p = project_params<scalar_t>(a);
      p.radii = radii.data_ptr<int32_t>();
      p.means2d = means2d.data_ptr<scalar_t>();
      p.depths = depths.data_ptr<scalar_t>();
      p.conics = conics.data_ptr<scalar_t>();
      p.compensations = compensations.data_ptr<scalar_t>();
      run(p);
    });
  }
  return {radii, means2d, depths, conics, compensations};
}

// Returns v_means [B, N, 3], v_quats [B, N, 4], v_scales [B, N, 3], v_covars [B, N, 6]; the
// pair not matching the input parametrisation has zero size.
template <typename Run>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_backward_torch(
    const ProjectArgs& a, const at::Tensor& radii, const at::Tensor& conics, const at::Tensor& compensations,
    const at::Tensor& v_means2d, const at::Tensor& v_depths, const at::Tensor& v_conics,
    const at::Tensor& v_compensations, Run&& run) {
  constexpr const char* fn = "render3d::project_bwd";
  check_project_args(a, fn);
  const int64_t B = a.means.size(0), N = a.means.size(1);
  struct Expected {
    const at::Tensor* t;
    const char* name;
    int64_t width;  // shape [B, N, width]; 0: [B, N]
  };
  for (auto [t, name, width] : {Expected{&v_means2d, "v_means2d", 2}, Expected{&conics, "conics", 3},
                                Expected{&v_conics, "v_conics", 3}, Expected{&compensations, "compensations", 0},
                                Expected{&v_depths, "v_depths", 0}, Expected{&v_compensations, "v_compensations", 0}}) {
    check_same(*t, a.means, fn, name);
    if (width > 0) {
      check_shape(*t, {B, N, width}, fn, name);
    } else {
      check_shape(*t, {B, N}, fn, name);
    }
  }
  check_device(radii, a.means, fn, "radii");
  TORCH_CHECK(radii.scalar_type() == at::kInt && radii.is_contiguous() && radii.sizes() == at::IntArrayRef({B, N, 2}),
              fn, ": argument 'radii' expected a contiguous int32 tensor [B, N, 2], got ", radii.sizes());
  const bool by_quat = defined(a.quats);
  auto opts = a.means.options();
  auto v_means = at::empty({B, N, 3}, opts);
  auto v_quats = by_quat ? at::empty({B, N, 4}, opts) : at::empty({0}, opts);
  auto v_scales = by_quat ? at::empty({B, N, 3}, opts) : at::empty({0}, opts);
  auto v_covars = by_quat ? at::empty({0}, opts) : at::empty({B, N, 6}, opts);
  if (B * N > 0) {
    AT_DISPATCH_FLOATING_TYPES(a.means.scalar_type(), "project_bwd", [&] {
      ProjectBackwardParams<scalar_t> p{};
      p.fwd = project_params<scalar_t>(a);
      p.radii = radii.data_ptr<int32_t>();
      p.conics = conics.data_ptr<scalar_t>();
      p.compensations = compensations.data_ptr<scalar_t>();
      p.v_means2d = v_means2d.data_ptr<scalar_t>();
      p.v_depths = v_depths.data_ptr<scalar_t>();
      p.v_conics = v_conics.data_ptr<scalar_t>();
      p.v_compensations = v_compensations.data_ptr<scalar_t>();
      p.v_means = v_means.data_ptr<scalar_t>();
      p.v_quats = by_quat ? v_quats.data_ptr<scalar_t>() : nullptr;
      p.v_scales = by_quat ? v_scales.data_ptr<scalar_t>() : nullptr;
      p.v_covars = by_quat ? nullptr : v_covars.data_ptr<scalar_t>();
      run(p);
    });
  }
  return {v_means, v_quats, v_scales, v_covars};
}

}  // namespace render3d
