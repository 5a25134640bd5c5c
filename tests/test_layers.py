"""The package's layers import one way, and nothing imports round in a cycle.

Bottom to top: core → data → estimators → generators → evaluation → stages → cli.
Every import of a ``dualdiv`` module is read from the source (``ast``), including
imports inside functions, so a lazy import that goes up fails here too.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "dualdiv"
LAYERS = ["core", "data", "estimators", "generators", "evaluation", "stages", "cli"]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> set[str]:
    """dualdiv modules that ``path`` imports (``from a import b`` counts b when it is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(name for name in names if name in MODULES)
    return found


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return -1  # dualdiv/__init__: imports only core (checked below) and names the rest lazily
    return LAYERS.index(parts[1])


def test_every_module_is_in_a_layer():
    for module in MODULES:
        assert module == "dualdiv" or module.split(".")[1] in LAYERS, f"{module} is in no layer"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_goes_up(module):
    for imported in imports_of(MODULES[module]):
        if imported == "dualdiv":
            continue
        own = layer(module) if module != "dualdiv" else 0
        assert layer(imported) <= own, f"{module} (layer {LAYERS[own]}) imports {imported} from a higher layer"


def test_no_import_cycles():
    graph = {module: {m for m in imports_of(path) if not module.startswith(m + ".") and m != module}
             for module, path in MODULES.items()}
    state: dict[str, int] = {}

    def visit(module, trail):
        state[module] = 1
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                cycle = trail[trail.index(imported):] + [imported] if imported in trail else [module, imported]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if imported not in state:
                visit(imported, trail + [imported])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_checker_sees_an_upward_import(tmp_path):
    """The AST reader finds imports inside functions (so the layer test above can fail)."""
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from dualdiv.stages.sample import write_samples\n")
    assert imports_of(source) == {"dualdiv.stages.sample"}


def test_top_level_names_do_not_import_torch():
    code = ("import sys\nfrom dualdiv import DualSpace, Synthesizer, evaluate, ingest, make_generator, tile\n"
            "import dualdiv.stages.workflow, dualdiv.stages.settings, dualdiv.generators\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "make_generator('copy')\nassert 'torch' not in sys.modules, 'torch imported by a reference'\n"
            "make_generator('dualdiv')\nassert 'torch' in sys.modules\nprint('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
