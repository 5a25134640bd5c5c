"""The README's Python example runs as written (on a small array of trials in physical units)."""

import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT


def readme_block(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_python_example_of_the_readme_runs(tmp_path):
    code = readme_block("In Python, without files")
    assert len(code.strip().splitlines()) <= 12  # the imports and ≤ 10 lines of work
    rng = np.random.default_rng(0)
    t = np.arange(24) / 24
    x = 40 * np.sin(2 * np.pi * 3 * t)[None, None, :] + 10 * rng.normal(size=(40, 3, 24))  # µV
    np.save(tmp_path / "trials.npy", x)
    check = ("\nassert new.shape == (50, 3, 24) and abs(new.mean() - x.mean()) < 5 * x.std()\n"
             "assert F.shape == (40,) and len(clusters['membership']) == 40\n"
             "assert np.array_equal(DualSpace.load('space/').transform(images), F)\nprint('ok')\n")
    # the budget of the example's DualSpace shrunk so the test is quick; every other line runs as written
    code = code.replace("DualSpace(seed=0)", "DualSpace(seed=0, training={'max_iterations': 60, 'eval_every': 20})")
    assert "max_iterations" in code
    result = subprocess.run([sys.executable, "-c", code + check], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
