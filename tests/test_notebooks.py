"""The notebook templates stay thin: a parameters cell with plain values, then library calls."""
import ast
from pathlib import Path

import nbformat
import pytest

from inverse_lib import profiles

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_templates_for_every_job():
    names = {p.stem for p in TEMPLATES}
    for job in profiles.plan("quick"):
        assert job.template.stem in names, job.name
    assert {"task", "fig3", "fig4", "table2", "table3", "meta_material"} <= names


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_template_is_thin(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    for node in ast.parse(tagged[0].source).body:
        assert isinstance(node, ast.Assign), f"the parameters cell holds assignments only: {ast.unparse(node)}"
        try:
            ast.literal_eval(node.value)   # numbers, strings, lists, dicts: values papermill can inject
        except ValueError:
            pytest.fail(f"{path.name}: the parameters cell holds plain values only: {ast.unparse(node)}")
    for cell in code:
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)) \
                or isinstance(node, ast.Lambda), f"{path.name}: logic belongs in inverse_lib, not a notebook"
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)), path.name


@pytest.mark.parametrize("job", profiles.plan("quick"), ids=lambda j: j.name)
def test_plan_parameters_exist_in_the_template(job):
    nb = nbformat.read(job.template, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    declared = {t.id for node in ast.parse(cell.source).body for t in node.targets}
    assert set(job.parameters) <= declared, f"{job.name}: {set(job.parameters) - declared} not in the parameters cell"


def test_plan_orders_tasks_before_figures():
    jobs = profiles.plan("smoke")
    seen = set()
    for j in jobs:
        assert set(j.deps) <= seen, f"{j.name} listed before its deps"
        seen.add(j.name)
    assert all(str(j.output).startswith(str(ROOT / "tests" / "smoke")) for j in jobs)
    assert all(str(j.output).startswith(str(ROOT / "book")) for j in profiles.plan("quick"))


def test_unknown_profile():
    with pytest.raises(ValueError, match="known profiles: paper, quick, smoke"):
        profiles.get("fast")
