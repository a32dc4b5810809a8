"""The layers hold: the CLI and the dashboard call only the use cases (backend/services/) and rendering
helpers; from the layers below they may name types and constants, and the pure helpers listed here."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRONTS = [ROOT / "backend" / "cli.py", *sorted((ROOT / "dashboard").rglob("*.py"))]
USE_CASES = ("backend.services", "backend.context", "backend.errors")
RENDERING = ("backend.inspection.interactive_charts", "backend.inspection.figures", "backend.inspection.snippets",
             "backend.traffic.interactive_charts", "backend.timefmt", "backend.shown", "backend.words")
# Functions of values (parsing what a user typed, formatting, computing a view of a result, the names in a
# registry's table): no I/O, no state.
PURE_HELPERS = {"parse_tags", "parse_signature", "parse_image_shape", "parse_value_range", "parse_autoscale",
                "validate_name", "format_range", "class_name", "predictions_csv", "kinds_for", "kinds_of", "row_table",
                "cell_style",
                "calibration_of",
                "between", "points", "default_tag", "secret_name", "apply_command", "build_command", "keys_command",
                "zip_export", "missing_first_run_samples", "current_library_versions", "formats_help",
                "runtime_choices", "runtime_names"}


def imported_names(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every `from backend... import name` in the file, relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # only backend/cli.py imports relatively
                module = "backend" + ("." + module if module else "")
            if module.startswith("backend"):
                found.extend((module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, "*") for alias in node.names if alias.name.startswith("backend"))
    return found


def allowed(module: str, name: str) -> bool:
    if module.startswith(USE_CASES) or module.startswith(RENDERING):
        return True
    return name[:1].isupper() or name.startswith("__") or name in PURE_HELPERS  # a type, a CONSTANT, __version__


def test_the_cli_and_the_pages_call_only_the_use_cases_and_rendering_helpers():
    wrong = [f"{path.relative_to(ROOT)}: {module}.{name}" for path in FRONTS
             for module, name in imported_names(path) if not allowed(module, name)]
    assert wrong == [], "call these through backend/services/ instead:\n" + "\n".join(wrong)


def test_the_check_sees_a_call_past_the_use_cases(tmp_path):
    page = tmp_path / "page.py"
    page.write_text("from backend.inspection.evaluation import sample, Evaluation\nfrom backend.services.scoring "
                    "import send_random\nfrom backend.timefmt import age\n")
    assert [(m, n) for m, n in imported_names(page) if not allowed(m, n)] == [
        ("backend.inspection.evaluation", "sample")]


def is_the_context(node: ast.expr) -> bool:
    """`deck`, `_deck` or `get_deck()`: how the fronts name the home's context."""
    if isinstance(node, ast.Call):
        node = node.func
    return isinstance(node, ast.Name) and node.id in ("deck", "_deck", "get_deck")


def context_service_calls(path: Path) -> list[tuple[int, str]]:
    """Every `deck.<service>.<method>(...)` in the file: a call past the use cases to the context's own services
    (its registry, deployments, kept results, client); reading a setting (`deck.settings.runtime`) is no call."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Attribute) and is_the_context(node.func.value.value):
            found.append((node.lineno, f"deck.{node.func.value.attr}.{node.func.attr}()"))
    return found


def test_the_cli_and_the_pages_reach_the_context_s_services_only_through_the_use_cases():
    wrong = [f"{path.relative_to(ROOT)}:{line}: {call}" for path in FRONTS for line, call in context_service_calls(path)]
    assert wrong == [], "call these through backend/services/ instead:\n" + "\n".join(wrong)


def test_the_check_sees_a_call_on_the_context_s_services(tmp_path):
    page = tmp_path / "page.py"
    page.write_text("deck = get_deck()\nmodels = deck.registry.list()\nruntime = deck.settings.runtime\n"
                    "kept.samples(deck, d, 'mnist')\nget_deck().deployments.explain(d, e)\n")
    assert context_service_calls(page) == [(2, "deck.registry.list()"), (5, "deck.deployments.explain()")]
