"""results/summary.csv keeps every data set of the results folder; summary.md has a headline table per data set."""

import csv
import json
import re

import pytest

from dualdiv.core.errors import InputError
from dualdiv.stages.evaluate import SUMMARY_FIELDS, read_summary, write_summary

OLD_HEADER = "dataset,method,metric,value,reliable"  # summaries written before the intervals are still read

METHODS = ("dualdiv", "copy", "interpolate", "marginals")


def write_evals(folder, dataset, offset=0.0) -> dict:
    """Eval JSONs of ``METHODS`` under folder/dataset/eval; the entropy gap misranks the references."""
    paths = {}
    for i, method in enumerate(METHODS):
        evaluation = {"c2st_auc_features": 0.6 + 0.1 * i + offset, "dcr_ratio": 1.0 - 0.3 * (method == "copy"),
                      "near_copy_fraction": float(method == "copy"), "kl_dv_gen_real_features": 0.5 + i,
                      "entropy_gap_features": 3.0 - i, "tc_gap": None, "n_generated": 100, "memorised": False,
                      "method": method, "settings": {"k": 1}}
        path = folder / dataset / "eval" / f"{method}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(evaluation))
        paths[method] = str(path)
    return paths


def read_rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_second_data_set_keeps_the_first_and_rerunning_one_replaces_only_its_rows(tmp_path):
    out = tmp_path / "summary.csv"
    first = write_evals(tmp_path, "eeg")
    write_summary({"eeg": first}, out)
    write_summary({"alpha": write_evals(tmp_path, "alpha")}, out)  # another config, same results folder
    rows = read_rows(out)
    assert {row["dataset"] for row in rows} == {"eeg", "alpha"}
    n_per_dataset = len(rows) // 2
    write_summary({"eeg": write_evals(tmp_path, "eeg", offset=0.05)}, out)  # eeg again, changed values
    rows = read_rows(out)
    eeg = [row for row in rows if row["dataset"] == "eeg"]
    assert len(eeg) == n_per_dataset and len(rows) == 2 * n_per_dataset  # replaced, not appended
    value = {(r["dataset"], r["method"], r["metric"]): float(r["value"]) for r in rows}
    assert value["eeg", "dualdiv", "c2st_auc_features"] == pytest.approx(0.65)
    assert value["alpha", "dualdiv", "c2st_auc_features"] == pytest.approx(0.6)
    assert not list(tmp_path.glob(".summary.csv.tmp-*"))  # written atomically, nothing left behind


def test_rows_are_sorted_by_dataset_then_given_method_order_then_metric(tmp_path):
    out = tmp_path / "summary.csv"
    write_summary({"zeta": write_evals(tmp_path, "zeta")}, out)
    paths = write_evals(tmp_path, "alpha")
    write_summary({"alpha": {m: paths[m] for m in ("marginals", "dualdiv", "copy", "interpolate")}}, out)
    rows = read_rows(out)
    keys = [(row["dataset"], row["method"], row["metric"]) for row in rows]
    assert [k[0] for k in keys] == sorted(k[0] for k in keys)
    assert list(dict.fromkeys(k[1] for k in keys if k[0] == "alpha")) == ["marginals", "dualdiv", "copy",
                                                                         "interpolate"]
    assert list(dict.fromkeys(k[1] for k in keys if k[0] == "zeta")) == list(METHODS)  # kept in the file's order
    metrics = [k[2] for k in keys if k[:2] == ("zeta", "dualdiv")]
    assert metrics == sorted(metrics) and "tc_gap" not in metrics and "memorised" not in metrics  # numbers only
    assert read_summary(out) == write_summary({}, out)  # rewriting with nothing new changes nothing


@pytest.mark.parametrize(("content", "message"), [
    ("dataset,method,value\neeg,copy,1\n", "header"),
    ("", "header"),
    (OLD_HEADER + "\neeg,copy,dcr_ratio,one,True\n", "line 2: value 'one' is not a number"),
    (OLD_HEADER + "\neeg,copy,dcr_ratio,0.1\n", "line 2 has 4 fields"),
    (OLD_HEADER + "\neeg,copy,dcr_ratio,0.1,maybe\n", "line 2: reliable 'maybe'"),
    (",".join(SUMMARY_FIELDS) + "\neeg,copy,dcr_ratio,0.1,0,x,3,True\n", "line 2: ci_high 'x' is not a number"),
    (",".join(SUMMARY_FIELDS) + "\neeg,copy,dcr_ratio,0.1,,,2.5,True\n", "line 2: n '2.5' is not an integer"),
    (",".join(SUMMARY_FIELDS) + "\neeg,copy,dcr_ratio,0.1,True\n", "line 2 has 5 fields, expected 8"),
])
def test_a_malformed_existing_summary_is_a_one_line_error_naming_the_file(tmp_path, content, message):
    out = tmp_path / "summary.csv"
    out.write_text(content)
    with pytest.raises(InputError, match=re.escape(message)) as error:
        write_summary({"alpha": write_evals(tmp_path, "alpha")}, out)
    assert str(out) in str(error.value) and "\n" not in str(error.value)
    assert out.read_text() == content  # left as it was


def test_headline_has_a_table_per_data_set_with_tc_wall_time_and_unreliable_marks(tmp_path):
    out, headline = tmp_path / "summary.csv", tmp_path / "summary.md"
    write_summary({"eeg": write_evals(tmp_path, "eeg")}, out, headline=headline)
    alpha_evals = write_evals(tmp_path, "alpha")
    (tmp_path / "alpha" / "divergence.json").write_text(json.dumps({"tc": 898.98, "stderr": 245.5, "units": "nats",
                                                                     "n_steps": 4}))
    benchmarks = tmp_path / "alpha" / "benchmarks"
    benchmarks.mkdir()
    for name, seconds in (("sample_dualdiv", 12.5), ("evaluate_dualdiv", 7.5), ("path_step_1", 30.0)):
        (benchmarks / f"{name}.tsv").write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:12\t400\n")
    write_summary({"alpha": alpha_evals}, out, headline=headline)
    text = headline.read_text()
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    assert [section.splitlines()[0] for section in sections] == ["alpha", "eeg"]  # both data sets, sorted
    for section in sections:
        table = [line for line in section.splitlines() if line.startswith("|")]
        assert len(table) == 2 + len(METHODS)  # header, alignment row, one row per method
        header = [cell.strip() for cell in table[0].strip("|").split("|")]
        assert header[0] == "method" and "C2ST" in header and "DCR" in header and header[-1] == "wall s"
        assert "entropy gap †" in header  # copy does not beat interpolate there: marked unreliable
        assert "KL" in header  # reliable (copy lowest): no mark
    alpha, eeg = sections
    assert "898.98" not in alpha and "899 ± 246 nats" in alpha and "50 s over 3 jobs" in alpha
    dualdiv_row = next(line for line in alpha.splitlines() if line.startswith("| dualdiv "))
    assert dualdiv_row.rstrip(" |").endswith("20")  # its own jobs: sampling 12.5 s + evaluation 7.5 s
    assert "no `divergence.json`" in eeg and "*copy*" in eeg
    for column in ("C2ST", "DCR", "near copies", "KL", "entropy gap", "cluster gap", "TC gap", "TSTR gain",
                   "aug gain", "wall s"):
        assert f"**{column}** — " in text  # each column explained once
    assert "lower is better" in text and "0.5 = indistinguishable (best)" in text
