// Every render3d op's schema, declared once. Each op folder registers its CPU implementation
// (<op>_cpu.cpp) and, in CUDA builds, its CUDA implementation (<op>_cuda.cpp); backward
// formulas are registered once, in Python (render3d/ops).
#include <torch/library.h>

TORCH_LIBRARY(render3d, m) {
  m.def(
      "composite_fwd(Tensor sigmas, Tensor values, Tensor t_starts, Tensor t_ends, Tensor offsets)"
      " -> (Tensor acc, Tensor depth_sum, Tensor opacity, Tensor weights)");
  m.def(
      "composite_bwd(Tensor grad_acc, Tensor grad_depth_sum, Tensor grad_opacity, Tensor? grad_weights,"
      " Tensor sigmas, Tensor values, Tensor t_starts, Tensor t_ends, Tensor offsets, Tensor weights,"
      " bool values_grad, bool t_grads)"
      " -> (Tensor grad_sigmas, Tensor grad_values, Tensor grad_t_starts, Tensor grad_t_ends)");
  m.def("sample_pdf(Tensor bins, Tensor weights, Tensor u) -> Tensor");
  m.def(
      "occupancy_march(Tensor origins, Tensor directions, Tensor t_near, Tensor t_far, Tensor bitfield,"
      " float[] center, float[] half, int resolution, float step_size, float cone_angle, float max_step,"
      " int max_samples) -> (Tensor offsets, Tensor ray_ids, Tensor t_starts, Tensor t_ends)");
}
