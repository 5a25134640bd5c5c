"""Run one external ("peer") generator in its own Python environment: fit on images, draw new ones.

A standalone script: it imports only the standard library, NumPy and the peer's own package (never
dualdiv), so a peer can live in a virtual environment of its own with whatever pins it needs
(Keras 3, SDV, …). :class:`dualdiv.generators.peers.Peer` writes the training images to a ``.npz``,
runs ``<peer python> -I peer_runner.py REQUEST.json`` and reads the result back.

Request (JSON): ``model``, ``train`` (path of a ``.npz`` with ``images``: (n, channels, time) float32),
``out`` (path of the ``.npz`` to write: ``images`` (n_samples, channels, time) float32), ``report``
(path of a JSON report: epochs trained, fit and sampling seconds, versions), ``n_samples``, ``fit_seed``,
``sample_seed``, ``budget_s`` (a ceiling on the wall seconds of training: a model that reaches it stops
there and says so in the report, ``budget_reached``; the training length itself is the model's ``epochs`` or
``steps`` option, so that the same request gives the same images), ``threads`` and ``options`` (the model's
own settings).

Models, each used as its documentation shows, with its defaults unless an option says otherwise:

- ``tsgm_vae`` — TSGM's β-VAE (``tsgm.models.cvae.BetaVAE``) on the ``vae_conv5`` architecture of its
  zoo, inputs scaled per channel into [0, 1] with ``tsgm.utils.TSFeatureWiseScaler`` (its decoder ends
  in a sigmoid); Keras ``fit`` for ``epochs`` (default 300) or until the budget.
- ``tsgm_timegan`` — TSGM's TimeGAN (``tsgm.models.timeGAN.TimeGAN``, GRU, its default sizes), scaled
  the same way; its three phases (embedding, supervised, joint) as in ``TimeGAN.fit``, one batch a step,
  ``steps`` each (default 1 000), each phase stopped early at a third of the budget.
- ``sdv_par`` — SDV's ``PARSynthesizer`` on the long table (one row per image and time point, a column
  per channel, the image as sequence key, the time index as sequence index) for ``epochs`` (default
  SDV's 128); PAR has no per-epoch hook, so its budget is the caller's timeout.
- ``numpy_gaussian`` — independent Gaussian pixels (NumPy only): checks the protocol where no peer is
  installed (tests); not a generator to compare.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np


def _keras(seed: int, threads: int):
    """Keras 3 on the torch backend (TSGM needs no TensorFlow then), seeded, ``threads`` CPU threads."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import torch

    torch.set_num_threads(threads)
    import keras

    keras.utils.set_random_seed(seed)  # Python, NumPy and the backend's generators
    return keras


def _to_sequences(images: np.ndarray) -> np.ndarray:
    """(n, channels, time) → (n, time, channels), the layout of TSGM and SDV."""
    return np.ascontiguousarray(np.transpose(images, (0, 2, 1)), dtype=np.float32)


def _scaled(images: np.ndarray):
    """TSGM's inputs: (n, time, channels) scaled per channel into [0, 1] by its own scaler, and the scaler."""
    import tsgm

    scaler = tsgm.utils.TSFeatureWiseScaler((0, 1))
    return scaler.fit_transform(_to_sequences(images)).astype(np.float32), scaler


def fit_tsgm_vae(images, n_samples, fit_seed, sample_seed, budget_s, threads, options):
    keras = _keras(fit_seed, threads)
    import tsgm

    scaled, scaler = _scaled(images)
    architecture = tsgm.models.zoo["vae_conv5"](seq_len=scaled.shape[1], feat_dim=scaled.shape[2],
                                                latent_dim=int(options.get("latent_dim", 8)))
    vae = tsgm.models.cvae.BetaVAE(architecture.encoder, architecture.decoder, beta=float(options.get("beta", 1.0)))
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate=float(options.get("learning_rate", 0.001))))
    started, epochs = time.perf_counter(), int(options.get("epochs", 300))

    class Budget(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if time.perf_counter() - started > budget_s:
                self.model.stop_training = True

    history = vae.fit(scaled, epochs=epochs, batch_size=int(options.get("batch_size", min(64, len(scaled)))),
                      callbacks=[Budget()], verbose=0)
    fit_s, trained = time.perf_counter() - started, len(history.history.get("loss", []))
    keras.utils.set_random_seed(sample_seed)
    generated = keras.ops.convert_to_numpy(vae.generate(n_samples))
    return scaler.inverse_transform(generated), {"epochs": trained, "fit_s": fit_s,
                                                 "budget_reached": trained < epochs}


def fit_tsgm_timegan(images, n_samples, fit_seed, sample_seed, budget_s, threads, options):
    keras = _keras(fit_seed, threads)
    import tsgm

    scaled, scaler = _scaled(images)
    model = tsgm.models.timeGAN.TimeGAN(seq_len=scaled.shape[1], module="gru",
                                        hidden_dim=int(options.get("hidden_dim", 24)), n_features=scaled.shape[2],
                                        n_layers=int(options.get("n_layers", 3)),
                                        batch_size=int(options.get("batch_size", min(128, len(scaled)))))
    model.compile()
    # TimeGAN.fit's schedule with a clock: its three phases take `epochs` steps each; here each phase stops at
    # max_steps or when its third of the budget is spent (fit itself has no hook to stop it)
    loader = model._get_data_batch(scaled, n_windows=len(scaled))

    def batches():
        while True:
            yield from loader

    batch = batches()
    model._define_timegan()
    model._move_models_to_device()
    max_steps, steps, started = int(options.get("steps", 1000)), [], time.perf_counter()
    for phase in range(3):
        phase_start, done = time.perf_counter(), 0
        while done < max_steps and time.perf_counter() - phase_start < budget_s / 3:
            if phase == 0:
                model._train_autoencoder(next(batch), model.autoencoder_opt)
            elif phase == 1:
                model._train_supervisor(next(batch), model.adversarialsup_opt)
            else:
                for _ in range(2):  # the generator twice per discriminator step, as in TimeGAN.fit
                    x, z = next(batch), next(model.get_noise_batch())
                    model._train_generator(x, z, model.generator_opt)
                    model._train_embedder(x, model.embedder_opt)
                x, z = next(batch), next(model.get_noise_batch())
                if model._check_discriminator_loss(x, z) > 0.15:
                    model._train_discriminator(x, z, model.discriminator_opt)
            done += 1
        steps.append(done)
    fit_s = time.perf_counter() - started
    keras.utils.set_random_seed(sample_seed)
    import torch

    with torch.no_grad():  # its generate() turns backend tensors into NumPy, which needs them without grad
        generated = np.asarray(model.generate(n_samples))
    return scaler.inverse_transform(generated), {"steps_per_phase": steps, "fit_s": fit_s,
                                                 "budget_reached": min(steps) < max_steps}


def fit_sdv_par(images, n_samples, fit_seed, sample_seed, budget_s, threads, options):
    import pandas as pd
    import torch

    torch.set_num_threads(threads)
    from sdv.metadata import Metadata
    from sdv.sequential import PARSynthesizer

    n, channels, length = images.shape
    columns = [f"c{c}" for c in range(channels)]
    table = pd.DataFrame(_to_sequences(images).reshape(n * length, channels).astype(np.float64), columns=columns)
    table.insert(0, "t", np.tile(np.arange(length), n))
    table.insert(0, "series", np.repeat([f"s{i}" for i in range(n)], length))
    metadata = Metadata.load_from_dict({"METADATA_SPEC_VERSION": "V1", "tables": {"series": {
        "columns": {"series": {"sdtype": "id"}, "t": {"sdtype": "numerical"},
                    **{column: {"sdtype": "numerical"} for column in columns}},
        "sequence_key": "series", "sequence_index": "t"}}})

    started, epochs = time.perf_counter(), int(options.get("epochs", 128))
    np.random.seed(fit_seed)
    torch.manual_seed(fit_seed)
    synthesizer = PARSynthesizer(metadata, epochs=epochs, verbose=False,
                                 enforce_min_max_values=bool(options.get("enforce_min_max_values", True)), cuda=False)
    synthesizer.fit({"series": table})  # SDV 2: a table name → its DataFrame
    fit_s = time.perf_counter() - started
    np.random.seed(sample_seed)
    torch.manual_seed(sample_seed)
    drawn = synthesizer.sample_sequences(num_sequences=n_samples, sequence_length=length)["series"]
    generated = np.stack([group.sort_values("t")[columns].to_numpy(dtype=np.float64)
                          for _, group in drawn.groupby("series", sort=True)])
    return generated, {"epochs": epochs, "fit_s": fit_s, "budget_reached": fit_s > budget_s}


def fit_numpy_gaussian(images, n_samples, fit_seed, sample_seed, budget_s, threads, options):
    data = _to_sequences(images)
    rng = np.random.default_rng(sample_seed)
    generated = data.mean(axis=0) + data.std(axis=0) * rng.standard_normal((n_samples, *data.shape[1:]))
    return generated, {"epochs": 0, "fit_s": 0.0, "budget_reached": False}


MODELS = {"tsgm_vae": fit_tsgm_vae, "tsgm_timegan": fit_tsgm_timegan, "sdv_par": fit_sdv_par,
          "numpy_gaussian": fit_numpy_gaussian}
PACKAGES = {"tsgm_vae": "tsgm", "tsgm_timegan": "tsgm", "sdv_par": "sdv", "numpy_gaussian": "numpy"}


def _versions(model: str) -> dict:
    from importlib import metadata

    names = {"tsgm": ["tsgm", "keras", "torch"], "sdv": ["sdv", "deepecho", "torch"], "numpy": []}[PACKAGES[model]]
    found = {"python": sys.version.split()[0], "numpy": np.__version__}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def main(request_path: str) -> int:
    request = json.loads(open(request_path).read())
    model = request["model"]
    if model not in MODELS:
        print(f"peer_runner: unknown model {model!r}; known: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    try:
        __import__(PACKAGES[model])
    except ImportError as error:
        print(f"peer_runner: {model} needs the package {PACKAGES[model]!r} in {sys.executable} ({error})",
              file=sys.stderr)
        return 3
    with np.load(request["train"]) as archive:
        images = np.asarray(archive["images"], dtype=np.float32)
    n, channels, length = images.shape
    started = time.perf_counter()
    generated, report = MODELS[model](images, int(request["n_samples"]), int(request["fit_seed"]),
                                      int(request["sample_seed"]), float(request["budget_s"]),
                                      int(request.get("threads", 1)), dict(request.get("options") or {}))
    generated = np.transpose(np.asarray(generated, dtype=np.float32), (0, 2, 1))  # back to (n, channels, time)
    total_s = time.perf_counter() - started
    report |= {"total_s": total_s, "sample_s": total_s - report["fit_s"], "versions": _versions(model), "n_train": n}
    np.savez(request["out"], images=generated)
    with open(request["report"], "w") as handle:
        json.dump(report, handle, sort_keys=True, default=float)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: peer_runner.py REQUEST.json", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
