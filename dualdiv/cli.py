"""The ``dualdiv`` command: every stage without Snakemake, calling the same entry functions.

Errors caused by the user (bad file, bad setting, corrupt artifact) print one
line on stderr — the file and the problem — and exit with code 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys

from dualdiv import __version__
from dualdiv.core.errors import DualdivError, InputError
from dualdiv.data.readers import FORMATS

EXIT_BAD_INPUT = 2

_INGEST_HELP = """\
Read raw multivariate time series and write them as one checked NetCDF file
(xarray Dataset, dims sample x channel x time) that the tile stage reads.

Formats, from the extension or --format:
  .ts          UEA/sktime time-series file (channels separated by ':', label last)
  .csv         wide table: one row per time point, a 'sample' column naming the
               series, one numeric column per channel, optional 'time' and 'label'
               columns, e.g.
                   sample,time,Fz,Cz,label
                   trial1,0,0.12,-0.30,open
                   trial1,1,0.15,-0.28,open
                   trial2,0,...
  .npy         array (n, channels, time), or (n, time) for a single channel
  .npz         array 'data' (or 'x'), optional 'labels', 'channel_names', 'sampling_rate'
  .nc/.h5      NetCDF/HDF5 written by xarray, dims (sample, channel, time)
Benchmark formats (--format only): finger_movements (UEA FingerMovements .ts, the 16
electrodes its rows hold whole), tmy3 (TMY3 hourly CSV -> daily 9 x 24 images), prices
(daily OHLCV CSV -> log-changes), spikes_sim (JSON simulator settings -> spike counts).
A file inside an installed Python package: package:<package>/<file>, e.g.
package:pvlib/data/723170TYA.CSV.
Several input files are concatenated along samples; they must share channels.

Rejected with a one-line error: NaN/inf values, series of unequal length (unless
--length-policy crop|pad), fewer than --min-samples samples, channel counts that
differ between files, malformed .ts lines (with the line number), unknown extensions.

example:  dualdiv ingest trials.csv -o raw.nc --sampling-rate 250 --units uV
"""

_TILE_HELP = """\
Turn raw.nc into the images every later stage uses: tiles.h5 with /images
(n, channels, time) float32, z-scored per channel with statistics of the training
split only (stored as attributes, so images map back to physical units), a seeded
train/test split (/split, stratified by label when labels exist) and /sample_id
(row in raw.nc). --window/--stride cut long recordings into several images; all
windows of one recording land in the same split.

example:  dualdiv tile raw.nc -o tiles.h5 --seed 0 --test-fraction 0.2
"""


_ESTIMATE_HELP = """\
Estimate the total correlation TC(X) = KL(P || product of marginals), in nats, of the
samples in DATA (.npy or .npz: an array (n, d) of vectors or (n, C, T) of images)
along the dependency-diffusion path: the pixels are ordered (--order) and cut into
K blocks (--steps); step k trains one neural Donsker-Varadhan critic telling the data
with blocks 1..k-1 independently permuted from the data with blocks 1..k permuted, and
TC is the sum of the K held-out step bounds. Each pixel is z-scored first (TC does not
change). Prints JSON: {"tc": nats, "stderr": nats, "steps": [{"step", "D", "stderr",
...}], ...}. Vectors use an MLP critic, images a small conv critic.

example:  dualdiv estimate X.npy --steps 4 --seed 0 > tc.json
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dualdiv",
        description="Generative sampling of small sets of multivariate time series in the dual "
                    "divergence space. Each subcommand runs one stage of the pipeline on files; "
                    "`snakemake --cores all` runs them all with caching.",
    )
    parser.add_argument("--version", action="version", version=f"dualdiv {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser("ingest", help="raw files → raw.nc", description=_INGEST_HELP,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ingest.add_argument("inputs", nargs="+", metavar="IN", help="raw data file(s)")
    ingest.add_argument("-o", "--out", required=True, help="output NetCDF file (raw.nc)")
    ingest.add_argument("--format", choices=FORMATS,
                        help="reader to use (default: from each file's extension)")
    ingest.add_argument("--min-samples", type=int, default=16, metavar="N",
                        help="fewer samples than N is an error (default: 16)")
    ingest.add_argument("--length-policy", choices=("error", "crop", "pad"), default="error",
                        help="series of unequal length: error (default), crop to the shortest, "
                             "pad to the longest by repeating the last value")
    ingest.add_argument("--sampling-rate", type=float, metavar="HZ", help="sampling rate in Hz")
    ingest.add_argument("--units", help="physical units of the values, e.g. uV")
    ingest.add_argument("--channel-names", metavar="A,B,...", help="comma-separated channel names")

    tile = commands.add_parser("tile", help="raw.nc → tiles.h5 (images, split, normalisation)",
                               description=_TILE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    tile.add_argument("raw", help="raw.nc written by `dualdiv ingest`")
    tile.add_argument("-o", "--out", required=True, help="output HDF5 file (tiles.h5)")
    tile.add_argument("--seed", type=int, default=0, help="seed of the train/test split (default: 0)")
    tile.add_argument("--test-fraction", type=float, default=0.2,
                      help="share of recordings held out for testing (default: 0.2)")
    tile.add_argument("--window", type=int, help="time points per image (default: whole series)")
    tile.add_argument("--stride", type=int, help="time points between windows (default: --window)")

    estimate = commands.add_parser("estimate", help="total correlation of an array, printed as JSON",
                                   description=_ESTIMATE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    estimate.add_argument("data", help=".npy/.npz array (n, d) or (n, C, T)")
    estimate.add_argument("--steps", type=int, default=4, metavar="K", help="number of path steps (default: 4)")
    estimate.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    estimate.add_argument("--order", choices=("time", "channel", "patch", "random"), default="time",
                          help="pixel order of the path (default: time, i.e. column strips)")
    estimate.add_argument("--substeps", choices=("pixel", "block"), default="pixel",
                          help="pixel: each step telescopes over single pixels (default); block: one DV per step")
    estimate.add_argument("--max-iterations", type=int, default=3000, help="iteration budget per step (default: 3000)")
    estimate.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    estimate.add_argument("--progress", action="store_true", help="show a progress bar per step on stderr")

    localize = commands.add_parser(
        "localize", help="clusters in the dual space F (cut points, local divergences, p-values)",
        description="Sort the training images by their dual value F (dual.h5), find cut points by the "
                    "symmetric max-DV cut search, test each cut with a localized k-NN divergence between "
                    "the k images on either side (permutation p-value, several k), and write the "
                    "cluster tree as JSON.\n\nexample:  dualdiv localize dual.h5 tiles.h5 -o clusters.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    localize.add_argument("dual", help="dual.h5 written by the dual stage")
    localize.add_argument("tiles", help="tiles.h5 of the same data")
    localize.add_argument("-o", "--out", required=True, help="output JSON (clusters.json)")
    localize.add_argument("--seed", type=int, default=0, help="seed of the permutation tests (default: 0)")
    localize.add_argument("--alpha", type=float, default=0.01, help="significance of a cut (default: 0.01)")

    sample = commands.add_parser(
        "sample", help="fit a generator on the training images and write samples",
        description="Fit a generator on the training split of tiles.h5 and write N new images (normalised "
                    "and physical units, per-sample provenance) to an HDF5 file. Methods: dualdiv (the "
                    "dual correction p ∝ q·e^g of a local spectral mixture base), dualdiv_corrected, "
                    "spectral, var, gaussian_lw, copy, interpolate, marginals; the walks dualdiv_walk and "
                    "dualdiv_basewalk also need --path-dir (a finished path: plan.json, step_*.pt) with "
                    "--dual and --clusters.\n\nexample:  dualdiv sample tiles.h5 -o dualdiv.h5 --method dualdiv",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sample.add_argument("tiles", help="tiles.h5")
    sample.add_argument("-o", "--out", required=True, help="output HDF5 file (samples/{method}.h5)")
    sample.add_argument("--method", default="dualdiv", help="generator key (default: dualdiv)")
    sample.add_argument("-n", "--n-samples", type=int, default=100, help="images to generate (default: 100)")
    sample.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    sample.add_argument("--config", help="a config YAML whose `sample` section sets generator settings")
    sample.add_argument("--dual", help="dual.h5 (walks only)")
    sample.add_argument("--clusters", help="clusters.json (walks only)")
    sample.add_argument("--path-dir", help="folder with plan.json and step_*.pt (walks only)")
    sample.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    return parser


def _run_ingest(args: argparse.Namespace) -> None:
    from dualdiv.data.ingest import IngestSettings
    from dualdiv.stages.ingest import ingest

    names = tuple(n.strip() for n in args.channel_names.split(",")) if args.channel_names else None
    settings = IngestSettings(format=args.format, min_samples=args.min_samples,
                              length_policy=args.length_policy, sampling_rate=args.sampling_rate,
                              units=args.units, channel_names=names)
    dataset = ingest(args.inputs, args.out, settings)
    n, channels, time = dataset["signal"].shape
    print(f"{args.out}: {n} samples x {channels} channels x {time} time points")


def _run_tile(args: argparse.Namespace) -> None:
    from dualdiv.data.tiles import TileSettings, tile

    tiles = tile(args.raw, args.out, TileSettings(test_fraction=args.test_fraction, window=args.window,
                                                  stride=args.stride, seed=args.seed))
    n_test = int((tiles.split == "test").sum())
    print(f"{args.out}: {len(tiles.images)} images of {tiles.images.shape[1]} x {tiles.images.shape[2]} "
          f"({len(tiles.images) - n_test} train, {n_test} test)")


def _run_estimate(args: argparse.Namespace) -> None:
    import json
    from pathlib import Path

    from dualdiv.data.readers.arrays import load_arrays
    from dualdiv.estimators.path import StepSettings, estimate_tc

    path = Path(args.data)
    if path.suffix.lower() not in (".npy", ".npz") or not path.is_file():
        raise InputError(f"{path}: expected an existing .npy or .npz file")
    x, _ = load_arrays(path)
    if x.ndim not in (2, 3) or len(x) < 4:
        raise InputError(f"{path}: array of shape {x.shape}; expected (n, d) or (n, C, T) with n ≥ 4")
    result = estimate_tc(x, n_blocks=args.steps, order=args.order, seed=args.seed, substeps=args.substeps,
                         settings=StepSettings(max_iterations=args.max_iterations), device=args.device,
                         progress=args.progress)
    keep = ("step", "D", "stderr", "n_substeps", "iterations", "best_iteration", "stopped", "wall_time_s")
    result["steps"] = [{k: r[k] for k in keep} for r in result["steps"]]
    result.update(units="nats", data=str(path), shape=list(x.shape))
    print(json.dumps(result, indent=1))


def _run_localize(args: argparse.Namespace) -> None:
    from dualdiv.estimators.clusters import ClusterSettings, write_clusters

    result = write_clusters(args.dual, args.tiles, args.out, ClusterSettings(alpha=args.alpha), args.seed)
    print(f"{args.out}: {result['n_clusters']} cluster(s), cuts at F = {result['boundaries']}")


def _run_sample(args: argparse.Namespace) -> None:
    from pathlib import Path

    import yaml

    from dualdiv.stages.sample import WALKS, dual_context, resolve_method, write_samples

    config = {}
    if args.config:
        try:
            config = (yaml.safe_load(Path(args.config).read_text()) or {}).get("sample") or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"{args.config}: cannot read config ({exc})") from None
    key, _ = resolve_method(args.method, config)
    context = None
    if key in WALKS:
        if not (args.dual and args.clusters and args.path_dir):
            raise InputError(f"{args.method}: a walk needs --dual, --clusters and --path-dir")
        critics = sorted(Path(args.path_dir).glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
        context = dual_context(args.tiles, args.dual, args.clusters, Path(args.path_dir) / "plan.json",
                               [str(p) for p in critics], args.device)
    samples = write_samples(args.tiles, args.method, args.out, args.n_samples, args.seed, config, context)
    print(f"{args.out}: {len(samples.images)} images from {samples.generator}")


_COMMANDS = {"ingest": _run_ingest, "tile": _run_tile, "estimate": _run_estimate, "localize": _run_localize,
             "sample": _run_sample}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        _COMMANDS[args.command](args)
    except DualdivError as exc:
        if args.debug:
            raise
        print(f"dualdiv {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
