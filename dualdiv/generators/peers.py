"""Peer generators: maintained external packages (TSGM, SDV) run as their users would, each in its own
Python environment, behind the same :class:`~dualdiv.generators.base.Generator` interface.

None of them is a dependency of dualdiv: each is installed in a virtual environment of its own (their pins
clash with each other and with the core's; ``benchmarks/PEERS.md`` has the commands) whose interpreter is
the generator's ``python`` setting, e.g. in a config::

    sample:
      methods: [dualdiv, spectral, tsgm_vae, sdv_par]
      settings:
        tsgm_vae: {python: /opt/peers/tsgm/bin/python, budget_s: 300}
        sdv_par: {python: /opt/peers/sdv/bin/python, budget_s: 300}

The peer runs in a subprocess (``peer_runner.py``, which imports only NumPy and the peer), so it trains
and draws in one call: :meth:`Peer.fit` checks and keeps the images, :meth:`Peer.sample` runs the peer's
fit on them and its sampling. The training length is the model's ``epochs``/``steps`` option (so the same
config gives the same images); ``budget_s`` is the wall-time ceiling every peer gets alike: a fit that
reaches it stops there (``budget_reached`` in the samples' records, and then the images depend on the
machine's speed). Sampling is timed apart (``sample_s`` in the records).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from dualdiv.core.checks import check_images
from dualdiv.core.errors import ConfigError
from dualdiv.generators.base import Generator, register

RUNNER = Path(__file__).with_name("peer_runner.py")


class Peer(Generator):
    """An external generator ``model`` (a name of ``peer_runner.MODELS``) run by the interpreter ``python``.

    python: the peer environment's interpreter (default: this one, for a peer installed beside dualdiv).
    budget_s: ceiling on the wall seconds of training (a model stops there, see ``peer_runner``).
    timeout_s: the subprocess is killed after this long (default: 3 × budget_s + 1 800 s for sampling).
    threads: CPU threads of the peer's torch (1: deterministic, as every other job of the pipeline).
    options: the model's own settings (e.g. ``epochs``, ``steps``, ``latent_dim``), passed through.
    """

    def __init__(self, model: str = "numpy_gaussian", python: str | None = None, budget_s: float = 300.0,
                 timeout_s: float | None = None, threads: int = 1, options: dict | None = None):
        self.model = model
        self.python = python
        self.budget_s = budget_s
        self.timeout_s = timeout_s
        self.threads = threads
        self.options = options

    @property
    def _name(self) -> str:
        return self.key or self.model

    @property
    def _interpreter(self) -> str:
        return self.python or sys.executable

    def fit(self, images, seed=0):
        if not float(self.budget_s) > 0:
            raise ConfigError(f"{self._name}: budget_s must be > 0 seconds, got {self.budget_s!r}")
        if not os.access(self._interpreter, os.X_OK):
            raise ConfigError(f"{self._name}: python {self._interpreter!r} is not an executable interpreter "
                              "(the peer's own environment, see benchmarks/PEERS.md)")
        self.train_ = check_images(images, self._name, dtype=np.float32)
        self.seed_ = int(seed)
        return self

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, list[dict]]:
        name = self._name
        if n < 1:
            raise ConfigError(f"{name}: number of samples must be ≥ 1, got {n}")
        timeout = self.timeout_s if self.timeout_s is not None else 3 * float(self.budget_s) + 1800
        with tempfile.TemporaryDirectory(prefix="dualdiv-peer-") as folder:
            folder = Path(folder)
            np.savez(folder / "train.npz", images=self.train_)
            request = {"model": self.model, "train": str(folder / "train.npz"), "out": str(folder / "out.npz"),
                       "report": str(folder / "report.json"), "n_samples": int(n), "fit_seed": self.seed_,
                       "sample_seed": int(seed), "budget_s": float(self.budget_s), "threads": int(self.threads),
                       "options": self.options or {}}
            (folder / "request.json").write_text(json.dumps(request))
            environment = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS=str(self.threads),
                               MKL_NUM_THREADS=str(self.threads))
            try:
                done = subprocess.run([self._interpreter, "-I", str(RUNNER), str(folder / "request.json")],
                                      capture_output=True, text=True, timeout=timeout, env=environment)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"{name}: the peer did not finish within timeout_s = {timeout:.0f} s") from None
            if done.returncode != 0:
                lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
                raise RuntimeError(f"{name}: the peer exited {done.returncode}: "
                                   f"{lines[-1] if lines else 'no message'}")
            with np.load(folder / "out.npz") as archive:
                images = np.asarray(archive["images"], dtype=np.float32)
            report = json.loads((folder / "report.json").read_text())
        expected = (n, *self.train_.shape[1:])
        if images.shape != expected:
            raise RuntimeError(f"{name}: the peer returned images of shape {images.shape}, expected {expected}")
        if not np.isfinite(images).all():
            raise RuntimeError(f"{name}: the peer returned {int((~np.isfinite(images)).sum())} non-finite values "
                               "(its training diverged)")
        self.report_ = report
        record = {"peer": self.model, **{k: report[k] for k in ("epochs", "steps_per_phase", "fit_s",
                                                                          "sample_s", "budget_reached")
                                          if k in report}}
        return images, [dict(record) for _ in range(n)]


@register("tsgm_vae")
class TSGMVAE(Peer):
    """TSGM's β-VAE (``vae_conv5``), Keras 3 on torch, in its own environment (``pip install tsgm==0.1.0``)."""

    def __init__(self, python=None, budget_s=300.0, timeout_s=None, threads=1, options=None):
        super().__init__("tsgm_vae", python, budget_s, timeout_s, threads, options)


@register("tsgm_timegan")
class TSGMTimeGAN(Peer):
    """TSGM's TimeGAN (GRU), Keras 3 on torch, in its own environment (``pip install tsgm==0.1.0``)."""

    def __init__(self, python=None, budget_s=300.0, timeout_s=None, threads=1, options=None):
        super().__init__("tsgm_timegan", python, budget_s, timeout_s, threads, options)


@register("sdv_par")
class SDVPAR(Peer):
    """SDV's PARSynthesizer in its own environment (``pip install sdv==2.0.0``)."""

    def __init__(self, python=None, budget_s=300.0, timeout_s=None, threads=1, options=None):
        super().__init__("sdv_par", python, budget_s, timeout_s, threads, options)
