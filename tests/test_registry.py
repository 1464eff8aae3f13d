"""The one table of checks: `checks/` and `kinds/` register into it and never import each other."""

import ast
from pathlib import Path

import pytest

import gradegrad
from gradegrad import registry
from gradegrad.catalog import load_catalog

PACKAGE = Path(gradegrad.__file__).resolve().parent


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("package,never", [("checks", "gradegrad.kinds"), ("registry.py", "gradegrad.checks"),
                                            ("registry.py", "gradegrad.kinds"), ("verdict.py", "gradegrad.checks"),
                                            ("verdict.py", "gradegrad.kinds")])
def test_imports_flow_one_way(package, never):
    root = PACKAGE / package
    for path in ([root] if root.is_file() else sorted(root.glob("*.py"))):
        bad = [n for n in imported(path) if n == never or n.startswith(never + ".")]
        assert not bad, f"{path.name} imports {bad}"


def test_kinds_modules_register_through_the_registry_not_their_package():
    for path in sorted((PACKAGE / "kinds").glob("*.py")):
        if path.name != "__init__.py":
            assert "gradegrad.kinds.kind_check" not in imported(path), path.name


def test_every_kind_reads_its_checks_from_the_one_table():
    function = registry.checks_for("function")
    assert list(function)[:3] == ["found", "forward", "backward"] and "wraps_function" not in function
    assert "wraps_function" in registry.checks_for("module") and "training" in registry.checks_for("chain")
    assert registry.checks_for("formula") == {}


def test_applies_follows_each_checks_own_rule():
    catalog = load_catalog()
    assert registry.applies("stability", catalog["sigmoid"]) and not registry.applies("stability", catalog["exp"])
    assert registry.applies("needs_input_grad", catalog["matvec"]) and not registry.applies("needs_input_grad", catalog["exp"])
    assert registry.applies("efficiency", catalog["softmax"]) and not registry.applies("efficiency", catalog["add"])
    assert registry.applies("wraps_function", catalog["leaky_relu_module"])
    assert not registry.applies("wraps_function", catalog["leaky_relu"])
    assert not registry.applies("forward", catalog["backprop_formula"])


def test_an_unknown_check_id_cannot_be_registered():
    with pytest.raises(ValueError, match="unknown check id"):
        registry.register("fast_enough")
