"""The layers import one way: the keyring model, the verdict and the key
stores take keyring names and bounds from names.py and suites from
suites.py, never from the envelope format."""

import ast
import pathlib

import pytest

import sealedmeta

ROOT = pathlib.Path(sealedmeta.__file__).parent
MODULES = sorted([ROOT / "keyring.py", ROOT / "names.py", ROOT / "suites.py",
                  ROOT / "verdict.py"]
                 + list((ROOT / "keystores").rglob("*.py")))


def imported(path):
    """Every module name *path* imports (``from a import b``: a and a.b)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update("%s.%s" % (node.module, a.name) for a in node.names)
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_envelope_import_in_the_keyring_model_and_key_stores(path):
    assert "sealedmeta.envelope" not in imported(path)
