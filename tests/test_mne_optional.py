"""MNE-Python is optional: the package never imports it for other formats, and without it the
EEG/MEG formats are refused with one line saying what to install (runs with or without the extra)."""

import subprocess
import sys

import numpy as np


def run(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_other_formats_never_import_mne(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(20, 2, 16)))
    code = ("import sys\nimport dualdiv\nfrom dualdiv.data.readers import read_file\n"
            "from dualdiv.stages.ingest import ingest\nfrom dualdiv.stages.export import export_formats\n"
            "import dualdiv.stages.workflow, dualdiv.stages.settings, dualdiv.cli\n"
            "read_file('x.npy')\ningest(['x.npy'], 'raw.nc')\nassert export_formats('auto', ['x.npy']) == ()\n"
            "assert 'mne' not in sys.modules, 'mne imported'\nprint('ok')\n")
    result = run(code, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_without_mne_eeg_files_are_refused_in_one_line(tmp_path):
    (tmp_path / "rec.edf").write_bytes(b"0" * 256)
    code = ("import sys\nsys.modules['mne'] = None  # as if MNE-Python were not installed\n"
            "from dualdiv.cli import main\nsys.exit(main(['ingest', 'rec.edf', '-o', 'raw.nc']))\n")
    result = run(code, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == ("dualdiv ingest: error: rec.edf: install dualdiv[eeg] to read .edf files "
                                     "(pip install -e \".[eeg]\": MNE-Python is not installed)"), result.stderr


def test_without_mne_exporting_epochs_is_refused_in_one_line(tmp_path):
    code = ("import sys\nsys.modules['mne'] = None\nimport numpy as np\n"
            "from dualdiv.data.samples import Samples, write_samples_file\nfrom dualdiv.cli import main\n"
            "x = np.zeros((2, 1, 8), np.float32)\n"
            "samples = Samples(x, x, [{}, {}], 'copy', 'copy', {}, 0)\n"
            "write_samples_file('s.h5', samples, ['C3'], 'uV', {}, None, 100.0)\n"
            "sys.exit(main(['export', 's.h5', '-o', 's-epo.fif']))\n")
    result = run(code, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == ("dualdiv export: error: s-epo.fif: install dualdiv[eeg] to write -epo.fif files "
                                     "(pip install -e \".[eeg]\": MNE-Python is not installed)"), result.stderr
    assert not (tmp_path / "s-epo.fif").exists()
