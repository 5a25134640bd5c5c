"""EEG/MEG files in and out through MNE-Python (the optional extra dualdiv[eeg]).

Every fixture is made here: a simulated 14-channel recording (µV-sized noise plus a class-
dependent 10 Hz rhythm after each "open"/"shut" annotation) written by MNE as EDF, BDF,
FIF (raw and epochs), and BrainVision/EEGLAB where their writers are installed.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
import yaml
from conftest import ROOT

mne = pytest.importorskip("mne")

from dualdiv.cli import main  # noqa: E402
from dualdiv.core.errors import ConfigError, InputError  # noqa: E402
from dualdiv.data.ingest import IngestSettings  # noqa: E402
from dualdiv.data.readers import detect_format, read_file  # noqa: E402
from dualdiv.data.readers.mne_files import channel_units, unit_factor, units_label  # noqa: E402
from dualdiv.data.samples import Samples, load_samples, write_samples_file  # noqa: E402
from dualdiv.stages.export import export_formats, export_samples  # noqa: E402
from dualdiv.stages.ingest import ingest  # noqa: E402
from dualdiv.stages.sample import write_samples  # noqa: E402
from dualdiv.stages.tile import tile  # noqa: E402

NAMES = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8"]
RATE = 128.0
ONSETS = np.arange(1.0, 58.0, 1.5)  # 38 events, 1.5 s apart, in a 60 s recording
LABELS = ["open" if i % 2 else "shut" for i in range(len(ONSETS))]
EVENTS = {"events": ["open", "shut"], "tmin": 0.0, "tmax": 127 / RATE}  # 128 samples per epoch


def simulated_raw(seconds: float = 60.0, names=NAMES, seed: int = 0):
    """A RawArray (volts) with an "open"/"shut" annotation at each onset of ONSETS."""
    rng = np.random.default_rng(seed)
    n_time = int(seconds * RATE)
    data = rng.normal(scale=10e-6, size=(len(names), n_time))
    t = np.arange(n_time) / RATE
    for onset, label in zip(ONSETS, LABELS, strict=True):
        inside = (t >= onset) & (t < onset + 1.0)
        data[:, inside] += (30e-6 if label == "shut" else 5e-6) * np.sin(2 * np.pi * 10 * t[inside])
    raw = mne.io.RawArray(data, mne.create_info(list(names), RATE, "eeg"), verbose="error")
    raw.set_annotations(mne.Annotations(ONSETS, 1.0, LABELS))
    return raw


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The simulated recording as EDF, BDF, FIF, -epo.fif (and .vhdr/.set when pybv/eeglabio are there)."""
    folder = tmp_path_factory.mktemp("mne_files")
    raw = simulated_raw()
    written = {"raw": raw}
    mne.export.export_raw(folder / "rec.edf", raw, fmt="edf", verbose="error")
    written["edf"] = folder / "rec.edf"
    try:
        mne.export.export_raw(folder / "rec.bdf", raw, fmt="bdf", verbose="error")
        written["bdf"] = folder / "rec.bdf"
    except (ValueError, ImportError):  # an MNE without BDF export
        pass
    raw.save(folder / "rec_raw.fif", verbose="error")
    written["fif"] = folder / "rec_raw.fif"
    events, event_id = mne.events_from_annotations(raw, verbose="error")
    epochs = mne.Epochs(raw, events, event_id, tmin=0.0, tmax=127 / RATE, baseline=None, preload=True,
                        verbose="error")
    epochs.save(folder / "rec-epo.fif", verbose="error")
    written["fif_epochs"] = folder / "rec-epo.fif"
    for fmt, module, name in (("brainvision", "pybv", "rec.vhdr"), ("eeglab", "eeglabio", "rec.set")):
        try:
            __import__(module)
        except ImportError:
            continue
        mne.export.export_raw(folder / name, raw, fmt=fmt, verbose="error")
        written[fmt] = folder / name
    if "eeglab" in written:  # an epoched .set too
        mne.export.export_epochs(folder / "epochs.set", epochs, fmt="eeglab", verbose="error")
        written["eeglab_epochs"] = folder / "epochs.set"
    return written


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    return message


# ------------------------------------------------------------------ readers

def test_formats_come_from_the_names_mne_uses():
    assert detect_format(ROOT / "x.edf") == "edf" and detect_format(ROOT / "x.BDF") == "bdf"
    assert detect_format(ROOT / "s01_raw.fif") == "fif" and detect_format(ROOT / "s01_raw.fif.gz") == "fif"
    assert detect_format(ROOT / "s01-epo.fif") == "fif_epochs" and detect_format(ROOT / "s01_epo.fif") == "fif_epochs"
    assert detect_format(ROOT / "x.vhdr") == "brainvision" and detect_format(ROOT / "x.set") == "eeglab"


def test_edf_annotations_become_labelled_epochs_in_microvolts(files):
    raw = read_file(files["edf"], options={"epochs": EVENTS})
    series = np.asarray(raw.series)
    assert series.shape == (38, 14, 128)
    assert raw.labels == LABELS and raw.channel_names == NAMES and raw.channel_types == ["eeg"] * 14
    assert raw.sampling_rate == RATE and raw.units == "µV"
    # the values are MNE's volts in µV: the first epoch is the recording from the first onset on
    start = int(ONSETS[0] * RATE)
    expected = files["raw"].get_data()[:, start:start + 128] * 1e6
    np.testing.assert_allclose(series[0], expected, atol=0.01)  # EDF stores 16-bit integers
    assert raw.meta["mne"]["epochs"]["events"] == {"open": 19, "shut": 19}


@pytest.mark.parametrize("fmt", ["bdf", "fif", "fif_epochs", "brainvision", "eeglab", "eeglab_epochs"])
def test_every_format_gives_the_same_epochs(files, fmt):
    if fmt not in files:
        pytest.skip(f"no writer for {fmt} installed")
    options = {} if fmt in ("fif_epochs", "eeglab_epochs") else {"epochs": EVENTS}
    prefix = "Comment/" if fmt == "brainvision" else ""  # BrainVision markers are "<type>/<description>"
    if prefix:
        options["epochs"] = EVENTS | {"events": [prefix + name for name in EVENTS["events"]]}
    raw = read_file(files[fmt], options=options)
    assert detect_format(files[fmt]) == fmt.removesuffix("_epochs") or fmt == "fif_epochs"
    labels = raw.labels
    if fmt == "eeglab_epochs":  # MNE names an EEGLAB epoch by all the events its file lists for it ("open/shut")
        labels = [expected if expected in label.split("/") else label for label, expected in zip(labels, LABELS,
                                                                                               strict=True)]
    assert labels == [prefix + label for label in LABELS] and raw.channel_names == NAMES and raw.units == "µV"
    start = int(ONSETS[0] * RATE)
    np.testing.assert_allclose(np.asarray(raw.series)[0], files["raw"].get_data()[:, start:start + 128] * 1e6,
                               atol=0.01)


def test_without_annotations_the_stim_channel_gives_the_events(tmp_path):
    raw = simulated_raw()
    stim = np.zeros((1, raw.n_times))
    for onset, label in zip(ONSETS, LABELS, strict=True):
        stim[0, int(onset * RATE):int(onset * RATE) + 4] = 1 if label == "open" else 2
    raw.add_channels([mne.io.RawArray(stim, mne.create_info(["STI 014"], RATE, "stim"), verbose="error")])
    raw.set_annotations(None)
    raw.save(tmp_path / "stim_raw.fif", verbose="error")
    read = read_file(tmp_path / "stim_raw.fif", options={"epochs": EVENTS | {"events": ["1", "2"]}})
    assert read.labels == ["1" if label == "open" else "2" for label in LABELS]
    assert read.channel_names == NAMES  # the stim channel is no data channel
    with pytest.raises(InputError, match="no events '3' .* the file has 'stim code 1', 'stim code 2'"):
        read_file(tmp_path / "stim_raw.fif", options={"epochs": EVENTS | {"events": ["3"]}})


def test_fixed_length_windows_picks_and_units(files):
    windows = read_file(files["edf"], options={"epochs": {"duration": 2.0, "overlap": 1.0}, "picks": ["O2", "C3"],
                                               "units": "mV"})
    series = np.asarray(windows.series)
    assert series.shape == (59, 2, 256) and windows.labels is None  # (60 s − 2 s) / 1 s + 1 windows
    assert windows.channel_names == ["O2", "C3"] and windows.units == "mV"
    np.testing.assert_allclose(series[1, 1], files["raw"].get_data(picks=["C3"])[0, 128:384] * 1e3, atol=1e-5)
    whole = read_file(files["fif"], options={"picks": "eeg"})
    assert np.asarray(whole.series).shape == (1, 14, 60 * 128)  # no epochs: the recording as one series


def test_mne_filters_and_resamples_and_ingest_records_it(files, tmp_path):
    settings = IngestSettings(epochs=EVENTS | {"tmax": 63 / 64}, l_freq=1.0, h_freq=30.0, resample=64.0)
    dataset = ingest([files["edf"]], tmp_path / "raw.nc", settings)
    assert dataset["signal"].shape == (38, 14, 64) and dataset.attrs["sampling_rate"] == 64.0
    with xr.open_dataset(tmp_path / "raw.nc", engine="h5netcdf") as back:
        assert list(back["channel_type"].values) == ["eeg"] * 14 and back.attrs["units"] == "µV"
        assert set(back["label"].values) == {"open", "shut"}
        done = json.loads(back.attrs["mne"])["rec.edf"]
        provenance = json.loads(back.attrs["provenance"])
    assert done["filter"]["l_freq"] == 1.0 and done["resampled_to"] == 64.0 and done["original_sampling_rate"] == 128
    assert provenance["settings"]["h_freq"] == 30.0 and provenance["settings"]["epochs"]["events"] == ["open", "shut"]
    spectrum = np.abs(np.fft.rfft(dataset["signal"].values, axis=-1)).mean(axis=(0, 1))
    assert spectrum[0] < 0.05 * spectrum[10]  # DC (0 Hz) removed by the 1 Hz high-pass; 10 Hz kept


def test_several_files_must_share_their_channels(files, tmp_path):
    other = simulated_raw(names=[n for n in NAMES if n != "O2"] + ["Oz"], seed=1)
    mne.export.export_raw(tmp_path / "other.edf", other, fmt="edf", verbose="error")
    with pytest.raises(InputError) as exc:
        ingest([files["edf"], tmp_path / "other.edf"], tmp_path / "raw.nc", IngestSettings(epochs=EVENTS))
    assert re.fullmatch(r".*other\.edf: channel\(s\) O2 missing \(present in .*rec\.edf\).*", one_line(exc))
    # the same channels in another order are put in the first file's order
    shuffled = simulated_raw(seed=2).reorder_channels(NAMES[::-1])
    mne.export.export_raw(tmp_path / "shuffled.edf", shuffled, fmt="edf", verbose="error")
    dataset = ingest([files["edf"], tmp_path / "shuffled.edf"], tmp_path / "raw.nc", IngestSettings(epochs=EVENTS))
    assert dataset["signal"].shape == (76, 14, 128) and list(dataset["channel"].values) == NAMES
    start = int(ONSETS[0] * RATE)
    np.testing.assert_allclose(dataset["signal"].values[38], shuffled.get_data(picks=NAMES)[:, start:start + 128] * 1e6,
                               atol=0.01)


def test_errors_are_one_line_naming_the_file(files, tmp_path):
    (tmp_path / "notes.edf").write_text("these are my notes, not an EDF recording\n")
    with pytest.raises(InputError) as exc:
        read_file(tmp_path / "notes.edf")
    assert one_line(exc).startswith(f"{tmp_path / 'notes.edf'}: MNE-Python cannot read this file as edf")
    with pytest.raises(InputError) as exc:
        read_file(files["edf"], options={"epochs": {"events": ["left", "right"], "tmin": 0, "tmax": 1}})
    assert one_line(exc) == (f"{files['edf']}: no events 'left', 'right' (ingest.epochs.events); the file has "
                             "'open', 'shut'")
    with pytest.raises(InputError) as exc:
        read_file(files["edf"], options={"picks": ["Cz"]})
    assert one_line(exc).startswith(f"{files['edf']}: channel(s) Cz of ingest.picks not in the file")
    with pytest.raises(ConfigError) as exc:
        read_file(files["edf"], options={"units": "fT"})
    assert "ingest.units: 'fT' is not a unit of eeg channels" in one_line(exc)
    with pytest.raises(ConfigError) as exc:
        read_file(files["fif_epochs"], options={"epochs": EVENTS})
    assert one_line(exc).startswith("ingest.epochs: ") and "rec-epo.fif holds epochs already" in str(exc.value)
    # epochs of unequal length across files (64-sample epochs after 128-sample ones)
    short = mne.read_epochs(files["fif_epochs"], verbose="error").crop(0, 63 / RATE)
    short.save(tmp_path / "short-epo.fif", verbose="error")
    with pytest.raises(InputError) as exc:
        ingest([files["fif_epochs"], tmp_path / "short-epo.fif"], tmp_path / "raw.nc")
    assert re.fullmatch(r".*short-epo\.fif: ragged series: .*length_policy.*", one_line(exc))


def test_settings_are_checked_when_made_and_only_apply_to_mne_files(tmp_path):
    for bad, key in (({"events": "open", "tmin": 0, "tmax": 1}, "ingest.epochs.events"),
                     ({"events": ["open"], "tmin": 1, "tmax": 0}, "ingest.epochs: tmin"),
                     ({"duration": 1, "overlap": 1}, "ingest.epochs.overlap"),
                     ({"duration": 1, "events": ["a"]}, "ingest.epochs: either"),
                     ({"duration": 1, "stride": 1}, "ingest.epochs: unknown key(s) stride")):
        with pytest.raises(ConfigError, match=re.escape(key)):
            IngestSettings(epochs=bad)
    with pytest.raises(ConfigError, match="ingest.l_freq: 40.0 Hz must be below"):
        IngestSettings(l_freq=40.0, h_freq=30.0)
    assert IngestSettings(picks=["C3", "C4"]).picks == ("C3", "C4")
    np.save(tmp_path / "x.npy", np.zeros((4, 2, 8)))
    with pytest.raises(ConfigError, match="ingest.picks: applies to EEG/MEG files read through MNE"):
        ingest([tmp_path / "x.npy"], tmp_path / "raw.nc", IngestSettings(picks="eeg", min_samples=1))


def test_units_helpers():
    assert unit_factor("µV", "V") == pytest.approx(1e6) and unit_factor("uV", "V") == pytest.approx(1e6)
    assert unit_factor("fT/cm", "T/m") == pytest.approx(1e13) and unit_factor("fT", "V") is None
    label = units_label(["µV", "µV", "fT", "fT/cm"], ["eeg", "eog", "mag", "grad"])
    assert label == "µV (eeg, eog); fT (mag); fT/cm (grad)"
    assert channel_units(label, ["grad", "eeg", "mag"]) == ["fT/cm", "µV", "fT"]
    assert channel_units("uV", ["eeg", "eeg"]) == ["uV", "uV"] and channel_units("unknown", ["eeg"]) == [None]


# ------------------------------------------------------------------ export

@pytest.fixture(scope="module")
def copied_samples(files, tmp_path_factory):
    """EDF epochs → raw.nc → tiles.h5 → samples of the copy reference (real training images, fast)."""
    folder = tmp_path_factory.mktemp("mne_samples")
    ingest([files["edf"]], folder / "raw.nc", IngestSettings(epochs=EVENTS, picks=["C3", "C4", "O1", "O2"]))
    tile(folder / "raw.nc", folder / "tiles.h5")
    write_samples(folder / "tiles.h5", "copy", folder / "copy.h5", n=6, seed=0)
    return folder


def test_channel_types_and_sampling_rate_reach_the_samples_file(copied_samples):
    samples = load_samples(copied_samples / "copy.h5")
    assert samples.channel_types == ["eeg"] * 4 and samples.sampling_rate == RATE and samples.units == "µV"
    assert samples.channel_names == ["C3", "C4", "O1", "O2"] and samples.provenance["stage"] == "sample"


def test_epochs_fif_round_trip(copied_samples, files):
    out = export_samples(copied_samples / "copy.h5", copied_samples / "copy-epo.fif")
    epochs = mne.read_epochs(out, verbose="error")
    samples = load_samples(copied_samples / "copy.h5")
    assert epochs.ch_names == ["C3", "C4", "O1", "O2"] and epochs.get_channel_types() == ["eeg"] * 4
    assert epochs.info["sfreq"] == RATE and len(epochs) == 6
    assert set(epochs.event_id) == set(samples.labels) == {"open", "shut"}  # labelled epochs: copied per class
    np.testing.assert_allclose(epochs.get_data(units="uV"), samples.images_physical, rtol=1e-5, atol=1e-4)
    description = json.loads(epochs.info["description"])["dualdiv"]
    assert description["method"] == "copy" and description["provenance"]["stage"] == "sample"
    # the exported epochs are ingested again as they were
    again = read_file(out)
    np.testing.assert_allclose(np.asarray(again.series), samples.images_physical, rtol=1e-5, atol=1e-4)


def test_labels_become_event_ids_and_edf_holds_the_images_back_to_back(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(4, 3, 128)).astype(np.float32)
    samples = Samples(images=images, images_physical=20 * images, records=[{"label": lab} for lab in
                                                                          ("open", "shut", "shut", "open")],
                      method="m", generator="copy", settings={}, seed=0)
    write_samples_file(tmp_path / "m.h5", samples, ["C3", "C4", "EOG1"], "µV (eeg); mV (eog)", {"stage": "sample"},
                       ["eeg", "eeg", "eog"], RATE)
    epochs = mne.read_epochs(export_samples(tmp_path / "m.h5", tmp_path / "m-epo.fif"), verbose="error")
    assert epochs.event_id == {"open": 1, "shut": 2} and list(epochs.events[:, 2]) == [1, 2, 2, 1]
    assert epochs.get_channel_types() == ["eeg", "eeg", "eog"]
    np.testing.assert_allclose(epochs.get_data(picks="eog")[:, 0], 20e-3 * images[:, 2], rtol=1e-5)  # mV → V
    raw = mne.io.read_raw_edf(export_samples(tmp_path / "m.h5", tmp_path / "m.edf"), preload=True, verbose="error")
    assert raw.ch_names == ["C3", "C4", "EOG1"] and raw.info["sfreq"] == RATE
    assert [a["description"] for a in raw.annotations if not a["description"].startswith("BAD")] == [
        "open", "shut", "shut", "open"]
    np.testing.assert_allclose(raw.get_data(picks=["C3"])[0, 128:256], 20e-6 * images[1, 0], atol=2e-9)


def test_export_errors_and_formats(copied_samples, tmp_path):
    with pytest.raises(ConfigError, match="MNE names epochs files \\*-epo.fif"):
        export_samples(copied_samples / "copy.h5", tmp_path / "copy.fif")
    assert export_formats("auto", ["rec.edf", "b.bdf"]) == ("fif",) and export_formats("auto", ["x.npy"]) == ()
    assert export_formats(["fif", "edf"], ["x.npy"]) == ("fif", "edf")


def test_cli_exports_epochs(copied_samples, tmp_path, capsys):
    assert main(["export", str(copied_samples / "copy.h5"), "-o", str(tmp_path / "x-epo.fif")]) == 0
    assert "written" in capsys.readouterr().out
    assert len(mne.read_epochs(tmp_path / "x-epo.fif", verbose="error")) == 6


# ------------------------------------------------------------------ the workflow, and the README's example

def readme_section() -> str:
    return (ROOT / "README.md").read_text().split("## EEG/MEG files (MNE)\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.slow
def test_workflow_reads_an_edf_and_writes_epochs_mne_reads_then_the_readme_example_runs(tmp_path):
    """The README's config (budgets shrunk) on a small EDF: ingest → tile → sample → samples/dualdiv-epo.fif."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for part in ("Snakefile", "workflow", "dualdiv", "config", "environment.yml"):
        (shutil.copytree if (ROOT / part).is_dir() else shutil.copy)(ROOT / part, repo / part)
    work = tmp_path / "work"
    work.mkdir()
    mne.export.export_raw(work / "rec.edf", simulated_raw(), fmt="edf", verbose="error")
    section = readme_section()
    config = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    config["sample"] = {**config.get("sample", {}), "n_samples": 8, "methods": ["dualdiv"],
                        "settings": {"dualdiv_corrected": {"critic_iterations": 20, "candidates": 4,
                                                           "mala_steps": 10}}}
    (work / "eeg.yaml").write_text(yaml.safe_dump(config))
    target = "results/mine/samples/dualdiv-epo.fif"
    command = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--cores", "2", target,
               "--configfile", "eeg.yaml"]
    result = subprocess.run(command, cwd=work, env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    epochs = mne.read_epochs(work / target, verbose="error")
    assert len(epochs) == 8 and epochs.ch_names == NAMES and epochs.info["sfreq"] == RATE
    assert epochs.get_channel_types() == ["eeg"] * 14
    # the whole run (all_targets) asks for the -epo.fif of every method: sample.export is auto, an EDF data set
    dry = subprocess.run([*command[:7], "-n", "--forcerun", "export", "--configfile", "eeg.yaml"], cwd=work,
                         env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True, text=True, timeout=600)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert re.search(r"rule export:\n(.*\n)*?\s+output: results/mine/samples/dualdiv-epo.fif", dry.stdout), dry.stdout
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    run = subprocess.run([sys.executable, "-c", "import matplotlib; matplotlib.use('Agg')\n" + code], cwd=work,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (work / "psd.png").stat().st_size > 1000
