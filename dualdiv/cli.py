"""The ``dualdiv`` command: every stage without Snakemake, calling the same entry functions.

Every subcommand takes ``--config FILE`` (the workflow's config keys; only the
stage's section is read) and, without it, runs with exactly the pipeline's defaults
(:func:`dualdiv.stages.settings.default_config`); a flag given on the command line
overrides both. Errors caused by the user (bad file, bad setting, corrupt artifact)
print one line on stderr — the file and the problem — and exit with code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys

from dualdiv import __version__
from dualdiv.core.errors import DualdivError, InputError
from dualdiv.data.readers import FORMATS
from dualdiv.generators import known_keys

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
  .edf .bdf .fif -epo.fif .vhdr .set
               EEG/MEG files, read by MNE-Python (install dualdiv[eeg]); epochs,
               picks, filter and resampling from the config's ingest section
               (epochs, picks, l_freq, h_freq, resample: see config/README.md)
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
TC is the sum of the K held-out step bounds. Each pixel is first mapped to its normal
scores (--marginals ranks, the default; --marginals zscore z-scores it): TC does not change
under any increasing map of a variable, and on normal scores neither does the estimate
(channels x time Gaussians through exp/cube/tanh maps, 8 x 8, TC 20: -5.8 % on normal
scores, -44 % on z-scores; on plain Gaussians normal scores read 0-0.2 nats below z-scores,
0.4-0.8 at 8 x 8 TC 60). Prints JSON: {"tc": nats, "stderr": nats, "steps": [{"step",
"D", "stderr", ...}], ...}; --save DIR keeps the fitted dual space (DualSpace.load(DIR) in
Python; no gradient with --marginals ranks).

Default budget (--budget thorough; THOROUGH_TRAINING in Python, estimate_tc's default):
one step (its single-pixel sub-steps already walk the path), a critic g(tested value) .
h(rest) trained on every pairing of a batch, plus a fitted Gaussian log ratio that the
network corrects (when there are at least 4 training images a pixel), 1500 iterations
with an annealed learning rate, cross-fitted over 5 folds so every sample is scored by
a critic that did not see it, the folds on every core (--jobs). Its cost is set by the
budget, hardly by n: on 2 CPU cores, N = 500, 68-84 s for d = 64 vectors, 87-122 s for
8 x 8 images, 97-198 s for 16 x 16 and 4 x 64 (2026-12-04). On Gaussians of 500 samples
with known TC 20 nats (benchmarks/ESTIMATE_GAUSSIAN.md, 3 seeds, z-scores) it read -3.4 % (AR(1),
d = 64), -3.4 % (equicorrelated), -5.3 % (channels x time 8 x 8), -4.7 % (16 x 16),
-2.8 % (4 x 64), every seed within 7.3 %; at TC 5 and 60 -2.9 % to -8.7 % (16 x 16 and
8 x 8 at TC 5 the worst). 69 s for 30 x 3 x 64, 155 s for 98 EEG images of 14 x 128.
--budget pipeline is the pipeline's (config `estimate.training`, K = 4 unless --steps;
`dualdiv config` prints it): 12-20 s a step, but -6 % to -29 % on those Gaussians.
A bar per fold goes to stderr when it is a terminal, else a progress line every 5 s;
--max-iterations trades accuracy for time.

example:  dualdiv estimate X.npy --seed 0 > tc.json
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
    raw = argparse.RawDescriptionHelpFormatter

    def add(name: str, help: str, description: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help, description=description, formatter_class=raw)
        command.add_argument("--config", metavar="YAML",
                             help="config file (the workflow's keys); default: the pipeline's defaults")
        return command

    ingest = add("ingest", "raw files → raw.nc", _INGEST_HELP)
    ingest.add_argument("inputs", nargs="+", metavar="IN", help="raw data file(s)")
    ingest.add_argument("-o", "--out", required=True, help="output NetCDF file (raw.nc)")
    ingest.add_argument("--format", choices=FORMATS, help="reader to use (default: from each file's extension)")
    ingest.add_argument("--min-samples", type=int, metavar="N", help="fewer samples than N is an error (default: 16)")
    ingest.add_argument("--length-policy", choices=("error", "crop", "pad"),
                        help="series of unequal length: error (default), crop to the shortest, "
                             "pad to the longest by repeating the last value")
    ingest.add_argument("--sampling-rate", type=float, metavar="HZ", help="sampling rate in Hz")
    ingest.add_argument("--units", help="physical units of the values, e.g. uV")
    ingest.add_argument("--channel-names", metavar="A,B,...", help="comma-separated channel names")

    tile = add("tile", "raw.nc → tiles.h5 (images, split, normalisation)", _TILE_HELP)
    tile.add_argument("raw", help="raw.nc written by `dualdiv ingest`")
    tile.add_argument("-o", "--out", required=True, help="output HDF5 file (tiles.h5)")
    tile.add_argument("--seed", type=int, help="seed of the train/test split (default: the config's seed, 0)")
    tile.add_argument("--test-fraction", type=float, help="share of recordings held out for testing (default: 0.2)")
    tile.add_argument("--window", type=int, help="time points per image (default: whole series)")
    tile.add_argument("--stride", type=int, help="time points between windows (default: --window)")

    estimate = add("estimate", "total correlation of an array, printed as JSON", _ESTIMATE_HELP)
    estimate.add_argument("data", help=".npy/.npz array (n, d) or (n, C, T)")
    estimate.add_argument("--steps", type=int, metavar="K",
                          help="number of path steps (default: 1; with --budget pipeline the config's, 4)")
    estimate.add_argument("--seed", type=int, help="seed (default: the config's seed, 0)")
    estimate.add_argument("--order", choices=("time", "channel", "patch", "random"),
                          help="pixel order of the path (default: time, i.e. column strips)")
    estimate.add_argument("--substeps", choices=("pixel", "block"),
                          help="pixel: each step telescopes over single pixels (default); block: one DV per step")
    estimate.add_argument("--budget", choices=("thorough", "pipeline"), default="thorough",
                          help="thorough (the default): the bilinear critic cross-fitted over 5 folds, 1500 annealed "
                               "iterations each, one step unless --steps; pipeline: the config's estimate.training "
                               "and steps (faster, reads low where dependence is strong; see above)")
    estimate.add_argument("--jobs", type=int, default=-1,
                          help="threads the cross-fitted folds train on (default -1: every usable core); "
                               "the estimate does not depend on it")
    estimate.add_argument("--max-iterations", type=int, help="iteration budget per step (default: the budget's)")
    estimate.add_argument("--device", help="auto (CUDA when present; the default), cpu, cuda, cuda:N")
    estimate.add_argument("--progress", action=argparse.BooleanOptionalAction,
                          help="progress bar per step on stderr (default: when stderr is a terminal)")
    estimate.add_argument("--marginals", choices=("ranks", "zscore"), default="ranks",
                          help="each variable mapped to its normal scores (ranks, the default: the Gaussian copula, "
                               "so skewed or heavy-tailed variables cost nothing) or z-scored; TC is unchanged by "
                               "either")
    estimate.add_argument("--save", metavar="DIR", help="also save the fitted dual space to DIR")

    localize = add(
        "localize", "clusters in the dual space F (cut points, local divergences, p-values)",
        "Sort the training images by their dual value F (dual.h5), find cut points by the "
        "symmetric max-DV cut search, test each cut with a localized k-NN divergence between "
        "the k images on either side (permutation p-value, several k), and write the "
        "cluster tree as JSON.\n\nexample:  dualdiv localize dual.h5 tiles.h5 -o clusters.json")
    localize.add_argument("dual", help="dual.h5 written by the dual stage")
    localize.add_argument("tiles", help="tiles.h5 of the same data")
    localize.add_argument("-o", "--out", required=True, help="output JSON (clusters.json)")
    localize.add_argument("--seed", type=int, help="seed of the permutation tests (default: the config's seed, 0)")
    localize.add_argument("--alpha", type=float, help="significance of a cut (default: 0.01)")

    sample = add(
        "sample", "fit a generator on the training images and write samples",
        "Fit a generator on the training split of tiles.h5 and write N new images (normalised "
        "and physical units, per-sample provenance) to an HDF5 file. Methods: dualdiv (the "
        "default variant: the dual correction p ∝ q·e^g of a local spectral mixture base, sampler auto), "
        f"{', '.join(known_keys()[1:])}; the walks dualdiv_walk and dualdiv_basewalk also need --space "
        "(a fitted dual space folder, results/<data set>/dualspace) and --clusters (clusters.json). "
        "Settings: the config's sample section (sample.settings.<key>), else the generator's defaults, "
        "which are the pipeline's. Labelled tiles (two or more classes) are sampled per class by default "
        "(sample.conditional: auto): one generator per class of the training labels, N images in the "
        "training proportions (or sample.per_class), each image's class stored in the file's /labels."
        "\n\nexample:  dualdiv sample tiles.h5 -o dualdiv.h5 --method dualdiv")
    sample.add_argument("tiles", help="tiles.h5")
    sample.add_argument("-o", "--out", required=True, help="output HDF5 file (samples/{method}.h5)")
    sample.add_argument("--method", default="dualdiv", help="generator key (default: dualdiv)")
    sample.add_argument("-n", "--n-samples", type=int, help="images to generate (default: 100)")
    sample.add_argument("--seed", type=int, help="seed (default: the config's seed, 0)")
    sample.add_argument("--space", help="fitted dual space folder (walks only)")
    sample.add_argument("--clusters", help="clusters.json (walks only)")
    sample.add_argument("--device", help="auto (CUDA when present; the default), cpu, cuda")
    sample.add_argument("--conditional", action=argparse.BooleanOptionalAction,
                        help="one generator per class of the training labels (default: the config's "
                             "sample.conditional, auto: when the tiles have labels of two or more classes)")

    path = add(
        "path", "the path steps of tiles.h5: plan.json and step_{k}.pt/.json in a folder",
        "Plan the path of diffusing dependencies for the images of tiles.h5 (the pixel order cut into "
        "K blocks, config estimate.n_blocks/order/substeps) and train the critic of each step on the "
        "training split (estimate.training, per-step estimate.steps) — or of one step with --step k, "
        "as a cluster job would. A killed step resumes from its checkpoint.\n\n"
        "example:  dualdiv path tiles.h5 -o path/ && dualdiv dual tiles.h5 path/ -o .")
    path.add_argument("tiles", help="tiles.h5")
    path.add_argument("-o", "--out", required=True, help="output folder (plan.json, step_{k}.pt, step_{k}.json)")
    path.add_argument("--step", type=int, metavar="K", help="train only step K (the plan is written if missing)")
    path.add_argument("--seed", type=int, help="seed (default: the config's seed, 0)")
    path.add_argument("--device", help="auto (CUDA when present; the default), cpu, cuda")

    dual = add(
        "dual", "assemble the path steps into the dual space: dualspace/, dual.h5, divergence.json",
        "Assemble the trained path steps of PATH (a folder written by `dualdiv path`) into the fitted "
        "dual space (OUT/dualspace, DualSpace.load in Python), the dual coordinate F of every image and "
        "of product-of-marginals reference samples (OUT/dual.h5) and the total correlation with its "
        "standard error and per-step table (OUT/divergence.json).\n\n"
        "example:  dualdiv dual tiles.h5 path/ -o .")
    dual.add_argument("tiles", help="tiles.h5 the steps were trained on")
    dual.add_argument("path", help="folder with plan.json and step_{k}.pt/.json")
    dual.add_argument("-o", "--out", required=True, help="output folder")
    dual.add_argument("--seed", type=int, help="seed of the reference samples (default: the config's seed, 0)")
    dual.add_argument("--device", help="auto (CUDA when present; the default), cpu, cuda")

    evaluate = add(
        "evaluate", "every metric of a samples file against the held-out images of tiles.h5",
        "Compare generated images (a samples file) with the held-out split of tiles.h5: neural DV and "
        "k-NN KL both ways, entropy and cluster-divergence gaps, C2ST on features and pixels, MMD, "
        "spectrum/autocorrelation/correlation errors, DCR and near copies (config evaluate.metrics).\n\n"
        "example:  dualdiv evaluate dualdiv.h5 tiles.h5 -o eval.json")
    evaluate.add_argument("samples", help="samples file (dualdiv sample)")
    evaluate.add_argument("tiles", help="tiles.h5 the generator was fitted on")
    evaluate.add_argument("-o", "--out", required=True, help="output JSON")
    evaluate.add_argument("--seed", type=int, help="seed of the metrics' subsets (default: the config's seed, 0)")

    figures = add(
        "figures", "the figures of one data set (dual axis, real vs generated, spectra, walks)",
        "Draw the dual-axis histogram with its cuts and window, real vs generated images, per-channel "
        "spectra and the walks' trajectories into OUT (PNG); each samples file is named by its file name."
        "\n\nexample:  dualdiv figures tiles.h5 dual.h5 clusters.json samples/*.h5 -o figures/")
    figures.add_argument("tiles", help="tiles.h5")
    figures.add_argument("dual", help="dual.h5")
    figures.add_argument("clusters", help="clusters.json")
    figures.add_argument("samples", nargs="+", help="samples files (method = file name without .h5)")
    figures.add_argument("-o", "--out", required=True, help="output folder")

    export = add(
        "export", "generated images in physical units as .npy, .npz, .csv, -epo.fif or .edf (formats ingest reads)",
        "Write the physical-unit images of a samples file as .npy (n, channels, time), .npz (data, "
        "channel_names, sampling_rate), a wide .csv (sample, time, one column per channel), or for "
        "MNE-Python (install dualdiv[eeg]): -epo.fif epochs in volts with channel names, types and the "
        "sampling rate (mne.read_epochs), or .edf/.bdf (the images back to back, an annotation at each).\n\n"
        "example:  dualdiv export dualdiv.h5 -o dualdiv-epo.fif")
    export.add_argument("samples", help="samples file")
    export.add_argument("-o", "--out", required=True, help="output file: .npy, .npz, .csv, -epo.fif, .edf or .bdf")
    export.add_argument("--sampling-rate", type=float, metavar="HZ",
                        help="sampling rate (default: the samples file's, where it has one)")

    add("config", "print the default config (every key the workflow and these commands read)",
        "Print the pipeline's default config as YAML: every stage's settings with their defaults, "
        "from the settings classes the stages use. With --config, that file merged over the defaults."
        "\n\nexample:  dualdiv config > my.yaml")
    return parser


def _given(args: argparse.Namespace, **names: str) -> dict:
    """{setting: value} of the flags the user gave (argparse leaves the others None)."""
    return {setting: getattr(args, flag) for setting, flag in names.items() if getattr(args, flag) is not None}


def _run_ingest(args: argparse.Namespace, config: dict) -> None:
    from dualdiv.stages.ingest import ingest
    from dualdiv.stages.settings import from_config

    flags = _given(args, format="format", min_samples="min_samples", length_policy="length_policy",
                   sampling_rate="sampling_rate", units="units", channel_names="channel_names")
    if "channel_names" in flags:
        flags["channel_names"] = tuple(n.strip() for n in flags["channel_names"].split(","))
    dataset = ingest(args.inputs, args.out, from_config("ingest", {**config["ingest"], **flags}))
    n, channels, time = dataset["signal"].shape
    print(f"{args.out}: {n} samples x {channels} channels x {time} time points")


def _run_tile(args: argparse.Namespace, config: dict) -> None:
    from dualdiv.stages.settings import from_config
    from dualdiv.stages.tile import tile

    flags = _given(args, test_fraction="test_fraction", window="window", stride="stride")
    settings = from_config("tile", {**config["tile"], **flags}, seed=_seed(args, config))
    tiles = tile(args.raw, args.out, settings)
    n_test = int((tiles.split == "test").sum())
    print(f"{args.out}: {len(tiles.images)} images of {tiles.images.shape[1]} x {tiles.images.shape[2]} "
          f"({len(tiles.images) - n_test} train, {n_test} test)")


def _seed(args: argparse.Namespace, config: dict) -> int:
    return args.seed if args.seed is not None else int(config["seed"])


def _run_estimate(args: argparse.Namespace, config: dict) -> None:
    import json
    from pathlib import Path

    from dualdiv.data.readers.arrays import load_arrays
    from dualdiv.estimators.dualspace import DualSpace

    path = Path(args.data)
    if path.suffix.lower() not in (".npy", ".npz") or not path.is_file():
        raise InputError(f"{path}: expected an existing .npy or .npz file")
    x, _ = load_arrays(path)
    if x.ndim not in (2, 3) or len(x) < 4:
        raise InputError(f"{path}: array of shape {x.shape}; expected (n, d) or (n, C, T) with n ≥ 4")
    estimate = {**config["estimate"], **_given(args, n_blocks="steps", order="order", substeps="substeps")}
    if args.budget == "thorough":
        from dataclasses import asdict

        from dualdiv.estimators.settings import THOROUGH_TRAINING

        estimate["training"] = asdict(THOROUGH_TRAINING)
        if args.steps is None:  # one step: its single-pixel sub-steps already walk the path
            estimate["n_blocks"] = 1
    if args.max_iterations is not None:
        estimate["training"] = {**estimate["training"], "max_iterations": args.max_iterations}
    if not args.save:
        estimate["n_reference"] = 0  # TC only: no dual window to compute
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    space = DualSpace.from_config(estimate, seed=_seed(args, config), device=args.device or config["device"],
                                  standardise=args.marginals, progress=progress, n_jobs=args.jobs).fit(x)
    if args.save:
        space.save(args.save)
    result = {**space.summary(), "min_ess": space.min_ess_, "n_blocks": space.n_blocks, "order": space.order,
              "substeps": space.substeps, "data": str(path), "shape": list(x.shape)}
    if not args.save:
        for key in ("lo", "hi", "lo_quantile"):
            result.pop(key)
    print(json.dumps(result, indent=1))


def _run_localize(args: argparse.Namespace, config: dict) -> None:
    from dualdiv.stages.localize import write_clusters
    from dualdiv.stages.settings import from_config

    settings = from_config("localize", {**config["localize"], **_given(args, alpha="alpha")})
    result = write_clusters(args.dual, args.tiles, args.out, settings, _seed(args, config))
    print(f"{args.out}: {result['n_clusters']} cluster(s), cuts at F = {result['boundaries']}")


def _run_sample(args: argparse.Namespace, config: dict) -> None:
    import numpy as np

    from dualdiv.generators import WALKS, resolve_method
    from dualdiv.stages.sample import walk_inputs, write_samples

    sample = {**config["sample"], **_given(args, conditional="conditional")}
    key, _ = resolve_method(args.method, sample)
    walk = None
    if key in WALKS:
        if not (args.space and args.clusters):
            raise InputError(f"{args.method}: a walk needs --space (a fitted dual space folder) and --clusters")
        walk = walk_inputs(args.tiles, args.space, args.clusters, args.device or config["device"])
    n = args.n_samples if args.n_samples is not None else sample["n_samples"]
    samples = write_samples(args.tiles, args.method, args.out, n, _seed(args, config), sample, walk)
    classes = "" if samples.labels is None else " per class (" + ", ".join(
        f"{label}: {count}" for label, count in zip(*np.unique(samples.labels, return_counts=True), strict=True)) + ")"
    print(f"{args.out}: {len(samples.images)} images from {samples.generator}{classes}")


def _run_path(args: argparse.Namespace, config: dict) -> None:
    from pathlib import Path

    from dualdiv.estimators.dualspace import DualSpace
    from dualdiv.stages.path import write_plan, write_step

    out = Path(args.out)
    estimate, seed = config["estimate"], _seed(args, config)
    device = args.device or config["device"]
    space = DualSpace.from_config(estimate, seed=seed, device=device)
    plan_path = out / "plan.json"
    if args.step is None or not plan_path.exists():
        out.mkdir(parents=True, exist_ok=True)
        write_plan(args.tiles, plan_path, space.n_blocks, space.order, space.substeps, seed)
    for step in [args.step] if args.step is not None else range(1, space.n_blocks + 1):
        record = write_step(args.tiles, plan_path, step, out / f"step_{step}.pt", out / f"step_{step}.json",
                            space.step_settings(step), seed, device, out_values=out / f"step_{step}.values.h5",
                            n_reference=space.n_reference)
        print(f"{out}/step_{step}: D = {record['D']:.4g} ± {record['stderr']:.2g} nats "
              f"({record['iterations']} iterations, {record['wall_time_s']:.0f} s)")


def _run_dual(args: argparse.Namespace, config: dict) -> None:
    from pathlib import Path

    from dualdiv.stages.path import read_plan, write_dual

    path, out = Path(args.path), Path(args.out)
    if not (path / "plan.json").is_file():
        raise InputError(f"{path}: no plan.json; run `dualdiv path` first")
    steps = range(1, len(read_plan(path / "plan.json")["blocks"]) + 1)
    out.mkdir(parents=True, exist_ok=True)
    values = [str(path / f"step_{k}.values.h5") for k in steps]
    summary = write_dual(args.tiles, path / "plan.json", [str(path / f"step_{k}.pt") for k in steps],
                         [str(path / f"step_{k}.json") for k in steps], out / "dual.h5", out / "divergence.json",
                         out / "dualspace", config["estimate"], _seed(args, config), args.device or config["device"],
                         values if all(Path(v).is_file() for v in values) else None)
    print(f"{out}: TC = {summary['tc']:.4g} ± {summary['stderr']:.2g} nats over {summary['n_steps']} steps; "
          f"dual window [{summary['lo']:.4g}, {summary['hi']:.4g}]")


def _run_evaluate(args: argparse.Namespace, config: dict) -> None:
    from dualdiv.stages.evaluate import write_evaluation
    from dualdiv.stages.settings import from_config

    result = write_evaluation(args.samples, args.tiles, args.out, _seed(args, config),
                              from_config("evaluate.metrics", config["evaluate"]["metrics"]))
    headline = {k: result.get(k) for k in ("c2st_auc_features", "dcr_ratio", "kl_dv_gen_real_features")}
    print(f"{args.out}: " + ", ".join(f"{k} {v:.3g}" for k, v in headline.items() if isinstance(v, float)))


def _run_figures(args: argparse.Namespace, config: dict) -> None:
    from pathlib import Path

    from dualdiv.stages.figures import write_figures

    samples = {Path(path).stem: path for path in args.samples}
    paths = write_figures(args.tiles, args.dual, args.clusters, samples, args.out)
    print(f"{args.out}: " + ", ".join(path.name for path in paths))


def _run_export(args: argparse.Namespace, config: dict) -> None:
    from dualdiv.stages.export import export_samples

    print(f"{export_samples(args.samples, args.out, args.sampling_rate)}: written")


def _run_config(args: argparse.Namespace, config: dict) -> None:
    import yaml

    print(yaml.safe_dump(config, sort_keys=False, default_flow_style=None), end="")


_COMMANDS = {"ingest": _run_ingest, "tile": _run_tile, "estimate": _run_estimate, "path": _run_path,
             "dual": _run_dual, "localize": _run_localize, "sample": _run_sample, "evaluate": _run_evaluate,
             "figures": _run_figures, "export": _run_export, "config": _run_config}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        from dualdiv.stages.settings import load_config

        _COMMANDS[args.command](args, load_config(args.config))
    except DualdivError as exc:
        if args.debug:
            raise
        print(f"dualdiv {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        if args.debug:
            raise
        print(f"dualdiv {args.command}: error: out of memory; no output was written (lower --config's "
              "ingest.memory_mb / tile.memory_mb, or run on a machine with more memory)", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
