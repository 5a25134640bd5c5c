"""One source of settings: the schema, config.yaml, the CLI and the pipeline read the dataclasses' defaults."""

import numpy as np
import pytest
import yaml
from conftest import ROOT

from dualdiv.cli import main
from dualdiv.core.errors import ConfigError
from dualdiv.data.samples import load_samples
from dualdiv.generators import PEERS, REGISTRY, WALKS, make_generator
from dualdiv.stages.ingest import ingest
from dualdiv.stages.sample import write_samples
from dualdiv.stages.settings import default_config, from_config, load_config
from dualdiv.stages.tile import tile
from dualdiv.stages.workflow import dataset_settings

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
CONFIG = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def schema_defaults(node: dict, path: tuple = ()) -> dict:
    """{key path: default} of every ``default:`` under the schema's top-level properties."""
    found = {}
    for key, sub in (node.get("properties") or {}).items():
        if "default" in sub and sub["default"] != {}:
            found[(*path, key)] = sub["default"]
        found |= schema_defaults(sub, (*path, key))
    return found


def at(config: dict, path: tuple):
    for key in path:
        config = config[key]
    return config


def test_every_schema_default_is_the_code_default():
    defaults, found = default_config(), schema_defaults(SCHEMA)
    assert len(found) > 20  # the sections' keys are there
    for path, value in found.items():
        code = at(defaults, path)
        assert code == value, f"schema default of {'.'.join(path)}: {value!r}, code: {code!r}"


def test_config_yaml_sets_no_stage_default_of_its_own():
    """config.yaml names the data set; a stage value there would be a second source for a default."""
    defaults = default_config()
    for key, value in CONFIG.items():
        if key not in ("default_datasets", "datasets"):
            assert value == defaults[key], key


def test_every_config_key_is_a_settings_field():
    """Every key the schema allows in a stage section exists in its settings class (and the reverse)."""
    defaults = default_config()
    sections = SCHEMA["$defs"]
    for section in ("ingest", "tile", "localize", "sample"):
        assert set(sections[section]["properties"]) == set(defaults[section]), section
    assert set(sections["training"]["properties"]) == set(defaults["estimate"]["training"])
    assert set(sections["critic"]["properties"]) == set(defaults["estimate"]["training"]["critic"])
    assert set(sections["evaluate"]["properties"]["metrics"]["properties"]) == set(defaults["evaluate"]["metrics"])


def test_from_config_builds_settings_and_names_an_unknown_key():
    assert from_config("localize", {"scales": [4, 8]}).scales == (4, 8)
    assert from_config("tile", {}, seed=4).seed == 4
    with pytest.raises(ConfigError, match="config: tile: unknown key\\(s\\) windw"):
        from_config("tile", {"windw": 3})


def test_load_config_merges_a_file_over_the_defaults(tmp_path):
    (tmp_path / "c.yaml").write_text("estimate: {training: {max_iterations: 7}}\n")
    config = load_config(tmp_path / "c.yaml")
    assert config["estimate"]["training"]["max_iterations"] == 7
    assert config["estimate"]["training"]["rows_per_substep"] == default_config()["estimate"]["training"][
        "rows_per_substep"]
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


@pytest.fixture(scope="module")
def small_tiles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiles")
    rng = np.random.default_rng(0)
    x = np.sin(np.arange(16) / 2)[None, None, :] + 0.3 * rng.normal(size=(24, 2, 16))
    np.save(folder / "x.npy", x)
    ingest([folder / "x.npy"], folder / "raw.nc")
    tile(folder / "raw.nc", folder / "tiles.h5")
    return folder / "tiles.h5"


def pipeline_sample_settings() -> dict:
    """The sample section a pipeline run of config/config.yaml gives a data set (defaults filled in)."""
    snakemake_config = {**CONFIG, **{k: v for k, v in default_config().items() if k not in CONFIG}}
    snakemake_config["datasets"] = {"d": {"path": "x.npy"}}
    return dataset_settings(snakemake_config, "d", "sample")


@pytest.mark.parametrize("method", ["dualdiv", *sorted(REGISTRY)])
def test_cli_and_pipeline_resolve_every_method_to_the_same_generator(method):
    from dualdiv.generators import resolve_method

    assert resolve_method(method, pipeline_sample_settings()) == resolve_method(method, load_config()["sample"])


NEURAL = {"vae", "wgan_gp", "ddpm"}  # minutes at their default budgets: the test above covers their settings
# (the peers need environments of their own: tests/test_peers.py)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dualdiv", *sorted(set(REGISTRY) - set(WALKS) - NEURAL - set(PEERS)
                                                                 - {"dualdiv_corrected"})])
def test_cli_without_config_writes_what_the_pipeline_writes(method, small_tiles, tmp_path, one_torch_thread):
    """`dualdiv sample tiles.h5 --method M --seed 0` = the sample stage with the default config's settings."""
    pipeline = pipeline_sample_settings()
    n = 6
    expected = write_samples(small_tiles, method, tmp_path / "pipeline.h5", n, pipeline["seed"], pipeline)
    assert main(["sample", str(small_tiles), "-o", str(tmp_path / "cli.h5"), "--method", method, "-n", str(n),
                 "--seed", "0"]) == 0
    written = load_samples(tmp_path / "cli.h5")
    np.testing.assert_array_equal(written.images, expected.images)
    assert written.settings == expected.settings == make_generator(method).settings()
