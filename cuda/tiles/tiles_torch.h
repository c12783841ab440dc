// Torch glue of tile binning shared by the CPU and CUDA registrations: count, exclusive scan,
// fill, a stable sort by key (`sort`), and each tile's range in the sorted lists.
#pragma once

#include <tuple>
#include <vector>

#include "render3d/torch_glue.h"
#include "tiles.h"

namespace render3d {

inline int bit_length(int64_t x) {
  int bits = 0;
  while (x > 0) {
    ++bits;
    x >>= 1;
  }
  return bits;
}

// Returns sorted keys [M] int64, flat ids [M] int32 and tile_offsets [B * tiles + 1] int64.
template <typename Count, typename Fill, typename Sort>
std::tuple<at::Tensor, at::Tensor, at::Tensor> isect_tiles_torch(const at::Tensor& means2d, const at::Tensor& radii,
                                                                 const at::Tensor& depths, int64_t tiles_x,
                                                                 int64_t tiles_y, Count&& count, Fill&& fill,
                                                                 Sort&& sort) {
  constexpr const char* fn = "render3d::isect_tiles";
  TORCH_CHECK(means2d.dim() == 3 && means2d.size(2) == 2, fn, ": argument 'means2d' expected shape [B, N, 2], got ",
              means2d.sizes());
  TORCH_CHECK(means2d.scalar_type() == at::kFloat || means2d.scalar_type() == at::kDouble, fn,
              ": argument 'means2d' expected dtype float32 or float64, got ", means2d.scalar_type());
  TORCH_CHECK(means2d.is_contiguous(), fn, ": argument 'means2d' must be contiguous");
  const int64_t B = means2d.size(0), N = means2d.size(1);
  TORCH_CHECK(radii.scalar_type() == at::kInt && radii.is_contiguous() && radii.sizes() == means2d.sizes(), fn,
              ": argument 'radii' expected a contiguous int32 tensor of shape ", means2d.sizes(), ", got ",
              radii.sizes());
  check_device(radii, means2d, fn, "radii");
  check_same(depths, means2d, fn, "depths");
  TORCH_CHECK(tiles_x >= 0 && tiles_y >= 0, fn, ": arguments 'tiles_x', 'tiles_y' expected >= 0, got ", tiles_x, ", ",
              tiles_y);
  TORCH_CHECK(depths.dim() == 2 && depths.size(0) == B && depths.size(1) == N, fn,
              ": argument 'depths' expected shape [B, N], got ", depths.sizes());
  TORCH_CHECK(B * N < (int64_t(1) << 31), fn, ": at most 2^31 - 1 Gaussians in all images, got ", B * N);
  const int tile_bits = bit_length(tiles_x * tiles_y);
  TORCH_CHECK(32 + tile_bits + bit_length(B) <= 63, fn, ": ", B, " images of ", tiles_x * tiles_y,
              " tiles do not fit the 64-bit sort key");

  auto long_opts = means2d.options().dtype(at::kLong);
  auto counts = at::zeros({B * N}, long_opts);
  at::Tensor keys, ids;
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "isect_tiles", [&] {
    TileParams<scalar_t> p{};
    p.n_images = B;
    p.n_gaussians = N;
    p.means2d = means2d.data_ptr<scalar_t>();
    p.radii = radii.data_ptr<int32_t>();
    p.depths = depths.data_ptr<scalar_t>();
    p.tiles_x = static_cast<int32_t>(tiles_x);
    p.tiles_y = static_cast<int32_t>(tiles_y);
    p.tile_bits = tile_bits;
    p.counts = counts.data_ptr<int64_t>();
    if (B * N > 0) count(p);
    auto cumulative = counts.cumsum(0);
    const int64_t n_isects = B * N > 0 ? cumulative[-1].item<int64_t>() : 0;
    auto starts = cumulative - counts;
    keys = at::empty({n_isects}, long_opts);
    ids = at::empty({n_isects}, means2d.options().dtype(at::kInt));
    if (n_isects > 0) {
      p.starts = starts.data_ptr<int64_t>();
      p.keys = keys.data_ptr<int64_t>();
      p.ids = ids.data_ptr<int32_t>();
      fill(p);
      std::tie(keys, ids) = sort(keys, ids, 32 + tile_bits + bit_length(B));
    }
  });
  // Tile (b, t) starts where the high key bits first reach (b << tile_bits) | t.
  const int64_t tiles = tiles_x * tiles_y;
  auto image = at::arange(B, long_opts).unsqueeze(1);
  auto tile = at::arange(tiles, long_opts).unsqueeze(0);
  auto queries = (image * (int64_t(1) << tile_bits) + tile).reshape({-1});
  auto starts = at::searchsorted(at::bitwise_right_shift(keys, 32), queries);
  std::vector<at::Tensor> parts{starts, at::full({1}, keys.size(0), long_opts)};
  return std::make_tuple(keys, ids, at::cat(parts));
}

}  // namespace render3d
