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
  m.def(
      "project_fwd(Tensor means, Tensor? quats, Tensor? scales, Tensor? covars, Tensor? opacities, Tensor viewmats,"
      " Tensor intrinsics, int width, int height, float near_plane, float far_plane, float eps2d, float alpha_min,"
      " bool antialiased) -> (Tensor radii, Tensor means2d, Tensor depths, Tensor conics, Tensor compensations)");
  m.def(
      "project_bwd(Tensor means, Tensor? quats, Tensor? scales, Tensor? covars, Tensor? opacities, Tensor viewmats,"
      " Tensor intrinsics, int width, int height, float near_plane, float far_plane, float eps2d, float alpha_min,"
      " bool antialiased, Tensor radii, Tensor conics, Tensor compensations, Tensor v_means2d, Tensor v_depths,"
      " Tensor v_conics, Tensor v_compensations) -> (Tensor v_means, Tensor v_quats, Tensor v_scales, Tensor v_covars)");
  m.def(
      "isect_tiles(Tensor means2d, Tensor radii, Tensor depths, int tiles_x, int tiles_y)"
      " -> (Tensor keys, Tensor ids, Tensor tile_offsets)");
  m.def(
      "raster_fwd(Tensor means2d, Tensor conics, Tensor features, Tensor opacities, Tensor tile_offsets, Tensor ids,"
      " int width, int height, float alpha_max, float alpha_min, float transmittance_eps)"
      " -> (Tensor acc, Tensor transmittance, Tensor last)");
  m.def(
      "raster_bwd(Tensor v_acc, Tensor v_transmittance, Tensor means2d, Tensor conics, Tensor features,"
      " Tensor opacities, Tensor tile_offsets, Tensor ids, Tensor transmittance, Tensor last, int width, int height,"
      " float alpha_max, float alpha_min, float transmittance_eps)"
      " -> (Tensor v_means2d, Tensor v_conics, Tensor v_features, Tensor v_opacities)");
}
