// Projection of 3D Gaussians to the image (EWA splatting): the math shared by the CPU loop and
// the CUDA kernel, forward and vector-Jacobian products.
//
// Per Gaussian and camera: p = R_c mu + t_c (camera frame, OpenCV axes); Sigma = M M^T with
// M = R(q) diag(s) (or a given covariance); Sigma_c = R_c Sigma R_c^T; the Jacobian of the
// perspective map at p, with x/z and y/z clamped to 1.3 x the field of view (off-screen
// Gaussians would otherwise blow up), J = [[fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]];
// Sigma_2d = J Sigma_c J^T + blur I; conic = Sigma_2d^-1; mean2d = (fx x/z + cx, fy y/z + cy)
// in pixels (pixel centres at +0.5); radius per axis = ceil(k sqrt(Sigma_2d_ii)), at most kMaxRadius.
// The same definitions as gsplat 1.5 (its PyTorch reference is our outside oracle).
#pragma once

#include "render3d/common.h"

namespace render3d {

// The largest radius stored (pixels; render3d.ops.splat.MAX_RADIUS in the twin). Radii are int32,
// and casting a float beyond that range is undefined: x86 gave INT32_MIN, which culled a huge
// Gaussian on the CPU, while CUDA saturates. 2^31 - 128 is exact in float32 and fits int32.
constexpr int32_t kMaxRadius = 2147483520;

template <typename scalar_t>
struct ProjectParams {
  int64_t n_images;            // B: images (each with its own camera and Gaussian set)
  int64_t n_gaussians;         // N: Gaussians per set
  const scalar_t* means;       // [B, N, 3] world positions
  const scalar_t* quats;       // [B, N, 4] rotations (w, x, y, z), any non-zero norm; or nullptr
  const scalar_t* scales;      // [B, N, 3] standard deviations along the rotated axes; or nullptr
  const scalar_t* covars;      // [B, N, 6] covariances (xx, xy, xz, yy, yz, zz) instead; or nullptr
  const scalar_t* opacities;   // [B, N] opacities for opacity-aware radii; or nullptr (3.33 sigma)
  const scalar_t* viewmats;    // [B, 4, 4] world-to-camera, row-major
  const scalar_t* intrinsics;  // [B, 4] fx, fy, cx, cy in pixels
  int32_t width, height;       // image size in pixels
  scalar_t near_plane;         // Gaussians with camera z <= near are culled
  scalar_t far_plane;          // ... and with z >= far
  scalar_t eps2d;              // screen-space blur added to the 2D covariance's diagonal
  scalar_t alpha_min;          // with opacities: Gaussians fainter than this are culled
  bool antialiased;            // opacity-aware radii use opacity x compensation
  int32_t* radii;              // [B, N, 2] out: pixel radii per axis, 0 = culled
  scalar_t* means2d;           // [B, N, 2] out: pixels
  scalar_t* depths;            // [B, N] out: camera z
  scalar_t* conics;            // [B, N, 3] out: inverse 2D covariance (a, b, c)
  scalar_t* compensations;     // [B, N] out: sqrt(det(Sigma_2d without blur) / det(Sigma_2d))
};

template <typename scalar_t>
struct ProjectBackwardParams {
  ProjectParams<scalar_t> fwd;        // forward inputs (its output pointers are not used)
  const int32_t* radii;               // [B, N, 2] forward output
  const scalar_t* conics;             // [B, N, 3] forward output
  const scalar_t* compensations;      // [B, N] forward output
  const scalar_t* v_means2d;          // [B, N, 2] dL/dmeans2d
  const scalar_t* v_depths;           // [B, N] dL/ddepths
  const scalar_t* v_conics;           // [B, N, 3] dL/dconics
  const scalar_t* v_compensations;    // [B, N] dL/dcompensations
  scalar_t* v_means;                  // [B, N, 3] out
  scalar_t* v_quats;                  // [B, N, 4] out (quaternion input), or nullptr
  scalar_t* v_scales;                 // [B, N, 3] out (quaternion input), or nullptr
  scalar_t* v_covars;                 // [B, N, 6] out (covariance input), or nullptr
};

// --- small fixed-size linear algebra ------------------------------------------------------

template <typename T>
struct Mat3 {
  T m[3][3];
};

template <typename T>
R3D_HD Mat3<T> matmul(const Mat3<T>& a, const Mat3<T>& b) {
  Mat3<T> r;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) r.m[i][j] = a.m[i][0] * b.m[0][j] + a.m[i][1] * b.m[1][j] + a.m[i][2] * b.m[2][j];
  return r;
}

template <typename T>
R3D_HD Mat3<T> transpose(const Mat3<T>& a) {
  Mat3<T> r;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) r.m[i][j] = a.m[j][i];
  return r;
}

// Rotation of a unit quaternion (w, x, y, z).
template <typename T>
R3D_HD Mat3<T> quat_to_rotmat(T w, T x, T y, T z) {
  Mat3<T> r;
  r.m[0][0] = 1 - 2 * (y * y + z * z);
  r.m[0][1] = 2 * (x * y - w * z);
  r.m[0][2] = 2 * (x * z + w * y);
  r.m[1][0] = 2 * (x * y + w * z);
  r.m[1][1] = 1 - 2 * (x * x + z * z);
  r.m[1][2] = 2 * (y * z - w * x);
  r.m[2][0] = 2 * (x * z - w * y);
  r.m[2][1] = 2 * (y * z + w * x);
  r.m[2][2] = 1 - 2 * (x * x + y * y);
  return r;
}

// dL/d(w, x, y, z) of a unit quaternion given dL/dR.
template <typename T>
R3D_HD void quat_to_rotmat_vjp(T w, T x, T y, T z, const Mat3<T>& v, T out[4]) {
  const auto& g = v.m;
  out[0] = 2 * (-z * g[0][1] + y * g[0][2] + z * g[1][0] - x * g[1][2] - y * g[2][0] + x * g[2][1]);
  out[1] = 2 * (y * g[0][1] + z * g[0][2] + y * g[1][0] - 2 * x * g[1][1] - w * g[1][2] + z * g[2][0] + w * g[2][1] -
                2 * x * g[2][2]);
  out[2] = 2 * (-2 * y * g[0][0] + x * g[0][1] + w * g[0][2] + x * g[1][0] + z * g[1][2] - w * g[2][0] + z * g[2][1] -
                2 * y * g[2][2]);
  out[3] = 2 * (-2 * z * g[0][0] - w * g[0][1] + x * g[0][2] + w * g[1][0] - 2 * z * g[1][1] + y * g[1][2] +
                x * g[2][0] + y * g[2][1]);
}

// The Gaussian's world covariance and, for the backward pass, its factor M = R diag(s).
template <typename scalar_t>
R3D_HD Mat3<scalar_t> gaussian_covariance(const ProjectParams<scalar_t>& p, int64_t g, scalar_t q_unit[4],
                                          Mat3<scalar_t>& rot) {
  Mat3<scalar_t> cov;
  if (p.covars != nullptr) {
    const scalar_t* c = p.covars + 6 * g;
    const scalar_t v[3][3] = {{c[0], c[1], c[2]}, {c[1], c[3], c[4]}, {c[2], c[4], c[5]}};
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) cov.m[i][j] = v[i][j];
    return cov;
  }
  const scalar_t* q = p.quats + 4 * g;
  const scalar_t inv_norm = scalar_t(1) / sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  for (int i = 0; i < 4; ++i) q_unit[i] = q[i] * inv_norm;
  rot = quat_to_rotmat(q_unit[0], q_unit[1], q_unit[2], q_unit[3]);
  const scalar_t* s = p.scales + 3 * g;
  Mat3<scalar_t> m;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) m.m[i][j] = rot.m[i][j] * s[j];
  return matmul(m, transpose(m));
}

// Everything the forward computes for one Gaussian, kept for the backward pass.
template <typename scalar_t>
struct ProjectState {
  scalar_t cam[3];           // camera-frame position
  Mat3<scalar_t> rot_c;      // world-to-camera rotation
  Mat3<scalar_t> cov_c;      // camera-frame covariance
  scalar_t tx, ty;           // clamped x and y used by the Jacobian
  bool clamp_x, clamp_y;     // whether the clamp was active
  scalar_t jac[2][3];        // the EWA Jacobian
  scalar_t cov2d[3];         // J Sigma_c J^T before the blur (a, b, c)
  scalar_t det_orig, det;    // determinants before and after the blur
};

// What the forward writes for one Gaussian.
template <typename scalar_t>
struct ProjectOutput {
  int32_t radius[2];
  scalar_t mean2d[2];
  scalar_t depth;
  scalar_t conic[3];
  scalar_t compensation;
};

// Projects Gaussian n of image b; returns false when it is culled.
template <typename scalar_t>
R3D_HD bool project_gaussian(const ProjectParams<scalar_t>& p, int64_t b, int64_t n, ProjectState<scalar_t>& st,
                             scalar_t q_unit[4], Mat3<scalar_t>& rot, Mat3<scalar_t>& cov_world,
                             ProjectOutput<scalar_t>& out) {
  const int64_t g = b * p.n_gaussians + n;
  const scalar_t* vm = p.viewmats + 16 * b;
  const scalar_t* mu = p.means + 3 * g;
  for (int i = 0; i < 3; ++i) {
    st.cam[i] = vm[4 * i] * mu[0] + vm[4 * i + 1] * mu[1] + vm[4 * i + 2] * mu[2] + vm[4 * i + 3];
    for (int j = 0; j < 3; ++j) st.rot_c.m[i][j] = vm[4 * i + j];
  }
  const scalar_t z = st.cam[2];
  if (!(z > p.near_plane && z < p.far_plane)) return false;
  cov_world = gaussian_covariance(p, g, q_unit, rot);
  st.cov_c = matmul(matmul(st.rot_c, cov_world), transpose(st.rot_c));

  const scalar_t* k = p.intrinsics + 4 * b;
  const scalar_t fx = k[0], fy = k[1], cx = k[2], cy = k[3];
  const scalar_t tan_x = scalar_t(0.5) * p.width / fx, tan_y = scalar_t(0.5) * p.height / fy;
  const scalar_t lim_x_pos = (p.width - cx) / fx + scalar_t(0.3) * tan_x;
  const scalar_t lim_x_neg = cx / fx + scalar_t(0.3) * tan_x;
  const scalar_t lim_y_pos = (p.height - cy) / fy + scalar_t(0.3) * tan_y;
  const scalar_t lim_y_neg = cy / fy + scalar_t(0.3) * tan_y;
  const scalar_t rx = st.cam[0] / z, ry = st.cam[1] / z;
  st.clamp_x = rx < -lim_x_neg || rx > lim_x_pos;
  st.clamp_y = ry < -lim_y_neg || ry > lim_y_pos;
  st.tx = z * clamp_(rx, -lim_x_neg, lim_x_pos);
  st.ty = z * clamp_(ry, -lim_y_neg, lim_y_pos);
  st.jac[0][0] = fx / z;
  st.jac[0][1] = 0;
  st.jac[0][2] = -fx * st.tx / (z * z);
  st.jac[1][0] = 0;
  st.jac[1][1] = fy / z;
  st.jac[1][2] = -fy * st.ty / (z * z);

  // cov2d = J Sigma_c J^T
  scalar_t jc[2][3];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      jc[i][j] = st.jac[i][0] * st.cov_c.m[0][j] + st.jac[i][1] * st.cov_c.m[1][j] + st.jac[i][2] * st.cov_c.m[2][j];
  st.cov2d[0] = jc[0][0] * st.jac[0][0] + jc[0][1] * st.jac[0][1] + jc[0][2] * st.jac[0][2];
  st.cov2d[1] = jc[0][0] * st.jac[1][0] + jc[0][1] * st.jac[1][1] + jc[0][2] * st.jac[1][2];
  st.cov2d[2] = jc[1][0] * st.jac[1][0] + jc[1][1] * st.jac[1][1] + jc[1][2] * st.jac[1][2];
  const scalar_t a = st.cov2d[0] + p.eps2d, bb = st.cov2d[1], c = st.cov2d[2] + p.eps2d;
  st.det_orig = st.cov2d[0] * st.cov2d[2] - bb * bb;
  st.det = a * c - bb * bb;
  if (!(st.det > 0)) return false;
  const scalar_t comp = sqrt(max_(scalar_t(0), st.det_orig / st.det));

  scalar_t k_sigma = scalar_t(3.33);
  if (p.opacities != nullptr) {
    const scalar_t opacity = p.opacities[g] * (p.antialiased ? comp : scalar_t(1));
    if (!(opacity >= p.alpha_min)) return false;
    k_sigma = min_(k_sigma, sqrt(scalar_t(2) * log(opacity / p.alpha_min)));
  }
  const scalar_t mx = fx * st.cam[0] / z + cx, my = fy * st.cam[1] / z + cy;
  scalar_t radius_x = ceil(k_sigma * sqrt(a)), radius_y = ceil(k_sigma * sqrt(c));
  if (!(radius_x > 0 && radius_y > 0)) return false;
  radius_x = min_(radius_x, scalar_t(kMaxRadius));
  radius_y = min_(radius_y, scalar_t(kMaxRadius));
  if (mx + radius_x <= 0 || mx - radius_x >= p.width || my + radius_y <= 0 || my - radius_y >= p.height) return false;

  out.radius[0] = static_cast<int32_t>(radius_x);
  out.radius[1] = static_cast<int32_t>(radius_y);
  out.mean2d[0] = mx;
  out.mean2d[1] = my;
  out.depth = z;
  out.conic[0] = c / st.det;
  out.conic[1] = -bb / st.det;
  out.conic[2] = a / st.det;
  out.compensation = comp;
  return true;
}

// Forward for Gaussian n of image b; a culled Gaussian gets radius 0 and zeros elsewhere.
template <typename scalar_t>
R3D_HD void project_forward(const ProjectParams<scalar_t>& p, int64_t b, int64_t n) {
  ProjectState<scalar_t> st;
  scalar_t q_unit[4];
  Mat3<scalar_t> rot, cov;
  ProjectOutput<scalar_t> out;
  if (!project_gaussian(p, b, n, st, q_unit, rot, cov, out)) {
    out.radius[0] = out.radius[1] = 0;
    out.mean2d[0] = out.mean2d[1] = out.depth = out.compensation = scalar_t(0);
    out.conic[0] = out.conic[1] = out.conic[2] = scalar_t(0);
  }
  const int64_t g = b * p.n_gaussians + n;
  p.radii[2 * g] = out.radius[0];
  p.radii[2 * g + 1] = out.radius[1];
  p.means2d[2 * g] = out.mean2d[0];
  p.means2d[2 * g + 1] = out.mean2d[1];
  p.depths[g] = out.depth;
  for (int i = 0; i < 3; ++i) p.conics[3 * g + i] = out.conic[i];
  p.compensations[g] = out.compensation;
}

// Backward for Gaussian n of image b: the chain above, reversed. Culled Gaussians get zeros.
template <typename scalar_t>
R3D_HD void project_backward(const ProjectBackwardParams<scalar_t>& bp, int64_t b, int64_t n) {
  const ProjectParams<scalar_t>& p = bp.fwd;
  const int64_t g = b * p.n_gaussians + n;
  scalar_t* v_mean = bp.v_means + 3 * g;
  v_mean[0] = v_mean[1] = v_mean[2] = scalar_t(0);
  if (bp.v_quats != nullptr) {
    for (int i = 0; i < 4; ++i) bp.v_quats[4 * g + i] = scalar_t(0);
    for (int i = 0; i < 3; ++i) bp.v_scales[3 * g + i] = scalar_t(0);
  }
  if (bp.v_covars != nullptr)
    for (int i = 0; i < 6; ++i) bp.v_covars[6 * g + i] = scalar_t(0);
  if (bp.radii[2 * g] <= 0) return;

  ProjectState<scalar_t> st;  // the forward's intermediate values, recomputed
  scalar_t q_unit[4];
  Mat3<scalar_t> rot, cov_world;
  ProjectOutput<scalar_t> out;
  project_gaussian(p, b, n, st, q_unit, rot, cov_world, out);
  const scalar_t* k = p.intrinsics + 4 * b;
  const scalar_t fx = k[0], fy = k[1];
  const scalar_t z = st.cam[2];

  // conic = inverse(cov2d + blur):  dL/dcov = -C^T dL/dC C with C the conic matrix; the off-
  // diagonal parameter b appears twice in each symmetric matrix.
  const scalar_t* con = bp.conics + 3 * g;
  const scalar_t* vc = bp.v_conics + 3 * g;
  const scalar_t ci[2][2] = {{con[0], con[1]}, {con[1], con[2]}};
  const scalar_t gi[2][2] = {{vc[0], scalar_t(0.5) * vc[1]}, {scalar_t(0.5) * vc[1], vc[2]}};
  scalar_t tmp[2][2], vm2[2][2];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) tmp[i][j] = ci[i][0] * gi[0][j] + ci[i][1] * gi[1][j];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) vm2[i][j] = -(tmp[i][0] * ci[0][j] + tmp[i][1] * ci[1][j]);
  // compensation = sqrt(det_orig / det): its gradient w.r.t. the unblurred (a, b, c).
  const scalar_t comp = bp.compensations[g];
  const scalar_t v_comp = bp.v_compensations[g];
  if (comp > 0 && v_comp != scalar_t(0)) {
    const scalar_t a0 = st.cov2d[0], b0 = st.cov2d[1], c0 = st.cov2d[2];
    const scalar_t e = p.eps2d;
    const scalar_t scale = v_comp / (scalar_t(2) * comp * st.det * st.det);
    vm2[0][0] += scale * (c0 * st.det - st.det_orig * (c0 + e));
    vm2[1][1] += scale * (a0 * st.det - st.det_orig * (a0 + e));
    const scalar_t vb = scale * (scalar_t(2) * b0 * (st.det_orig - st.det));  // d/db of the scalar b
    vm2[0][1] += scalar_t(0.5) * vb;
    vm2[1][0] += scalar_t(0.5) * vb;
  }

  // cov2d = J Sigma_c J^T:  dSigma_c = J^T V J,  dJ = 2 V J Sigma_c (V, Sigma_c symmetric).
  Mat3<scalar_t> v_cov_c;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      scalar_t s = 0;
      for (int u = 0; u < 2; ++u)
        for (int v = 0; v < 2; ++v) s += st.jac[u][i] * vm2[u][v] * st.jac[v][j];
      v_cov_c.m[i][j] = s;
    }
  scalar_t v_jac[2][3];
  for (int u = 0; u < 2; ++u)
    for (int j = 0; j < 3; ++j) {
      scalar_t s = 0;
      for (int v = 0; v < 2; ++v)
        for (int i = 0; i < 3; ++i) s += vm2[u][v] * st.jac[v][i] * st.cov_c.m[i][j];
      v_jac[u][j] = scalar_t(2) * s;
    }

  // J(x, y, z) and mean2d(x, y, z) -> dL/dcam. tx = z clamp(x/z): dtx/dx = 1, dtx/dz = 0 inside
  // the clamp; dtx/dx = 0, dtx/dz = tx/z when clamped (autograd of the PyTorch twin).
  const scalar_t z2 = z * z, z3 = z2 * z;
  const scalar_t* vmd = bp.v_means2d + 2 * g;
  scalar_t v_cam[3];
  v_cam[0] = vmd[0] * fx / z;
  v_cam[1] = vmd[1] * fy / z;
  v_cam[2] = -vmd[0] * fx * st.cam[0] / z2 - vmd[1] * fy * st.cam[1] / z2 + bp.v_depths[g];
  const scalar_t v_tx = -fx / z2 * v_jac[0][2], v_ty = -fy / z2 * v_jac[1][2];
  v_cam[2] += -fx / z2 * v_jac[0][0] - fy / z2 * v_jac[1][1] + scalar_t(2) * fx * st.tx / z3 * v_jac[0][2] +
              scalar_t(2) * fy * st.ty / z3 * v_jac[1][2];
  if (st.clamp_x) v_cam[2] += v_tx * st.tx / z; else v_cam[0] += v_tx;
  if (st.clamp_y) v_cam[2] += v_ty * st.ty / z; else v_cam[1] += v_ty;

  // cam = R_c mu + t_c,  Sigma_c = R_c Sigma R_c^T.
  for (int j = 0; j < 3; ++j)
    v_mean[j] = st.rot_c.m[0][j] * v_cam[0] + st.rot_c.m[1][j] * v_cam[1] + st.rot_c.m[2][j] * v_cam[2];
  const Mat3<scalar_t> v_cov = matmul(matmul(transpose(st.rot_c), v_cov_c), st.rot_c);

  if (bp.v_covars != nullptr) {
    scalar_t* out = bp.v_covars + 6 * g;
    out[0] = v_cov.m[0][0];
    out[1] = v_cov.m[0][1] + v_cov.m[1][0];
    out[2] = v_cov.m[0][2] + v_cov.m[2][0];
    out[3] = v_cov.m[1][1];
    out[4] = v_cov.m[1][2] + v_cov.m[2][1];
    out[5] = v_cov.m[2][2];
    return;
  }
  // Sigma = M M^T, M = R diag(s):  dM = (V + V^T) M,  dR_ij = dM_ij s_j,  ds_j = sum_i dM_ij R_ij.
  const scalar_t* s = p.scales + 3 * g;
  Mat3<scalar_t> m, v_rot;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) m.m[i][j] = rot.m[i][j] * s[j];
  scalar_t* v_scale = bp.v_scales + 3 * g;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      scalar_t dm = 0;
      for (int u = 0; u < 3; ++u) dm += (v_cov.m[i][u] + v_cov.m[u][i]) * m.m[u][j];
      v_rot.m[i][j] = dm * s[j];
      v_scale[j] += dm * rot.m[i][j];
    }
  scalar_t v_unit[4];
  quat_to_rotmat_vjp(q_unit[0], q_unit[1], q_unit[2], q_unit[3], v_rot, v_unit);
  // q_unit = q / |q|:  dq = (dq_unit - q_unit (q_unit . dq_unit)) / |q|.
  const scalar_t* q = p.quats + 4 * g;
  const scalar_t norm = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  const scalar_t dot = q_unit[0] * v_unit[0] + q_unit[1] * v_unit[1] + q_unit[2] * v_unit[2] + q_unit[3] * v_unit[3];
  for (int i = 0; i < 4; ++i) bp.v_quats[4 * g + i] = (v_unit[i] - q_unit[i] * dot) / norm;
}

template <typename scalar_t>
void project_forward_cuda(const ProjectParams<scalar_t>& p, void* stream);
template <typename scalar_t>
void project_backward_cuda(const ProjectBackwardParams<scalar_t>& p, void* stream);

}  // namespace render3d
