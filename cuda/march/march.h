// Ray marching through a multi-level occupancy grid: the math shared by the CPU loop and the
// CUDA kernels.
//
// Sample positions. Every ray steps on its own lattice starting at its near plane:
//   cone_angle == 0:  t_k = near + k * step_size
//   cone_angle  > 0:  t_0 = near, t_{k+1} = t_k + clamp(t_k * cone_angle, step_size, max_step)
// (nerfacc's traverse_grids steps on the same lattice). Interval k = [t_k, t_{k+1}] is a sample
// iff its midpoint m_k lies before the far plane, inside the grid, and in an occupied cell.
// Empty-space skipping only jumps over lattice points whose midpoints are certainly inside the
// empty cell just found, so the samples do not depend on it: the PyTorch twin evaluates every
// lattice point and gets exactly the same set.
//
// Grid. Level l covers centre +- half * 2^l with resolution^3 cells; a point is looked up in
// the finest level that contains it. Occupancy is a bitfield: cell (x, y, z) of level l is bit
// ((x * res + y) * res + z) of that level's res^3 / 8 bytes, least significant bit first.
// With several levels, resolution must be a multiple of 4, so that each level's box falls on
// cell boundaries of the next coarser level.
#pragma once

#include "render3d/common.h"

namespace render3d {

template <typename scalar_t>
struct MarchParams {
  int64_t n_rays;               // R
  const scalar_t* origins;      // [R, 3] ray origins
  const scalar_t* directions;   // [R, 3] ray directions (t is measured in their units)
  const scalar_t* t_near;       // [R] where each ray's lattice starts
  const scalar_t* t_far;        // [R] midpoints at or past this are not sampled
  const uint8_t* bitfield;      // [L, res^3 / 8] occupancy bits
  int32_t levels;               // L
  int32_t resolution;           // res, cells per axis at every level
  scalar_t center[3];           // centre of every level's box
  scalar_t half[3];             // half extent of the level-0 box
  scalar_t step_size;           // constant step, and the minimum step with a cone angle
  scalar_t cone_angle;          // 0: constant steps; > 0: steps grow as t * cone_angle
  scalar_t max_step;            // upper clamp of the step with a cone angle
  int64_t max_samples;          // per-ray cap on samples; <= 0 means none
  int64_t* counts;              // [R] count pass out: samples of each ray
  const int64_t* offsets;       // [R + 1] fill pass in: first output slot of each ray
  int64_t* ray_ids;             // [N] fill pass out
  scalar_t* t_starts;           // [N] fill pass out
  scalar_t* t_ends;             // [N] fill pass out
};

// Slack added around box entry/exit distances before they are trusted for skipping; the
// decisions that define the samples never use these distances.
template <typename scalar_t>
R3D_HD scalar_t march_margin(scalar_t t) {
  return scalar_t(1e-4) * (scalar_t(1) + (t < scalar_t(0) ? -t : t));
}

// Slab test of a ray against the box [lo, hi]: sets t_enter > t_exit when it misses.
template <typename scalar_t>
R3D_HD void march_ray_box(const scalar_t* o, const scalar_t* d, const scalar_t* lo, const scalar_t* hi,
                          scalar_t& t_enter, scalar_t& t_exit) {
  t_enter = -scalar_t(INFINITY);
  t_exit = scalar_t(INFINITY);
  for (int a = 0; a < 3; ++a) {
    if (d[a] == scalar_t(0)) {
      if (o[a] < lo[a] || o[a] > hi[a]) {
        t_enter = scalar_t(INFINITY);
        t_exit = -scalar_t(INFINITY);
        return;
      }
      continue;
    }
    const scalar_t inv = scalar_t(1) / d[a];
    scalar_t t0 = (lo[a] - o[a]) * inv, t1 = (hi[a] - o[a]) * inv;
    if (t0 > t1) { const scalar_t s = t0; t0 = t1; t1 = s; }
    t_enter = max_(t_enter, t0);
    t_exit = min_(t_exit, t1);
  }
}

// The cell of the finest level containing the point at distance t. Returns false when the
// point is outside the grid. The operations (and their rounding) match the PyTorch twin.
template <typename scalar_t>
R3D_HD bool march_lookup(const MarchParams<scalar_t>& p, const scalar_t* o, const scalar_t* d, scalar_t t,
                         int32_t& level, int32_t cell[3], scalar_t& scale) {
  scalar_t q[3];
  scalar_t extent = scalar_t(0);
  for (int a = 0; a < 3; ++a) {
    const scalar_t x = add_rn(o[a], mul_rn(t, d[a]));
    q[a] = div_rn(add_rn(x, -p.center[a]), p.half[a]);
    const scalar_t m = q[a] < scalar_t(0) ? -q[a] : q[a];
    extent = max_(extent, m);
  }
  const scalar_t outer = scalar_t(int64_t(1) << (p.levels - 1));
  if (!(extent <= outer)) return false;  // also rejects NaN
  level = 0;
  scale = scalar_t(1);
  while (extent > scale) {
    ++level;
    scale = scale * scalar_t(2);
  }
  const scalar_t res = scalar_t(p.resolution);
  for (int a = 0; a < 3; ++a) {
    const scalar_t u = mul_rn(mul_rn(add_rn(div_rn(q[a], scale), scalar_t(1)), scalar_t(0.5)), res);
    const int64_t i = static_cast<int64_t>(floor(u));
    cell[a] = static_cast<int32_t>(clamp_<int64_t>(i, 0, p.resolution - 1));
  }
  return true;
}

template <typename scalar_t>
R3D_HD bool march_occupied(const MarchParams<scalar_t>& p, int32_t level, const int32_t cell[3]) {
  const int64_t res = p.resolution;
  const int64_t bit = (static_cast<int64_t>(cell[0]) * res + cell[1]) * res + cell[2];
  const int64_t level_bytes = res * res * res / 8;
  return (p.bitfield[level * level_bytes + (bit >> 3)] >> (bit & 7)) & 1;
}

// Where the ray leaves a cell (for skipping only).
template <typename scalar_t>
R3D_HD scalar_t march_cell_exit(const MarchParams<scalar_t>& p, const scalar_t* o, const scalar_t* d,
                                scalar_t scale, const int32_t cell[3]) {
  scalar_t lo[3], hi[3];
  for (int a = 0; a < 3; ++a) {
    const scalar_t width = scalar_t(2) * p.half[a] * scale / scalar_t(p.resolution);
    lo[a] = p.center[a] - p.half[a] * scale + width * scalar_t(cell[a]);
    hi[a] = lo[a] + width;
  }
  scalar_t t_enter, t_exit;
  march_ray_box(o, d, lo, hi, t_enter, t_exit);
  return t_exit;
}

// Position of lattice point k (constant step) or the step after t (cone angle).
template <typename scalar_t>
R3D_HD scalar_t march_lattice(scalar_t near, int64_t k, scalar_t step) {
  return add_rn(near, mul_rn(scalar_t(k), step));
}
template <typename scalar_t>
R3D_HD scalar_t march_next(const MarchParams<scalar_t>& p, scalar_t t) {
  return add_rn(t, clamp_(mul_rn(t, p.cone_angle), p.step_size, p.max_step));
}
template <typename scalar_t>
R3D_HD scalar_t march_midpoint(scalar_t t0, scalar_t t1) {
  return mul_rn(add_rn(t0, t1), scalar_t(0.5));
}

// Marches one ray. The count pass (kFill = false) returns the number of samples; the fill
// pass writes them from offsets[ray] on.
template <typename scalar_t, bool kFill>
R3D_HD int64_t march_ray(const MarchParams<scalar_t>& p, int64_t ray) {
  const scalar_t* o = p.origins + 3 * ray;
  const scalar_t* d = p.directions + 3 * ray;
  const scalar_t near = p.t_near[ray];
  const scalar_t far = p.t_far[ray];
  if (!(near < far)) return 0;

  const scalar_t outer = scalar_t(int64_t(1) << (p.levels - 1));
  scalar_t lo[3], hi[3];
  for (int a = 0; a < 3; ++a) {
    lo[a] = p.center[a] - p.half[a] * outer;
    hi[a] = p.center[a] + p.half[a] * outer;
  }
  scalar_t t_enter, t_exit;
  march_ray_box(o, d, lo, hi, t_enter, t_exit);
  if (!(t_enter <= t_exit)) return 0;
  const scalar_t start = max_(near, t_enter - march_margin(t_enter));
  const scalar_t stop = min_(far, t_exit + march_margin(t_exit));
  const bool constant = p.cone_angle <= scalar_t(0);

  // Lattice state: interval [t0, t1], index k for constant steps.
  int64_t k = 0;
  scalar_t t0 = near, t1;
  if (constant) {
    const scalar_t first = ceil((start - near) / p.step_size - scalar_t(0.5)) - scalar_t(1);
    k = first > scalar_t(0) ? static_cast<int64_t>(first) : 0;
    t0 = march_lattice(near, k, p.step_size);
    t1 = march_lattice(near, k + 1, p.step_size);
  } else {
    t1 = march_next(p, t0);
  }
  // Advances the lattice by one point; false when the lattice stopped moving (float absorption).
  auto advance = [&]() -> bool {
    scalar_t t2;
    if (constant) {
      ++k;
      t2 = march_lattice(near, k + 1, p.step_size);
    } else {
      t2 = march_next(p, t1);
    }
    if (!(t2 > t1)) return false;
    t0 = t1;
    t1 = t2;
    return true;
  };
  // Bring the lattice to the first point whose midpoint reaches `start`.
  while (march_midpoint(t0, t1) < start) {
    if (!advance()) return 0;
  }

  int64_t n = 0;
  const int64_t base = kFill ? p.offsets[ray] : 0;
  while (true) {
    const scalar_t mid = march_midpoint(t0, t1);
    if (!(mid < stop)) break;  // stop <= far
    if (p.max_samples > 0 && n >= p.max_samples) break;
    if (kFill && base + n >= p.offsets[ray + 1]) break;  // never past the slots the count pass gave the ray
    int32_t level, cell[3];
    scalar_t scale;
    const bool inside = march_lookup(p, o, d, mid, level, cell, scale);
    if (inside && march_occupied(p, level, cell)) {
      if (kFill) {
        p.ray_ids[base + n] = ray;
        p.t_starts[base + n] = t0;
        p.t_ends[base + n] = t1;
      }
      ++n;
    } else if (inside) {
      // Empty cell: skip lattice points whose midpoints are surely still inside it.
      const scalar_t exit = march_cell_exit(p, o, d, scale, cell);
      const scalar_t target = exit - march_margin(exit);
      if (constant) {
        const scalar_t jump = ceil((target - near) / p.step_size - scalar_t(0.5)) - scalar_t(1);
        if (jump > scalar_t(k + 1)) {
          k = static_cast<int64_t>(jump) - 1;
          t1 = march_lattice(near, k + 1, p.step_size);
        }
      } else {
        bool moved = false;
        while (march_midpoint(t0, t1) < target) {
          if (!advance()) return n;
          moved = true;
        }
        if (moved) continue;  // the current point is past the skipped stretch: examine it
      }
    }
    if (!advance()) break;
  }
  return n;
}

template <typename scalar_t>
void march_count_cuda(const MarchParams<scalar_t>& p, void* stream);
template <typename scalar_t>
void march_fill_cuda(const MarchParams<scalar_t>& p, void* stream);

}  // namespace render3d
