"""The layers of docs/source/architecture.rst are the imports of the code.

The layer table and the module list are read from that page (the one
place they are written): every import of every module under sealedmeta/
(at the top of a module or inside a function) goes to its own layer or to
one its row names; no module, nor subpackage taken whole, imports itself through others; what a
package's ``__init__.py`` imports as it loads is allowed to every module
under it; and the page lists every module of the package, in its layer,
and no other.
"""

import ast
import pathlib
import re
import subprocess
import sys

import pytest

TOP = pathlib.Path(__file__).resolve().parents[2]
ROOT = TOP / "sealedmeta"
PAGE = TOP / "docs" / "source" / "architecture.rst"
PACKAGE = "sealedmeta"


# -- the page ----------------------------------------------------------------

def _cells(lines):
    """The rows of the list-table whose first lines are *lines*: a list of
    rows, each a list of cell texts (continuation lines joined)."""
    rows = []
    for line in lines:
        if re.match(r"   \* - ", line):
            rows.append([line[7:]])
        elif re.match(r"     - ", line):
            rows[-1].append(line[7:])
        elif line.startswith("       ") and rows:
            rows[-1][-1] += " " + line.strip()
        elif line.strip() and not line.startswith("   "):
            break
    return rows


def read_table(text):
    """``[(layer, [module or package/ paths], {layers it may import})]``,
    lowest first, from the page's ``Layers`` list-table."""
    lines = text.splitlines()
    start = lines.index(".. list-table:: Layers, lowest first")
    rows = _cells(lines[start + 1:])
    assert rows and rows[0] == ["Layer", "Modules",
                                "May import, besides its own layer"], rows[:1]
    table = []
    for layer, modules, may in rows[1:]:
        allowed = set() if may == "nothing" else {
            name.strip() for name in may.split(",")}
        table.append((layer, re.findall(r"``([^`]+)``", modules), allowed))
    return table


def read_module_list(text):
    """``{module path: layer heading it is listed under}`` from the page's
    ``Modules`` section; a path listed twice is an error."""
    lines = text.splitlines()
    start = lines.index("Modules")
    listed, layer = {}, None
    for i in range(start + 2, len(lines)):
        line = lines[i]
        if i + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[i + 1]):
            break   # the next section
        if i + 1 < len(lines) and re.fullmatch(r"~{3,}", lines[i + 1]):
            layer = line
        elif line.startswith("``") and layer is not None:
            for path in re.findall(r"``([^`]+\.py)``", line):
                assert path not in listed, "%s listed twice" % path
                listed[path] = layer
    return listed


TEXT = PAGE.read_text()
TABLE = read_table(TEXT)
ORDER = [layer for layer, _, _ in TABLE]


# -- the package -------------------------------------------------------------

def module_files():
    """``{module name: path relative to sealedmeta/}`` of every module."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        parts = [PACKAGE] + list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = rel.as_posix()
    return found


MODULES = module_files()


def layer_of(rel):
    """The layer of the module at *rel*: the row naming it, or naming the
    nearest package holding it."""
    named = {}
    for layer, paths, _ in TABLE:
        for path in paths:
            named[path] = layer
    if rel in named:
        return named[rel]
    parts = rel.split("/")[:-1]
    while parts:
        package = "/".join(parts) + "/"
        if package in named:
            return named[package]
        parts.pop()
    return None


LAYER = {name: layer_of(rel) for name, rel in MODULES.items()}


def is_package(name):
    return MODULES[name].endswith("__init__.py")


def imports_of(source, name, package):
    """``[(target module, eager)]``: every sealedmeta module the code
    *source* of module *name* imports, anywhere in it (eager: run as the
    module loads, i.e. not inside a function or class body).

    ``from a import b`` imports the module a.b when there is one, else a;
    ``importlib.import_module("sealedmeta...")`` counts too."""
    tree = ast.parse(source)
    lazy = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            lazy.update(id(n) for n in ast.walk(node) if n is not node)
    found = []

    def add(target, node):
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target.split(".")[0] == PACKAGE and target:
            found.append((target, id(node) not in lazy))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if package else name.split(".")[:-1]
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                sub = "%s.%s" % (base, alias.name)
                add(sub if sub in MODULES else base, node)
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None))
              == "import_module"):
            add(node.args[0].value, node)
    return found


def graph():
    """``{module: {target: eager}}`` (eager when any import of it is)."""
    edges = {}
    for name, rel in MODULES.items():
        out = edges.setdefault(name, {})
        source = (ROOT / rel).read_text()
        for target, eager in imports_of(source, name, is_package(name)):
            if target != name:
                out[target] = out.get(target, False) or eager
    return edges


EDGES = graph()


def allowed(importer, target):
    """Whether the layer *importer* may import from the layer *target*."""
    rows = {layer: may for layer, _, may in TABLE}
    return target == importer or target in rows[importer]


# -- the table itself --------------------------------------------------------

def test_the_page_has_the_table():
    assert ORDER[:3] == ["format", "crypto", "keyring"]
    assert {"sealer", "CLI", "Cinder"} <= set(ORDER)


def test_a_layer_imports_only_layers_below_it():
    """The table is a stack: what a row may import is all earlier rows."""
    for i, (layer, _, may) in enumerate(TABLE):
        assert may <= set(ORDER[:i]), layer


def test_the_command_line_and_cinder_import_nothing_of_each_other():
    rows = {layer: may for layer, _, may in TABLE}
    assert "Cinder" not in rows["CLI"] and "CLI" not in rows["Cinder"]


def test_every_module_is_in_one_layer_and_the_table_names_only_modules():
    assert sorted(n for n, layer in LAYER.items() if layer is None) == []
    existing = set(MODULES.values())
    for layer, paths, _ in TABLE:
        for path in paths:
            if path.endswith("/"):
                assert any(p.startswith(path) for p in existing), path
            else:
                assert path in existing, path


# -- the imports -------------------------------------------------------------

def test_the_import_reader_sees_lazy_and_from_imports():
    """The reader itself: a function-level import, a ``from`` of a module,
    a ``from`` of a name, a relative one, import_module."""
    source = (
        "from sealedmeta import envelope\n"
        "from sealedmeta.keyring import KeyRing\n"
        "def f():\n"
        "    from sealedmeta.cinder import mixin\n"
        "    import importlib\n"
        "    importlib.import_module('sealedmeta.cmd.main')\n"
        "from . import crypto\n")
    assert sorted(imports_of(source, "sealedmeta.sealer", False)) == [
        ("sealedmeta.cinder.mixin", False), ("sealedmeta.cmd.main", False),
        ("sealedmeta.crypto", True), ("sealedmeta.envelope", True),
        ("sealedmeta.keyring", True)]


def test_the_graph_has_the_imports_that_are_there():
    assert EDGES["sealedmeta.sealer"]["sealedmeta.envelope"] is True
    # lazy: the Barbican store's options are loaded by entry point, and the
    # mixin on first access.
    assert EDGES["sealedmeta.cinder"] == {"sealedmeta.cinder.mixin": False}
    assert EDGES["sealedmeta"]["sealedmeta.sealer"] is False


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_import_goes_down_the_layers(name):
    wrong = ["%s (%s)" % (target, LAYER[target])
             for target in sorted(EDGES[name])
             if not allowed(LAYER[name], LAYER[target])]
    assert wrong == [], "%s (%s) imports from above or beside: %s" % (
        name, LAYER[name], ", ".join(wrong))


def test_a_package_loads_only_what_every_module_under_it_may_import():
    """A package's __init__ runs before any module under it."""
    for package in [n for n in MODULES if is_package(n)]:
        below = [n for n in MODULES if n.startswith(package + ".")]
        for target, eager in EDGES[package].items():
            if eager:
                assert [n for n in below
                        if not allowed(LAYER[n], LAYER[target])] == [], (
                    "%s loads %s" % (package, target))


def _cycles(edges):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_lazy_cycle():
    assert _cycles({"a": {"b": True}, "b": {"c": False}, "c": {"a": False},
                    "d": {"a": True}}) == [["a", "b", "c"]]


def test_no_import_cycle_lazy_ones_included():
    assert _cycles(EDGES) == []


def unit(name):
    """A module of the package's top, or the subpackage holding it."""
    return ".".join(name.split(".")[:2])


def test_no_import_cycle_between_subpackages_and_modules():
    """Nor between cmd/, cinder/, keystores/ and the modules at the top,
    each package taken whole."""
    edges = {}
    for name, targets in EDGES.items():
        out = edges.setdefault(unit(name), {})
        for target in targets:
            if unit(target) != unit(name):
                out[unit(target)] = True
    assert _cycles(edges) == []


def test_importing_the_format_loads_no_layer_above_it():
    """What the import graph says, checked in a fresh interpreter: the
    package's __init__ leaves the Sealer for first use."""
    code = ("import sys, sealedmeta.envelope\n"
            "print('\\n'.join(m for m in sys.modules"
            " if m.split('.')[0] == 'sealedmeta'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, cwd=str(TOP), timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    assert "sealedmeta.envelope" in loaded
    assert {m: LAYER[m] for m in loaded if LAYER[m] != "format"} == {
        "sealedmeta": "sealer"}   # its __init__, loading the format only


# -- the module list ---------------------------------------------------------

def test_the_page_lists_every_module_in_its_layer_and_no_other():
    listed = read_module_list(TEXT)
    assert sorted(set(MODULES.values()) - set(listed)) == []   # unlisted
    assert sorted(set(listed) - set(MODULES.values())) == []   # gone
    assert {path: layer for path, layer in listed.items()
            if layer_of(path) != layer} == {}
