"""The architecture on disk, checked: layers import downwards only, no cycles, no huge modules.

The layers of `detector` (see its package docstrings) and who may import whom:

- ``detector.core``: nothing else from `detector`.
- ``detector.evidence``: core.
- ``detector.ui``: core, evidence and scale (the batch engine under both apps' batch tables).
- ``detector.serving``, ``detector.scale``, ``detector.hub``: core.
- ``detector`` (the public API in ``__init__``), ``detector.cli``, ``detector.__main__``: every
  layer except the UI and serving ones, which only the apps use.

Around it: ``training`` and ``benchmarks`` may import `detector`, never the reverse; the apps
(``app.py`` and its tabs in ``webapp/``, ``streamlit_app.py``, ``pages/``) import only
``detector`` (the public API), ``detector.ui`` (what both apps share) and ``detector.serving``
(their upload policy and ASGI middleware). Imports are read with `ast`, including those inside
functions; imports under ``if TYPE_CHECKING:`` are annotations only and do not count.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "detector"
#: Every layer of `detector` and the layers it may import (itself included).
LAYERS: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "evidence": frozenset({"core", "evidence"}),
    "ui": frozenset({"core", "evidence", "scale", "ui"}),
    "serving": frozenset({"core", "serving"}),
    "scale": frozenset({"core", "scale"}),
    "hub": frozenset({"core", "hub"}),
    "api": frozenset({"api", "core", "evidence", "scale", "hub"}),
}
#: What the apps may import from `detector`.
UI_ALLOWED = ("detector", "detector.ui", "detector.serving")
#: Longest module, in lines, in the packages below.
MAX_LINES = 600
SIZE_CHECKED = ("detector", "training", "benchmarks")
#: Longest Streamlit file (``streamlit_app.py``, ``pages/``), in lines.
MAX_STREAMLIT_LINES = 300
#: Longest ``app.py`` (layout assembly and server setup), and longest module of its tabs
#: (``webapp/``), in lines.
MAX_APP_LINES = 350
MAX_WEBAPP_LINES = 300
#: The Gradio app's files: ``app.py`` and its tabs.
GRADIO_FILES = [ROOT / "app.py", *sorted((ROOT / "webapp").glob("*.py"))]
#: Modules that ``import detector`` must not load: UI and web libraries, Beam, and the layers the
#: public API does not need at import (the Hub loaders load on first use).
NOT_ON_IMPORT = (
    "gradio",
    "streamlit",
    "starlette",
    "apache_beam",
    "huggingface_hub",
    "detector.ui",
    "detector.serving",
    "detector.hub",
    "detector.scale.beam",
    "detector.cli",
)
#: The only parts of `detector` that ``import detector`` may load.
ON_IMPORT = ("detector.core", "detector.evidence", "detector.scale")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _import_nodes_of(child))
            continue
        yield from _import_nodes_of(node)


def _import_nodes_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _import_nodes(node)


def imports_of(path: Path, known: set[str] | None = None) -> set[str]:
    """The absolute names of the modules a file imports (``from m import x`` gives ``m.x`` when
    that is a known module, else ``m``)."""
    name = module_name(path) if path.is_relative_to(ROOT) else path.stem
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            full = f"{base}.{alias.name}"
            found.add(full if known is not None and full in known else base)
    return found


def detector_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS and parts[1] != "api":
        return parts[1]
    return "api"  # detector itself, detector.cli, detector.__main__


def internal_graph() -> dict[str, set[str]]:
    modules = detector_modules()
    known = set(modules)
    return {
        name: {m for m in imports_of(path, known) if m in known and m != name}
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


# ----------------------------------------------------------------------------------- layers
def test_every_subpackage_is_a_known_layer_with_a_docstring():
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages == set(LAYERS) - {"api"}
    for name in packages:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc and "import" in doc, f"detector.{name} must say what it may import"


@pytest.mark.parametrize("module", sorted(detector_modules()))
def test_layers_import_only_downwards(module):
    modules = detector_modules()
    allowed = LAYERS[layer_of(module)]
    wrong = set()
    for imported in imports_of(modules[module], set(modules)):
        if imported == "training" or imported.startswith(("training.", "benchmarks")):
            wrong.add(imported)
        elif imported == "detector":
            if layer_of(module) != "api":  # a layer importing the public API above it
                wrong.add(imported)
        elif imported.startswith("detector.") and layer_of(imported) not in allowed:
            wrong.add(imported)
    assert not wrong, f"{module} ({layer_of(module)}) imports {sorted(wrong)}"


def test_no_import_cycles_between_detector_modules():
    assert find_cycle(internal_graph()) is None, " -> ".join(find_cycle(internal_graph()) or [])


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_lazy_imports_count_and_type_checking_imports_do_not(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from detector.ui import presentation\n"
        "def f():\n    from detector.scale import beam\n    import detector.hub.published\n"
    )
    known = {"detector.scale.beam"}
    assert imports_of(source, known) == {"typing", "detector.scale.beam", "detector.hub.published"}


@pytest.mark.parametrize(
    "path",
    [*GRADIO_FILES, ROOT / "streamlit_app.py", *sorted((ROOT / "pages").glob("*.py"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_the_apps_import_only_the_public_api_and_the_ui_layer(path):
    used = {m for m in imports_of(path) if m.split(".")[0] == "detector"}
    wrong = {m for m in used if not any(m == a or m.startswith(a + ".") for a in UI_ALLOWED)}
    assert not wrong, f"{path.name} imports {sorted(wrong)}; allowed: {UI_ALLOWED}"
    # a module of detector.ui or detector.serving, never a deeper layer through them
    assert all(m.count(".") <= 2 for m in used), used


@pytest.mark.parametrize(
    "path", sorted(p for p in PACKAGE.rglob("*.py")), ids=lambda p: module_name(p)
)
def test_detector_never_imports_training_or_benchmarks(path):
    used = {m.split(".")[0] for m in imports_of(path)}
    assert not used & {"training", "benchmarks"}, f"{module_name(path)} imports {used}"


# ----------------------------------------------------------------------------------- sizes
@pytest.mark.parametrize(
    "path",
    sorted(p for folder in SIZE_CHECKED for p in (ROOT / folder).rglob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_module_is_longer_than_the_limit(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)}: {lines} lines (split it by concern)"


@pytest.mark.parametrize(
    "path",
    [ROOT / "streamlit_app.py", *sorted((ROOT / "pages").glob("*.py"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_streamlit_files_are_thin(path):
    """The Streamlit app and pages are layout and handlers; their logic lives in `detector.ui`."""
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_STREAMLIT_LINES, (
        f"{path.relative_to(ROOT)}: {lines} lines (move logic into detector.ui)"
    )


@pytest.mark.parametrize("path", GRADIO_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_gradio_files_are_thin(path):
    """``app.py`` assembles the tabs and sets up the server; each tab of ``webapp/`` is layout
    and handlers. Their logic lives in `detector.ui`."""
    lines = len(path.read_text().splitlines())
    limit = MAX_APP_LINES if path.name == "app.py" and path.parent == ROOT else MAX_WEBAPP_LINES
    assert lines <= limit, f"{path.relative_to(ROOT)}: {lines} lines (move logic into detector.ui)"


def test_the_gradio_tabs_are_found():
    """The checks above see the tabs: a package with a docstring, one module per tab."""
    names = {p.stem for p in GRADIO_FILES}
    assert {"app", "__init__", "detect", "compare", "evidence", "batch", "api"} <= names
    assert ast.get_docstring(ast.parse((ROOT / "webapp" / "__init__.py").read_text()))


# ----------------------------------------------------------------------------------- import
def run_fresh(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter (nothing imported yet) from the repository root; it
    must exit cleanly."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_import_detector_loads_no_ui_serving_or_beam_code():
    prefixes = ("detector", *NOT_ON_IMPORT)
    code = (
        "import sys, detector\n"
        f"print('\\n'.join(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))\n"
    )
    done = run_fresh(code)
    loaded = done.stdout.split()
    assert "detector.core.models" in loaded  # the check sees what it should
    unwanted = [m for m in loaded if m.startswith(NOT_ON_IMPORT)]
    assert not unwanted, f"`import detector` loaded {unwanted}"
    outside = [m for m in loaded if m != "detector" and not m.startswith(ON_IMPORT)]
    assert not outside, f"`import detector` loaded modules outside {ON_IMPORT}: {outside}"


def test_the_public_api_names_resolve():
    import detector

    missing = [name for name in detector.__all__ if not hasattr(detector, name)]
    assert not missing
    assert callable(detector.explain) and callable(detector.scan)


def test_keras_loads_without_its_unused_optional_imports():
    """`detector.core._keras` keeps scikit-learn and pyplot out of Keras's import, and both
    still import afterwards (training uses scikit-learn, the stress plot matplotlib)."""
    code = (
        "import sys; import detector.core._keras as k; "
        "assert 'sklearn' not in sys.modules and 'matplotlib.pyplot' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('sklearn', 'matplotlib.pyplot'))); "
        "import sklearn.linear_model, matplotlib.pyplot; "
        "print(k.keras.__version__, sklearn.__version__)"
    )
    done = run_fresh(code)
    assert done.stdout.strip()


def test_listing_models_and_resolving_specs_load_no_keras():
    """Model cards, recipe specs and backbone names are plain data: `python -m detector list`
    and the apps' model menus must not pay for importing TensorFlow and Keras."""
    code = (
        "import sys, detector\n"
        "from detector.core.backbones import BACKBONES, get_backbone\n"
        "from detector.core.models import trained_cards\n"
        "from detector.core.recipes import recipes\n"
        "assert detector.list_models() and detector.default_model_name()\n"
        "trained_cards()\n"
        "for recipe in recipes().values():\n"
        "    recipe.spec(**recipe.tiny)\n"
        "    if recipe.name != 'ensemble':  # an ensemble needs its members named\n"
        "        recipe.spec()\n"
        "for name in BACKBONES:\n"
        "    get_backbone(name).native_scale, get_backbone(name).last_conv_layer\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow')))\n"
    )
    done = run_fresh(code)
    assert done.stdout.strip() == "[]", f"loaded Keras: {done.stdout[:300]}"
