"""The papermill batch runner: order, skipping unchanged jobs, failures, resume, Dask, DAG checks.

The notebooks are tiny templates written here with nbformat. Each appends ``start <name>`` / ``end <name>`` to a
shared log, so a test sees which jobs executed and in which order. Kernel start-up dominates the run time, so
the tests execute about 16 notebooks in all.
"""
from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import nbformat
import pytest

from inverse_lib import batch
from inverse_lib.batch import Job

_real_library_digest = batch.library_digest

BODY = """\
import pathlib
with open(log, "a") as fh:
    fh.write(f"start {name}\\n")
if fail:
    raise RuntimeError(f"boom in {name}")
text = pathlib.Path(inp).read_text() if inp else ""
if out:
    pathlib.Path(out).write_text(f"{value}|{text}")
with open(log, "a") as fh:
    fh.write(f"end {name}\\n")
"""


@pytest.fixture(autouse=True)
def _pinned_library(monkeypatch):
    """Others edit inverse_lib while these tests run: pin its digest for the duration of a test."""
    digest = _real_library_digest()
    monkeypatch.setattr(batch, "library_digest", lambda root=batch.PACKAGE_ROOT: digest)


def write_template(path: Path, extra: str = "") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('name = "x"\nlog = ""\nout = ""\ninp = ""\nvalue = 0\ntag = ""\nfail = False')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(BODY + extra)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


class Book:
    """A scratch project: templates, a results folder, the executed notebooks and the manifest."""

    def __init__(self, root: Path):
        self.root = root
        self.log = root / "log.txt"
        self.res = root / "res"
        self.res.mkdir(parents=True)
        self.manifest = root / "book" / "_runs.json"
        self.template = write_template(root / "notebooks" / "step.ipynb")
        self.template_c = write_template(root / "notebooks" / "other.ipynb")

    def job(self, name: str, template: Path | None = None, deps: tuple[str, ...] = (), inp: str = "",
            **params) -> Job:
        p = {"name": name, "log": str(self.log), "out": str(self.res / f"{name}.txt"), **params}
        inputs = ()
        if inp:
            p["inp"] = str(self.res / f"{inp}.txt")
            inputs = (self.res / f"{inp}.txt",)
        return Job(name=name, template=template or self.template, output=self.root / "book" / f"{name}.ipynb",
                   parameters=p, deps=deps, inputs=inputs)

    def plan(self, a: dict | None = None) -> list[Job]:
        """``a -> b`` (b reads a's result) and an independent ``c`` with a template of its own."""
        return [self.job("a", **{"value": 1, **(a or {})}), self.job("b", deps=("a",), inp="a"),
                self.job("c", template=self.template_c)]

    def executed(self) -> list[str]:
        """The log's lines since the last call (``start x`` / ``end x``); the log is cleared."""
        if not self.log.exists():
            return []
        lines = self.log.read_text().split("\n")
        self.log.unlink()
        return [ln for ln in lines if ln]

    def started(self) -> set[str]:
        return {ln.split()[1] for ln in self.executed() if ln.startswith("start")}

    def records(self) -> dict:
        return json.loads(self.manifest.read_text())["jobs"]


@pytest.fixture
def book(tmp_path) -> Book:
    return Book(tmp_path)


def fake_profiles(monkeypatch, jobs: list[Job]) -> None:
    """Stand in for inverse_lib.profiles, whose plan() the CLI calls."""
    mod = types.ModuleType("inverse_lib.profiles")
    mod.plan = lambda name: list(jobs)
    mod.notebook_dir = lambda name: Path("book")
    monkeypatch.setitem(sys.modules, "inverse_lib.profiles", mod)


def test_order_skip_and_reruns_of_exactly_the_affected_jobs(book):
    s = batch.run(book.plan(), manifest=book.manifest, workers=2, progress=False, profile="t")
    log = book.executed()
    assert sorted(s.ran) == ["a", "b", "c"] and not s.failed and not s.skipped, s.table()
    assert log.index("end a") < log.index("start b"), f"b started before its dependency a finished: {log}"
    rec = book.records()
    assert {r["status"] for r in rec.values()} == {"ok"}
    assert rec["a"]["profile"] == "t" and rec["a"]["output"] == "a.ipynb" and rec["a"]["hardware"]
    assert rec["a"]["fingerprint"] == batch.fingerprint(book.plan()[0], batch.library_digest())
    assert (book.res / "b.txt").read_text() == "0|1|"

    s = batch.run(book.plan(), manifest=book.manifest, progress=False)
    assert s.ran == [] and s.skipped == dict.fromkeys("abc", batch.UP_TO_DATE), s.table()
    assert book.executed() == []

    # a's result changes, so b (which reads it) reruns; c is untouched.
    s = batch.run(book.plan(a={"value": 2}), manifest=book.manifest, progress=False)
    assert s.ran == ["a", "b"] and book.started() == {"a", "b"}, s.table()

    # A new parameter reruns a, but a writes the same result: b's inputs are unchanged, b is skipped.
    s = batch.run(book.plan(a={"value": 2, "tag": "new"}), manifest=book.manifest, progress=False)
    assert s.ran == ["a"] and s.skipped["b"] == batch.UP_TO_DATE and book.started() == {"a"}, s.table()

    write_template(book.template_c, extra="# edited\n")
    s = batch.run(book.plan(a={"value": 2, "tag": "new"}), manifest=book.manifest, progress=False)
    assert s.ran == ["c"] and book.started() == {"c"}, s.table()

    (book.res / "a.txt").write_text("edited by hand")
    s = batch.run(book.plan(a={"value": 2, "tag": "new"}), manifest=book.manifest, progress=False)
    assert s.ran == ["b"] and book.started() == {"b"}, s.table()

    # A missing output reruns its job; --list says so without running anything.
    (book.root / "book" / "c.ipynb").unlink()
    table = batch.describe(book.plan(a={"value": 2, "tag": "new"}), book.manifest)
    status = {ln.split()[0]: ln.split("  ")[-1].strip() for ln in table.splitlines()[1:-1]}
    assert status == {"a": batch.UP_TO_DATE, "b": batch.UP_TO_DATE, "c": "run"}, table
    assert book.executed() == []


def test_failure_is_reported_dependents_skipped_and_independent_jobs_finish(book, monkeypatch, capsys):
    jobs = [book.job("bad", fail=True), book.job("after", deps=("bad",), inp="bad"),
            book.job("good", template=book.template_c)]
    s = batch.run(jobs, manifest=book.manifest, progress=True)
    assert list(s.failed) == ["bad"] and "RuntimeError: boom in bad" in s.failed["bad"], s.table()
    assert s.skipped == {"after": f"{batch.DEPENDENCY_FAILED}: bad"} and s.ran == ["good"], s.table()
    assert batch.exit_code(s) == 1 and not s.ok
    assert "FAIL  bad" in capsys.readouterr().err

    rec = book.records()
    assert rec["bad"]["status"] == "failed" and "boom in bad" in rec["bad"]["error"]
    assert rec["good"]["status"] == "ok" and "after" not in rec
    nb = nbformat.read(book.root / "book" / "bad.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors and errors[0]["evalue"] == "boom in bad", "the failed notebook must be kept with its error"

    # The CLI: the failed job reruns (and fails again), the good one is up to date; exit status 1.
    fake_profiles(monkeypatch, jobs)
    book.executed()
    assert batch.main(["--profile", "t", "--manifest", str(book.manifest), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "1 failed" in out and book.started() == {"bad"}

    assert batch.main(["--profile", "t", "--manifest", str(book.manifest), "--list"]) == 0
    out = capsys.readouterr().out
    assert "bad" in out and "3 jobs, 2 to run" in out and book.executed() == []


def test_resume_after_an_interruption_skips_the_finished_jobs(book, monkeypatch):
    jobs = [book.job("a", value=1), book.job("b", deps=("a",), inp="a")]
    real = batch.execute

    def interrupted(job, *args, **kwargs):
        if job.name == "b":
            raise KeyboardInterrupt
        return real(job, *args, **kwargs)

    monkeypatch.setattr(batch, "execute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        batch.run(jobs, manifest=book.manifest, progress=False)
    assert set(book.records()) == {"a"} and book.records()["a"]["status"] == "ok"

    monkeypatch.setattr(batch, "execute", real)
    s = batch.run(jobs, manifest=book.manifest, progress=False)
    assert s.ran == ["b"] and s.skipped == {"a": batch.UP_TO_DATE}, s.table()
    assert book.started() == {"a", "b"} and book.executed() == []  # a from the first run, b from the second


def test_dask_local_cluster_runs_the_plan_in_order(book):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        s = batch.run(book.plan(), manifest=book.manifest, scheduler=cluster.scheduler_address, progress=False)
        log = book.executed()
        assert sorted(s.ran) == ["a", "b", "c"] and not s.failed, s.table()
        assert log.index("end a") < log.index("start b"), f"b started before its dependency a finished: {log}"
        assert {r["status"] for r in book.records().values()} == {"ok"}

        with distributed.Client(cluster) as client:
            s = batch.run(book.plan(), manifest=book.manifest, scheduler=client, progress=False)
        assert s.ran == [] and len(s.skipped) == 3 and book.executed() == [], s.table()


@pytest.mark.parametrize("deps, message", [
    ({"a": ("zz",)}, "unknown job"),
    ({"a": ("b",), "b": ("a",)}, "dependency cycle"),
    ({"a": ("a",)}, "dependency cycle: a -> a"),
])
def test_invalid_dags_raise_before_running_anything(book, deps, message):
    jobs = [book.job(n, deps=deps.get(n, ())) for n in "abc"]
    with pytest.raises(ValueError, match=message):
        batch.run(jobs, manifest=book.manifest, progress=False)
    assert not book.manifest.exists() and book.executed() == []


def test_validate_orders_by_dependencies_and_rejects_bad_jobs(book):
    jobs = [book.job("c", deps=("b",)), book.job("b", deps=("a",)), book.job("a"), book.job("d")]
    assert [j.name for j in batch.validate(jobs)] == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="dependency cycle: a -> c -> b -> a"):
        batch.validate([book.job("a", deps=("c",)), *jobs[:2]])
    with pytest.raises(ValueError, match="duplicate"):
        batch.validate([book.job("a"), book.job("a")])
    with pytest.raises(ValueError, match="plain JSON"):
        Job("x", book.template, book.root / "x.ipynb", parameters={"p": Path("x")})
    with pytest.raises(ValueError, match="unknown"):
        batch.select(jobs, ["nope"])
    assert [(j.name, j.deps) for j in batch.select(jobs, ["c", "b"])] == [("c", ("b",)), ("b", ())]


def test_fingerprint_depends_on_contents_only(book, tmp_path):
    job = book.job("b", inp="a")
    (book.res / "a.txt").write_text("1")
    fp = batch.fingerprint(job, "lib")
    assert batch.fingerprint(job, "lib") == fp
    # The same contents elsewhere (another clone) give the same fingerprint.
    other = tmp_path / "clone"
    shutil.copytree(book.root / "notebooks", other / "notebooks")
    shutil.copytree(book.res, other / "res")
    moved = Job("b", other / "notebooks" / "step.ipynb", other / "book" / "b.ipynb", job.parameters,
                inputs=(other / "res" / "a.txt",))
    assert batch.fingerprint(moved, "lib") == fp
    assert batch.fingerprint(job, "lib2") != fp
    assert batch.fingerprint(book.job("b", inp="a", value=3), "lib") != fp
    (book.res / "a.txt").write_text("2")
    assert batch.fingerprint(job, "lib") != fp
    (book.res / "a.txt").unlink()
    assert batch.fingerprint(job, "lib") != fp


def test_library_digest_sees_py_edits_but_not_location_or_caches(tmp_path):
    for where in ("one", "two"):
        shutil.copytree(batch.PACKAGE_ROOT, tmp_path / where / "inverse_lib",
                        ignore=shutil.ignore_patterns("__pycache__"))
    d1 = _real_library_digest(tmp_path / "one" / "inverse_lib")
    assert _real_library_digest(tmp_path / "two" / "inverse_lib") == d1
    cache = tmp_path / "two" / "inverse_lib" / "__pycache__"
    cache.mkdir()
    (cache / "junk.py").write_text("x = 1")
    assert _real_library_digest(tmp_path / "two" / "inverse_lib") == d1
    with open(tmp_path / "two" / "inverse_lib" / "batch.py", "a") as fh:
        fh.write("\n# a comment is not a change\n")
    assert _real_library_digest(tmp_path / "two" / "inverse_lib") == d1
    with open(tmp_path / "two" / "inverse_lib" / "batch.py", "a") as fh:
        fh.write("\nCHANGED = True\n")
    assert _real_library_digest(tmp_path / "two" / "inverse_lib") != d1


def test_manifest_is_written_atomically_and_a_corrupt_one_is_refused(tmp_path):
    path = tmp_path / "book" / "_runs.json"
    batch.write_manifest(path, {"a": {"status": "ok"}})
    assert batch.load_manifest(path) == {"a": {"status": "ok"}}
    assert json.loads(path.read_text())["format"] == batch.MANIFEST_FORMAT
    assert [p.name for p in path.parent.iterdir()] == ["_runs.json"], "no temporary file may be left behind"
    assert batch.load_manifest(tmp_path / "missing.json") == {}
    path.write_text("<<<<<<< HEAD\n")
    with pytest.raises(ValueError, match="not a readable run manifest"):
        batch.load_manifest(path)


def test_library_digest_ignores_docstrings_and_comments(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text('"""Doc."""\nimport os\n\n\ndef f(x):\n    """Say what."""\n    return x + 1  # why\n')
    before = _real_library_digest(pkg)
    (pkg / "m.py").write_text('"""Other doc."""\nimport os\n\ndef f(x):\n    """Else."""\n    # a comment\n    return x + 1\n')
    assert _real_library_digest(pkg) == before
    (pkg / "m.py").write_text('"""Doc."""\nimport os\n\n\ndef f(x):\n    return x + 2\n')
    assert _real_library_digest(pkg) != before
