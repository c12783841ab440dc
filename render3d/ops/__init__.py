"""Native ops: their build and loading, dispatch, autograd, and a PyTorch twin of each.

| op | native (cuda/<op>/) | twin | public entry |
|---|---|---|---|
| compositing | ``render3d::composite_fwd`` / ``composite_bwd`` | `composite.composite_torch` | `render3d.volume.composite`, `composite_packed` |
| inverse-CDF sampling | ``render3d::sample_pdf`` | `sample_pdf.sample_pdf_torch` | `render3d.rays.importance_sample` |
| occupancy marching | ``render3d::occupancy_march`` | `march.occupancy_march_torch` | `render3d.rays.OccupancyGrid` |

Each public entry takes ``impl="auto" | "native" | "torch"`` (see `_dispatch`). Importing
this package never compiles; `_build.load_native` builds on first use.
"""
