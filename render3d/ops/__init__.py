"""Native ops: their build and loading, dispatch, autograd, and a PyTorch twin of each.

- compositing: native ``render3d::composite_fwd`` / ``composite_bwd``, twin
  `composite.composite_torch`, public `render3d.volume.composite` and `composite_packed`
- inverse-CDF sampling: native ``render3d::sample_pdf``, twin `sample_pdf.sample_pdf_torch`,
  public `render3d.rays.importance_sample`
- occupancy marching: native ``render3d::occupancy_march``, twin `march.occupancy_march_torch`,
  public `render3d.rays.OccupancyGrid`
- Gaussian splats (projection, tile binning, rasterization): `splat`, public
  `render3d.splat.rasterize`

The native sources lie in cuda/<op>/.

Each public entry takes ``impl="auto" | "native" | "torch"`` (see `_dispatch`). Importing
this package never compiles; `_build.load_native` builds on first use.
"""
