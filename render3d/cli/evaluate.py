"""`render3d eval images | shapes | generator`: metrics between what exists on disk (image
sets, shape sets, or a trained generator against a posed dataset), written as JSON with the
settings used. Each kind of input is one subcommand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .dataset import _writable

IMAGES_EPILOG = """examples:
  render3d eval images data/ffhq.zip samples/ --inception ~/weights/inception-2015-12-05.pt
  RENDER3D_INCEPTION=~/weights/inception-2015-12-05.pt render3d eval images real/ fake.zip --out fid.json
REAL and FAKE: folders or uncompressed zips of images (EG3D datasets, synthetic datasets,
sample folders); every image file is used, in sorted order. The network is the TorchScript
Inception of StyleGAN2-ADA, EG3D and clean-fid (inception-2015-12-05.pt), read from a local
file and never downloaded."""

SHAPES_EPILOG = """examples:
  render3d eval shapes outputs/meshes/ outputs/synth/
  render3d eval shapes samples/ outputs/synth/ --points 2048 --normalize unit_box --out shapes.json
GENERATED: a folder of meshes (PLY, OBJ, GLB, OFF, STL) or point sets (.npy [N, 3]).
REFERENCE: a synthetic dataset (its object meshes, from ground_truth.json) or such a folder.
Chamfer distance: mean squared nearest-neighbour distance, summed over both directions."""


def add_images(sub) -> None:
    p = sub.add_parser("images", help="FID and KID between two image sets", epilog=IMAGES_EPILOG,
                       description="FID and KID between two image sets from Inception features.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("real", type=Path, help="reference images: a folder or zip")
    p.add_argument("fake", type=Path, help="images to score: a folder or zip")
    p.add_argument("--inception", type=Path, default=None,
                   help="inception-2015-12-05.pt (default: $RENDER3D_INCEPTION, else ~/.cache/render3d/)")
    p.add_argument("--max-images", type=int, default=None, help="use at most this many from each set (default: all)")
    p.add_argument("--batch", type=int, default=32, help="images per batch (default: 32)")
    p.add_argument("--kid-subsets", type=int, default=100, help="KID subsets (default: 100, as EG3D)")
    p.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size (default: 1000, as EG3D)")
    p.add_argument("--device", default="cpu", help="torch device for the network (default: cpu)")
    p.add_argument("--out", type=Path, default=Path("outputs/eval/images.json"),
                   help="results JSON (default: outputs/eval/images.json)")
    p.set_defaults(run=run_images)


def run_images(args) -> int:
    from tqdm import tqdm

    from render3d.metrics import ImageFolder, InceptionFeatures, extract_features, fid, kid, write_results

    from ._args import UsageError, check_at_least, report, said_as

    prog = "render3d eval images"
    try:   # FID's covariances and KID's unbiased estimate need two images of each set at least
        check_at_least("eval images", args, {"batch": 1, "kid_subsets": 1, "kid_subset_size": 2, "max_images": 2})
        sets = {}
        for name, path in (("real", args.real), ("fake", args.fake)):
            with said_as("eval images", {"path": name.upper()}):
                sets[name] = ImageFolder(path, args.max_images)
        few = [f"{name.upper()} ({images.storage.path}) holds {len(images)}" for name, images in sets.items()
               if len(images) < 2]
        if few:
            raise UsageError(f"{prog}: FID and KID need at least 2 images in each set, got: {'; '.join(few)}")
        # the network after the inputs: the cheaper fix first
        with said_as("eval images", {"path": "--inception", "device": "--device"}):
            network = InceptionFeatures(args.inception, device=args.device)
    except UsageError as error:
        return report(error)
    if not _writable(prog, args.out.parent):            # made once the inputs are known good
        return 2
    try:
        features = {}
        for name, images in sets.items():
            with tqdm(images.batches(args.batch), total=-(-len(images) // args.batch), desc=f"{name} features",
                      unit="batch") as batches:          # closed before a message
                features[name] = extract_features(batches, network)
    except ValueError as exc:                           # a damaged image, or one of another size, says which
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    kid_mean, kid_std = kid(features["real"], features["fake"], subsets=args.kid_subsets,
                            subset_size=args.kid_subset_size)
    metrics = {"fid": fid(features["real"], features["fake"]), "kid": kid_mean, "kid_std": kid_std}
    settings = {"network": str(network.path), "network_file": network.path.name, "feature_dim":
                int(features["real"].shape[1]), "covariance": "divided by N (EG3D)", "kid_subsets": args.kid_subsets,
                "kid_subset_size": args.kid_subset_size, "resize": "inside the network (299 x 299)"}
    inputs = {name: {"path": str(images.storage.path.resolve()), "images": len(images),
                     "size": list(images.size)} for name, images in sets.items()}
    path = write_results(args.out, metrics, settings, inputs)
    print(f"{prog}: FID {metrics['fid']:.4f}  KID {kid_mean:.6f} +- {kid_std:.6f}  "
          f"({len(sets['real'])} real, {len(sets['fake'])} fake)")
    print(f"  results {path.resolve()}")
    return 0


def add_shapes(sub) -> None:
    p = sub.add_parser("shapes", help="COV, MMD and 1-NNA of generated shapes against reference meshes",
                       epilog=SHAPES_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Coverage, minimum matching distance and 1-NN accuracy over Chamfer distances "
                                   "between point sets sampled from the shapes.")
    p.add_argument("generated", type=Path, help="folder of generated meshes or point sets")
    p.add_argument("reference", type=Path, help="synthetic dataset folder, or a folder of meshes")
    p.add_argument("--points", type=int, default=2048, help="points sampled per shape (default: 2048)")
    p.add_argument("--normalize", choices=["none", "unit_box"], default="none",
                   help="none: compare in world units; unit_box: each shape's box centred, longest side 1")
    p.add_argument("--max-shapes", type=int, default=None, help="use at most this many from each set")
    p.add_argument("--seed", type=int, default=0, help="seed of the surface sampling (default: 0)")
    p.add_argument("--out", type=Path, default=Path("outputs/eval/shapes.json"),
                   help="results JSON (default: outputs/eval/shapes.json)")
    p.set_defaults(run=run_shapes)


def _shape_files(prog: str, path: Path) -> list[Path] | None:
    """A synthetic dataset's object meshes, or the shape files of a folder; None (after saying
    why) when there are none."""
    from render3d.datasets.synth import GROUND_TRUTH_FILE
    from render3d.metrics.generators import dataset_meshes
    from render3d.metrics.shapes import MESH_SUFFIXES
    from render3d.training.checkpoint import is_generator_path

    if (path / GROUND_TRUTH_FILE).is_file():
        files = dataset_meshes(path)
    elif path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.suffix.lower() in (*MESH_SUFFIXES, ".npy"))
    else:
        files = []
    if not files:
        found = ("does not exist" if not path.exists() else "is a file, not a folder" if path.is_file()
                 else "holds no shapes")
        hint = (f"; {path} is a trained generator: `render3d eval generator {path} DATASET` measures its shapes"
                if is_generator_path(path) else "")
        print(f"{prog}: {path} {found} (expected a synthetic dataset or a folder of meshes or .npy points){hint}",
              file=sys.stderr)
        return None
    return files


def run_shapes(args) -> int:
    from tqdm import tqdm

    from render3d.metrics import chamfer_matrix, coverage_mmd_1nna, load_points, write_results
    from render3d.metrics.shapes import normalize_points

    prog = "render3d eval shapes"
    if args.points <= 0 or (args.max_shapes is not None and args.max_shapes <= 0):
        print(f"{prog}: --points and --max-shapes expected positive numbers, got {args.points}, {args.max_shapes}",
              file=sys.stderr)
        return 2
    files = {name: _shape_files(prog, path) for name, path in (("generated", args.generated),
                                                               ("reference", args.reference))}
    if None in files.values():
        return 2
    if not _writable(prog, args.out.parent):            # made once the inputs are known good
        return 2
    points = {}
    for name, paths in files.items():
        paths = files[name] = paths[:args.max_shapes]
        try:
            with tqdm(paths, desc=f"{name} shapes", unit="shape") as bar:   # closed before a message
                points[name] = [normalize_points(load_points(p, args.points, args.seed), args.normalize)
                                for p in bar]
        except ValueError as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return 2
    generated, reference = points["generated"], points["reference"]
    print(f"{prog}: Chamfer distances between {len(generated)} generated and {len(reference)} reference shapes")
    metrics = coverage_mmd_1nna(chamfer_matrix(generated, reference, progress=True),
                                chamfer_matrix(generated, progress=True), chamfer_matrix(reference, progress=True))
    settings = {"points": args.points, "normalize": args.normalize, "seed": args.seed,
                "distance": "Chamfer: mean squared nearest-neighbour distance, summed over both directions",
                "one_nn_ties": "lower index, generated first"}
    inputs = {name: {"path": str(path.resolve()), "shapes": len(files[name])}
              for name, path in (("generated", args.generated), ("reference", args.reference))}
    path = write_results(args.out, metrics, settings, inputs)
    print(f"  COV {metrics['coverage']:.4f}  MMD {metrics['mmd']:.6g}  1-NNA {metrics['one_nn_accuracy']:.4f}")
    print(f"  results {path.resolve()}")
    return 0


GENERATOR_EPILOG = """examples:
  render3d eval generator assets/volumegan_synth64.safetensors outputs/synth64
  render3d eval generator runs/synth64 outputs/synth64 --shapes 64 --images 2000 --inception inception-2015-12-05.pt
CHECKPOINT: a generator file, a checkpoint folder or a run folder (its newest checkpoint).
DATASET: a synthetic dataset (`render3d dataset synth`): its object meshes are the reference
shapes, its images and cameras the reference images. Shapes: the subjects of seeds
0 .. --shapes - 1, meshed from the density (marching cubes at --mesh-resolution, Otsu's
level) and sampled on their surface. A subject without a surface (a barely trained or collapsing
generator's) is named and scored as one: it covers no reference mesh and 1-NNA tells it apart
(shapes/empty is their fraction); when none has a surface, nothing is scored. FID/KID run when
Inception weights are found (--inception,
$RENDER3D_INCEPTION or ~/.cache/render3d/) and are skipped, saying so, otherwise."""


def add_generator(sub) -> None:
    p = sub.add_parser("generator", help="a trained generator against a synthetic dataset: COV/MMD/1-NNA, FID/KID",
                       epilog=GENERATOR_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="3D metrics of a generator's shapes against the dataset's meshes, and FID/KID of "
                                   "its images against the dataset's when Inception weights are present (reals "
                                   "larger than the generator's output are box-filtered down to it, as in "
                                   "training).")
    p.add_argument("checkpoint", type=Path, help="generator file, checkpoint folder or run folder")
    p.add_argument("dataset", type=Path, help="synthetic dataset folder")
    p.add_argument("--shapes", type=int, default=32, help="generated shapes (seeds 0..N-1) (default: 32)")
    p.add_argument("--max-reference", type=int, default=None, help="use at most this many reference meshes")
    p.add_argument("--mesh-resolution", type=int, default=64, help="marching-cubes grid per side (default: 64)")
    p.add_argument("--points", type=int, default=2048, help="points sampled per shape (default: 2048)")
    p.add_argument("--images", type=int, default=1000, help="generated and real images for FID/KID (default: 1000)")
    p.add_argument("--inception", type=Path, default=None,
                   help="inception-2015-12-05.pt (default: $RENDER3D_INCEPTION, else ~/.cache/render3d/)")
    p.add_argument("--out", type=Path, default=None,
                   help="results JSON (default: outputs/eval/<run>_step-<N>.json for a run's checkpoint, "
                        "outputs/eval/<name>.json for a generator file)")
    p.set_defaults(run=run_generator)


def run_generator(args) -> int:
    from render3d.datasets import SyntheticDataset
    from render3d.mesh import NoSurfaceError
    from render3d.metrics import load_points, write_results
    from render3d.metrics.generators import generator_shapes, scored_shapes
    from render3d.training.checkpoint import generator_name

    from ._args import (UsageError, check_at_least, checkpoint_styles, load_checkpoint_generator, report, restated,
                        said_as)

    prog = "render3d eval generator"
    try:   # marching cubes needs two samples per side; FID's covariances and KID two images at least
        check_at_least("eval generator", args, {"shapes": 1, "points": 1, "images": 2, "mesh_resolution": 2,
                                                "max_reference": 1})
        G, meta = load_checkpoint_generator("eval generator", args.checkpoint, argument="CHECKPOINT")
        with said_as("eval generator", {"path": "DATASET"}):
            dataset = SyntheticDataset(args.dataset, with_geometry=False)
        # a diverged generator's NaN densities failed deep in marching cubes, a traceback
        checkpoint_styles("eval generator", G, meta, list(range(args.shapes)), 1.0, argument="CHECKPOINT")
        if args.out is None:                            # the scores of two runs, or two steps, apart
            args.out = Path("outputs/eval") / f"{generator_name(args.checkpoint)}.json"
    except UsageError as error:
        return report(error)
    files = _shape_files(prog, args.dataset)
    if files is None:                                   # said why
        return 2
    if not _writable(prog, args.out.parent):            # made once the inputs are known good
        return 2
    try:
        reference = [load_points(f, args.points, seed=0) for f in files[:args.max_reference]]
    except ValueError as error:                         # a damaged reference mesh names itself
        return report(UsageError(f"{prog}: {error}"))
    print(f"{prog}: {args.shapes} generated shapes against {len(reference)} reference meshes")
    try:
        generated = generator_shapes(G, range(args.shapes), view=meta["view"], resolution=args.mesh_resolution,
                                     points=args.points, empty="none", progress=True)
    except NoSurfaceError as error:                     # no subject has a surface: a collapsed generator
        return report(restated("eval generator", error, {"seeds": "CHECKPOINT"}))
    empty = [seed for seed, points in enumerate(generated) if points is None]
    if empty:                                           # an early or collapsing generator's: scored, and said
        print(f"{prog}: {len(empty)} of {args.shapes} subjects have no surface (seed{'s' * (len(empty) > 1)} "
              f"{_seeds_said(empty)}): they cover no reference mesh and count as told apart in 1-NNA "
              f"(shapes/empty)")
    shapes = scored_shapes(generated, reference, progress=True)
    metrics = {f"shapes/{k}": v for k, v in shapes.items()}
    settings = {"shapes": args.shapes, "mesh_resolution": args.mesh_resolution, "points": args.points,
                "level": "Otsu", "distance": "Chamfer: mean squared nearest-neighbour distance, both directions",
                "empty_seeds": empty}
    inception = _find_inception(args.inception)
    if inception is None:
        print(f"{prog}: no Inception weights found (--inception, $RENDER3D_INCEPTION, ~/.cache/render3d/): "
              "FID/KID skipped")
        settings["fid"] = "skipped: no Inception weights"
    elif len(dataset.labels) < 2:
        print(f"{prog}: the dataset holds {len(dataset.labels)} image, FID/KID need 2 at least: skipped")
        settings["fid"] = f"skipped: the dataset holds {len(dataset.labels)} image"
    else:
        image_metrics, reals = _image_metrics(G, dataset, inception, args.images)
        metrics.update(image_metrics)
        settings.update({"images": args.images, "network": str(inception), "cameras": "the dataset's labels, in order",
                         "resolution": G.resolutions[-1], "reals": reals})
    inputs = {"checkpoint": str(args.checkpoint.resolve()), "dataset": str(args.dataset.resolve()),
              "training": meta.get("training", {})}
    path = write_results(args.out, metrics, settings, inputs)
    print("  " + "  ".join(f"{k} {v:.6g}" for k, v in metrics.items()))
    print(f"  results {path.resolve()}")
    return 0


def _seeds_said(seeds: list[int], most: int = 10) -> str:
    """"3, 7, 12", or the first `most` and how many more."""
    shown = ", ".join(map(str, seeds[:most]))
    return shown if len(seeds) <= most else f"{shown} and {len(seeds) - most} more"


def _find_inception(path: Path | None) -> Path | None:
    from render3d.metrics import default_inception_path

    candidate = path or default_inception_path()
    return candidate if candidate.is_file() else None


def _image_metrics(G, dataset, inception: Path, count: int) -> tuple[dict[str, float], str]:
    """FID and KID of the generator's images against the dataset's, and how the reals were
    treated (`dataset_image_features`)."""
    from render3d.metrics import InceptionFeatures
    from render3d.metrics.generators import dataset_image_features, image_metrics

    network = InceptionFeatures(inception)
    real, reals = dataset_image_features(dataset, network, count, G.resolutions[-1])
    return image_metrics(G, dataset.labels, network, real), reals


def add_eval(sub) -> None:
    p = sub.add_parser("eval", help="metrics: FID/KID between image sets, COV/MMD/1-NNA between shape sets",
                       description="Evaluate what exists on disk; results are JSON with the settings used.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  render3d eval images real/ fake/ --inception inception-2015-12-05.pt\n"
                              "  render3d eval shapes meshes/ outputs/synth/\n"
                              "  render3d eval generator assets/volumegan_synth64.safetensors outputs/synth/")
    inner = p.add_subparsers(dest="eval_command", metavar="COMMAND")
    add_images(inner)
    add_shapes(inner)
    add_generator(inner)
    p.set_defaults(run=lambda args: p.print_help() or 0)
