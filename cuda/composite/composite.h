// Volume compositing along rays: the math shared by the CPU loop and the CUDA kernels.
//
// Samples of all rays are stored flat, ray after ray; ray r owns samples
// [offsets[r], offsets[r+1]). A dense [R, S] batch is the special case offsets = S * arange(R+1).
//
// Forward, per ray, front to back, with tau_i = sigma_i * (t_end_i - t_start_i):
//   T_0 = 1,  T_{i+1} = T_i * exp(-tau_i),  w_i = T_i - T_{i+1} = T_i * (1 - exp(-tau_i))
//   acc_c = sum_i w_i v_ic,  depth_sum = sum_i w_i m_i (m_i interval midpoint),  opacity = sum_i w_i
//
// Backward. Let e_i = dL/dw_i = sum_c g_c v_ic + g_depth m_i + g_opacity + g_w_i. Since
// dw_i/dtau_j is -w_i for i > j, T_{j+1} for i = j and 0 for i < j,
//   dL/dtau_j = e_j T_{j+1} - sum_{i>j} e_i w_i,
// where the suffix sum is (sum_i e_i w_i) - (prefix up to and including j): one pass with no
// division by (1 - alpha) and nothing of size [S, C] stored.
#pragma once

#include "render3d/common.h"

namespace render3d {

template <typename scalar_t>
struct CompositeForwardParams {
  int64_t n_rays;            // R
  int64_t n_channels;        // C, values per sample
  const int64_t* offsets;    // [R + 1] CSR sample range of each ray
  const scalar_t* sigmas;    // [N] non-negative densities
  const scalar_t* values;    // [N, C] per-sample colours or features, row-major
  const scalar_t* t_starts;  // [N] interval starts along the ray
  const scalar_t* t_ends;    // [N] interval ends along the ray
  scalar_t* acc;             // [R, C] out: sum_i w_i v_i
  scalar_t* depth_sum;       // [R] out: sum_i w_i m_i
  scalar_t* opacity;         // [R] out: sum_i w_i = 1 - final transmittance
  scalar_t* weights;         // [N] out: w_i
};

template <typename scalar_t>
struct CompositeBackwardParams {
  int64_t n_rays;                   // R
  int64_t n_channels;               // C
  const int64_t* offsets;           // [R + 1]
  const scalar_t* sigmas;           // [N] forward input
  const scalar_t* values;           // [N, C] forward input
  const scalar_t* t_starts;         // [N] forward input
  const scalar_t* t_ends;           // [N] forward input
  const scalar_t* weights;          // [N] forward output w_i
  const scalar_t* grad_acc;         // [R, C] dL/dacc
  const scalar_t* grad_depth_sum;   // [R] dL/ddepth_sum
  const scalar_t* grad_opacity;     // [R] dL/dopacity
  const scalar_t* grad_weights;     // [N] dL/dw, or nullptr when the weights were not used
  scalar_t* grad_weight_total;      // [N] scratch: e_i = dL/dw_i (total, through every output)
  scalar_t* grad_sigmas;            // [N] out
  scalar_t* grad_values;            // [N, C] out, or nullptr when not needed
  scalar_t* grad_t_starts;          // [N] out, or nullptr when not needed (with grad_t_ends)
  scalar_t* grad_t_ends;            // [N] out, or nullptr when not needed
};

// Optical thickness of one interval.
template <typename scalar_t>
R3D_HD scalar_t interval_tau(const scalar_t* sigmas, const scalar_t* t_starts, const scalar_t* t_ends, int64_t i) {
  return sigmas[i] * (t_ends[i] - t_starts[i]);
}

// Walks one ray front to back and calls visit(i, w_i) for each sample; returns the final
// transmittance. Both the CPU loop (all channels at once) and the CUDA kernel (one channel
// per thread) accumulate through this walk.
template <typename scalar_t, typename Visitor>
R3D_HD scalar_t composite_walk(const scalar_t* sigmas, const scalar_t* t_starts, const scalar_t* t_ends,
                               int64_t begin, int64_t end, Visitor&& visit) {
  scalar_t transmittance = scalar_t(1);
  for (int64_t i = begin; i < end; ++i) {
    const scalar_t next = transmittance * exp_neg(interval_tau(sigmas, t_starts, t_ends, i));
    visit(i, transmittance - next);
    transmittance = next;
  }
  return transmittance;
}

// e_i = dL/dw_i for flat sample i of ray `ray`; also writes dL/dv_i = g * w_i.
template <typename scalar_t>
R3D_HD void composite_backward_sample(const CompositeBackwardParams<scalar_t>& p, int64_t ray, int64_t i) {
  const int64_t C = p.n_channels;
  const scalar_t w = p.weights[i];
  const scalar_t* v = p.values + i * C;
  const scalar_t* g = p.grad_acc + ray * C;
  scalar_t e = scalar_t(0);
  for (int64_t c = 0; c < C; ++c) e += g[c] * v[c];
  if (p.grad_values != nullptr) {
    scalar_t* gv = p.grad_values + i * C;
    for (int64_t c = 0; c < C; ++c) gv[c] = g[c] * w;
  }
  const scalar_t midpoint = scalar_t(0.5) * (p.t_starts[i] + p.t_ends[i]);
  e += p.grad_depth_sum[ray] * midpoint + p.grad_opacity[ray];
  if (p.grad_weights != nullptr) e += p.grad_weights[i];
  p.grad_weight_total[i] = e;
}

// The suffix-sum pass over one ray, after composite_backward_sample ran for all its samples.
template <typename scalar_t>
R3D_HD void composite_backward_ray(const CompositeBackwardParams<scalar_t>& p, int64_t ray) {
  const int64_t begin = p.offsets[ray], end = p.offsets[ray + 1];
  const scalar_t* e = p.grad_weight_total;
  scalar_t total = scalar_t(0);
  for (int64_t i = begin; i < end; ++i) total += e[i] * p.weights[i];
  const scalar_t half_grad_depth = scalar_t(0.5) * p.grad_depth_sum[ray];
  scalar_t transmittance = scalar_t(1);
  scalar_t prefix = scalar_t(0);
  for (int64_t i = begin; i < end; ++i) {
    const scalar_t sigma = p.sigmas[i];
    const scalar_t delta = p.t_ends[i] - p.t_starts[i];
    transmittance *= exp_neg(sigma * delta);  // now T_{i+1}
    prefix += e[i] * p.weights[i];
    const scalar_t grad_tau = e[i] * transmittance - (total - prefix);
    p.grad_sigmas[i] = grad_tau * delta;
    if (p.grad_t_starts != nullptr) {
      const scalar_t depth_term = half_grad_depth * p.weights[i];
      p.grad_t_ends[i] = grad_tau * sigma + depth_term;
      p.grad_t_starts[i] = -grad_tau * sigma + depth_term;
    }
  }
}

// Launchers of the CUDA kernels (composite_kernel.cu); `stream` is a cudaStream_t.
template <typename scalar_t>
void composite_forward_cuda(const CompositeForwardParams<scalar_t>& p, void* stream);
template <typename scalar_t>
void composite_backward_cuda(const CompositeBackwardParams<scalar_t>& p, int64_t n_samples, void* stream);

}  // namespace render3d
