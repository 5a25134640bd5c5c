#!/usr/bin/env bash
# The peers' environments, one virtual environment each under .peers/ (or $1), apart from dualdiv's own:
# their pins clash with each other and none is a dependency of dualdiv. Tried with Python 3.11 on CPU.
#   bash benchmarks/peers/install.sh            # → .peers/tsgm/bin/python, .peers/sdv/bin/python
# Then name the interpreters in the config (config/benchmark.yaml does: sample.settings.<peer>.python).
set -euo pipefail
root="${1:-.peers}"
python="${PYTHON:-python3.11}"
mkdir -p "$root"

# TSGM 0.1.0 (its VAE and TimeGAN) on Keras 3's torch backend, no TensorFlow. tsgm pins statsmodels==0.14.5,
# which does not import under pandas 3 (deprecate_kwarg), so pandas stays at 2.3.3.
"$python" -m venv "$root/tsgm"
"$root/tsgm/bin/pip" install --quiet torch==2.13.0 tsgm==0.1.0 pandas==2.3.3
# SDV 2.0.0 (PARSynthesizer; deepecho on torch)
"$python" -m venv "$root/sdv"
"$root/sdv/bin/pip" install --quiet torch==2.13.0 sdv==2.0.0

for peer in tsgm sdv; do
    "$root/$peer/bin/pip" check
    echo "$peer: $root/$peer/bin/python"
done
