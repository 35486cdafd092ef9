"""Papermill batch runner: execute the book's parameterised notebooks in dependency order, only when changed.

A *plan* is a list of :class:`Job`: a template notebook from ``notebooks/``, the executed copy it becomes in
``book/``, its parameters, the jobs it waits for and the files it reads. :func:`run` executes a plan with
papermill, up to ``workers`` notebooks at a time locally or on a Dask cluster, and keeps a *manifest*
(``book/_runs.json``, committed with the executed notebooks) of what ran, on what, for how long, and with which
*fingerprint*. A job whose fingerprint equals the one of its last successful run, and whose output still
exists, is skipped; so rerunning a plan after an interruption, a failure or an edit executes only what is
missing or affected.

The fingerprint (:func:`fingerprint`) hashes contents only: the template, the parameters, every ``.py`` file
of ``inverse_lib`` and every input file. No paths or times enter it, so a fresh clone computes the fingerprints
the committing machine recorded, and sees the committed notebooks as up to date.

Profiles (which notebooks, with which parameters: ``smoke``, ``quick``, ``paper``) live in
``inverse_lib.profiles``, whose ``plan(name)`` returns the jobs. From the repository root::

    python -m inverse_lib.batch --profile quick --jobs 2      # run what changed
    python -m inverse_lib.batch --profile paper --list        # show the plan and what would run
    python -m inverse_lib.batch --profile smoke --force       # rerun everything
    python -m inverse_lib.batch --profile paper --scheduler tcp://head:8786   # on a Dask cluster
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import queue
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

from inverse_lib._io import atomic_write

PACKAGE_ROOT = Path(__file__).resolve().parent
DEFAULT_MANIFEST = Path("book") / "_runs.json"
MANIFEST_FORMAT = 1

# Values of Summary.skipped: why a job was not executed.
UP_TO_DATE = "up to date"
DEPENDENCY_FAILED = "dependency failed"


@dataclass(frozen=True)
class Job:
    """One notebook execution of a plan.

    Attributes:
        name: unique name of the job within its plan (e.g. ``"sine_wave/inn"``).
        template: the parameterised notebook (in ``notebooks/``) to execute.
        output: where papermill writes the executed notebook (in ``book/``). Kept also when execution fails,
            with the error in it, for inspection.
        parameters: plain JSON values injected by papermill after the template's ``parameters`` cell.
        deps: names of the jobs that must have finished successfully before this one starts.
        inputs: files (or folders) the notebook reads, e.g. results written by its deps. Their contents are
            part of the fingerprint, so a dep that rewrites them with new values reruns this job; a missing
            input counts as empty.
        cwd: working directory of the kernel; ``None`` means the output's folder.
    """

    name: str
    template: Path
    output: Path
    parameters: dict = field(default_factory=dict)
    deps: tuple[str, ...] = ()
    inputs: tuple[Path, ...] = ()
    cwd: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a job needs a non-empty string name; got {self.name!r}")
        set_ = object.__setattr__  # frozen: normalise the fields once, here
        set_(self, "template", Path(self.template))
        set_(self, "output", Path(self.output))
        set_(self, "deps", (self.deps,) if isinstance(self.deps, str) else tuple(self.deps))
        set_(self, "inputs", (Path(self.inputs),) if isinstance(self.inputs, (str, Path))
             else tuple(Path(p) for p in self.inputs))
        set_(self, "cwd", None if self.cwd is None else Path(self.cwd))
        if not isinstance(self.parameters, dict):
            raise ValueError(f"job {self.name!r}: parameters must be a dict; got {type(self.parameters).__name__}")
        try:
            json.dumps(self.parameters, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"job {self.name!r}: parameters must be plain JSON values ({e})") from None

    @property
    def workdir(self) -> Path:
        """The kernel's working directory: ``cwd``, or the output notebook's folder."""
        return self.cwd if self.cwd is not None else self.output.parent


@dataclass
class Summary:
    """What :func:`run` did.

    Attributes:
        ran: jobs executed successfully, in the order they finished.
        skipped: jobs not executed, with the reason: ``"up to date"`` or ``"dependency failed: <dep>"``.
        failed: jobs whose notebook raised, with the error message.
        seconds: wall time of every executed job (successful or failed).
        total_seconds: wall time of the whole run.
    """

    ran: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no job failed (jobs skipped because a dependency failed imply a failure)."""
        return not self.failed

    def table(self) -> str:
        """A plain-text table: one row per job (status, seconds, note), then the totals."""
        rows = [(n, "ok", f"{self.seconds.get(n, 0.0):.1f}", "") for n in self.ran]
        rows += [(n, "FAILED", f"{self.seconds.get(n, 0.0):.1f}", _one_line(e)) for n, e in self.failed.items()]
        rows += [(n, "skipped", "", why) for n, why in self.skipped.items()]
        head = ("job", "status", "seconds", "note")
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(3)]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(r[:3], widths)) + ("  " + r[3] if r[3] else "")
                 for r in [head, *rows]]
        lines.insert(1, "-" * max(len(line) for line in lines))
        lines.append(f"{len(self.ran)} ran, {len(self.failed)} failed, {len(self.skipped)} skipped "
                     f"in {self.total_seconds:.1f} s")
        return "\n".join(lines)


def exit_code(summary: Summary) -> int:
    """The CLI's exit status: 1 if any job failed, 0 otherwise."""
    return 0 if summary.ok else 1


# --------------------------------------------------------------------------------------------- fingerprints

def _update_file(h: "hashlib._Hash", label: str, path: Path) -> None:
    h.update(f"{label}\0{path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def _update_bytes(h: "hashlib._Hash", label: str, data: bytes) -> None:
    h.update(f"{label}\0{len(data)}\0".encode())
    h.update(data)


def code_only(source: bytes) -> bytes:
    """The code of a Python file without its comments, docstrings and layout: the dump of its syntax tree with
    every docstring removed. Editing documentation therefore does not rerun the book; a file that does not
    parse is hashed as it is."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree).encode()


def library_digest(root: Path | str = PACKAGE_ROOT) -> str:
    """sha256 over the code of every ``.py`` file of the package at ``root`` (relative path and
    :func:`code_only` content, sorted by path).

    ``__pycache__`` and hidden folders are ignored; the absolute location of ``root`` does not matter; comments
    and docstrings do not count.
    """
    root = Path(root)
    h = hashlib.sha256()
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py")
                   if not any(part == "__pycache__" or part.startswith(".")
                              for part in p.relative_to(root).parts[:-1]))
    for rel in files:
        _update_bytes(h, rel, code_only((root / rel).read_bytes()))
    return h.hexdigest()


def fingerprint(job: Job, library: str | None = None) -> str:
    """sha256 of everything that determines a job's result.

    Hashes the template's raw bytes, the parameters as JSON with sorted keys, ``library`` (the
    :func:`library_digest` of ``inverse_lib``, computed when not given) and the content of each input (a folder's
    files by relative path; a missing input hashes as such). Only contents enter, never paths or times, so the
    value is the same on any clone of the repository.
    """
    h = hashlib.sha256()
    _update_file(h, "template", job.template)
    _update_bytes(h, "parameters", json.dumps(job.parameters, sort_keys=True, separators=(",", ":")).encode())
    _update_bytes(h, "library", (library if library is not None else library_digest()).encode())
    for i, path in enumerate(job.inputs):
        if path.is_file():
            _update_file(h, f"input{i}", path)
        elif path.is_dir():
            for p in sorted(q for q in path.rglob("*") if q.is_file()):
                _update_file(h, f"input{i}/{p.relative_to(path).as_posix()}", p)
        else:
            _update_bytes(h, f"input{i}:missing", b"")
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------ the DAG

def validate(jobs: Sequence[Job]) -> list[Job]:
    """Check a plan and return its jobs in a dependency order (stable: plan order where free).

    Raises:
        ValueError: on a duplicate name, a dependency on an unknown job, or a dependency cycle (named).
    """
    by_name: dict[str, Job] = {}
    for job in jobs:
        if not isinstance(job, Job):
            raise ValueError(f"a plan holds Job objects; got {type(job).__name__}")
        if job.name in by_name:
            raise ValueError(f"duplicate job name {job.name!r} in the plan")
        by_name[job.name] = job
    for job in jobs:
        unknown = [d for d in job.deps if d not in by_name]
        if unknown:
            raise ValueError(f"job {job.name!r} depends on unknown job(s) {unknown}; "
                             f"known: {sorted(by_name)}")
    order: list[Job] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: placed

    def visit(job: Job, path: list[str]) -> None:
        if state.get(job.name) == 2:
            return
        if state.get(job.name) == 1:
            cycle = path[path.index(job.name):] + [job.name]
            raise ValueError("dependency cycle: " + " -> ".join(cycle))
        state[job.name] = 1
        for d in job.deps:
            visit(by_name[d], path + [job.name])
        state[job.name] = 2
        order.append(job)

    for job in jobs:
        visit(job, [])
    return order


def select(jobs: Sequence[Job], only: Iterable[str]) -> list[Job]:
    """The jobs named in ``only``, in plan order. Their deps outside the selection are dropped: taken as done.

    Raises:
        ValueError: if a name in ``only`` is not in the plan.
    """
    only = list(only)
    names = {j.name for j in jobs}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise ValueError(f"--only names unknown job(s) {unknown}; the plan has {sorted(names)}")
    keep = set(only)
    return [replace(j, deps=tuple(d for d in j.deps if d in keep)) for j in jobs if j.name in keep]


# ------------------------------------------------------------------------------------------- the manifest

def load_manifest(path: Path | str) -> dict[str, dict]:
    """The per-job records of the manifest at ``path`` (``{}`` if there is none).

    Raises:
        ValueError: if the file exists but is not a manifest (e.g. a merge conflict left in it).
    """
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        jobs = data["jobs"]
        if not isinstance(jobs, dict):
            raise TypeError("'jobs' is not an object")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a readable run manifest ({e}); fix or delete it") from None
    return jobs


def write_manifest(path: Path | str, records: dict[str, dict]) -> None:
    """Write the manifest atomically: a temporary file beside ``path``, then ``os.replace``.

    The format is ``{"format": 1, "jobs": {name: record}}`` with sorted keys, so diffs in git stay small.
    """
    def write(fh):
        json.dump({"format": MANIFEST_FORMAT, "jobs": records}, fh, indent=1, sort_keys=True)
        fh.write("\n")

    atomic_write(path, write, binary=False)


def is_up_to_date(job: Job, fp: str, records: dict[str, dict]) -> bool:
    """True when the last recorded run of ``job`` succeeded with fingerprint ``fp`` and its output exists."""
    rec = records.get(job.name) or {}
    return rec.get("status") == "ok" and rec.get("fingerprint") == fp and job.output.exists()


# -------------------------------------------------------------------------------------------- execution

@lru_cache(maxsize=None)
def hardware() -> str:
    """A short description of this machine: CPU model and core count, and the CUDA devices torch sees."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    except OSError:
        pass
    cpu = cpu or platform.processor() or platform.machine() or "unknown CPU"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parts = [f"{cpu} x{cores}"]
    try:
        import torch

        if torch.cuda.is_available():
            parts += [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # no torch or a broken driver: the CPU is still worth recording
        pass
    return "; ".join(parts)


class _PeakMemory:
    """Samples the resident memory of a kernel process (and its children) in a background thread."""

    def __init__(self, interval: float = 0.1):
        self.pid: int | None = None
        self.peak: int = 0
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def manager_class(self) -> type | None:
        """A kernel manager class that reports its kernel's pid to this sampler (None if unavailable)."""
        try:
            from jupyter_client.manager import AsyncKernelManager
        except ImportError:
            return None
        sampler = self

        class _TrackedKernelManager(AsyncKernelManager):
            async def _async_post_start_kernel(self, **kw: Any) -> None:
                await super()._async_post_start_kernel(**kw)
                sampler.pid = getattr(self.provisioner, "pid", None)

        return _TrackedKernelManager

    def _sample(self) -> None:
        try:
            import psutil
        except ImportError:
            return
        proc = None
        while not self._stop.is_set():
            try:
                if proc is None and self.pid is not None:
                    proc = psutil.Process(self.pid)
                if proc is not None:
                    rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
                    self.peak = max(self.peak, rss)
            except (psutil.Error, OSError):
                pass  # the kernel is starting or has just exited
            self._stop.wait(self._interval)

    def __enter__(self) -> "_PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def peak_mb(self) -> float | None:
        return round(self.peak / 2**20, 1) if self.peak else None


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def execute(job: Job, kernel_name: str | None = None, log_output: bool = False) -> dict:
    """Execute one job's notebook with papermill, here (a local thread or a Dask worker).

    The executed notebook is written to ``job.output`` also when a cell raises (papermill marks the failing
    cell), so it can be inspected.

    Returns:
        ``{"status": "ok" | "failed", "error": str | None, "seconds", "finished" (ISO time, UTC),
        "hardware", "peak_memory_mb" (the kernel's peak resident memory, None if it was not measured)}``.
    """
    import papermill as pm

    job.output.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    error = None
    with _PeakMemory() as mem:
        extra = {}
        km = mem.manager_class()
        if km is not None:
            extra["kernel_manager_class"] = km
        try:
            pm.execute_notebook(str(job.template), str(job.output), parameters=dict(job.parameters),
                                kernel_name=kernel_name, cwd=str(job.workdir), log_output=log_output,
                                progress_bar=False, **extra)
        except pm.PapermillExecutionError as e:
            error = f"In [{e.exec_count}]: {e.ename}: {e.evalue}"
        except Exception as e:  # a missing kernel, an unreadable template...: the job failed, the batch goes on
            error = f"{type(e).__name__}: {e}"
    return {"status": "ok" if error is None else "failed", "error": error,
            "seconds": round(time.perf_counter() - t0, 3),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "hardware": hardware(), "peak_memory_mb": mem.peak_mb}


class _LocalBackend:
    """Runs each job in a daemon thread (papermill starts a kernel process per notebook)."""

    def __init__(self, workers: int, done: queue.Queue):
        self.capacity = max(1, int(workers))
        self.done = done

    def submit(self, job: Job, kernel_name: str | None, log_output: bool) -> None:
        def target() -> None:
            try:
                self.done.put((job.name, execute(job, kernel_name, log_output)))
            except BaseException as e:  # handed to the coordinator, which decides (an interrupt re-raises)
                self.done.put((job.name, e))

        # Daemon threads: on Ctrl-C the coordinator raises at once; orphaned kernels exit with their parent.
        threading.Thread(target=target, name=f"batch-{job.name}", daemon=True).start()

    def close(self) -> None:
        pass


class _DaskBackend:
    """Submits each job, once its deps have finished, as a task to a Dask distributed cluster."""

    def __init__(self, scheduler: Any, done: queue.Queue):
        from distributed import Client

        self.done = done
        self.capacity = 1 << 30  # the cluster's own slots limit concurrency
        if isinstance(scheduler, Client):
            self.client, self._own = scheduler, False
        else:
            address = getattr(scheduler, "scheduler_address", scheduler)  # a LocalCluster or an address
            self.client, self._own = Client(address), True
        self.futures: dict[str, Any] = {}

    def submit(self, job: Job, kernel_name: str | None, log_output: bool) -> None:
        # Workers run elsewhere: give them absolute paths (on a file system they share with this machine).
        job = replace(job, template=job.template.resolve(), output=job.output.resolve(),
                      inputs=tuple(p.resolve() for p in job.inputs), cwd=job.workdir.resolve())
        fut = self.client.submit(execute, job, kernel_name, log_output, pure=False,
                                 key=f"notebook-{job.name}-{os.urandom(4).hex()}")
        self.futures[job.name] = fut

        def callback(f: Any) -> None:
            try:
                self.done.put((job.name, f.result()))
            except BaseException as e:  # a lost worker or a cancelled task: the job failed
                self.done.put((job.name, e if isinstance(e, Exception) else RuntimeError(repr(e))))

        fut.add_done_callback(callback)

    def close(self) -> None:
        for fut in self.futures.values():
            if not fut.done():
                fut.cancel()
        if self._own:
            self.client.close()


class _Progress:
    """A tqdm bar over the jobs with one line per finished job on stderr; silent when disabled."""

    def __init__(self, total: int, enabled: bool):
        self.enabled = enabled
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, unit="nb", file=sys.stderr, desc="notebooks")
            except ImportError:
                pass

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def step(self, running: Iterable[str]) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(", ".join(running)[:60], refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(jobs: Sequence[Job], *, manifest: Path | str = DEFAULT_MANIFEST, changed_only: bool = True,
        force: bool = False, workers: int = 1, scheduler: Any = None, progress: bool = True,
        kernel_name: str | None = None, log_output: bool = False, profile: str | None = None) -> Summary:
    """Execute a plan in dependency order, skipping what is up to date, and record every run in the manifest.

    Args:
        jobs: the plan; validated first (see :func:`validate`).
        manifest: the JSON manifest to read the last runs from and to update, atomically, after each job.
        changed_only: skip a job whose fingerprint (computed once its deps have finished, since they may
            rewrite its inputs) equals that of its last successful run and whose output exists.
            ``changed_only=False`` or ``force=True`` execute every job.
        force: execute every job.
        workers: notebooks executed at a time locally (ignored with a scheduler: the cluster decides).
        scheduler: a Dask distributed scheduler address (``"tcp://..."``), a ``LocalCluster`` or a ``Client``:
            jobs then run as Dask tasks, each submitted once its deps have finished; this process still keeps
            the manifest. The workers need ``inverse_lib``, the kernel, and the repository on a shared file
            system (paths are sent as absolute paths).
        progress: show a progress bar and one line per job on stderr.
        kernel_name: Jupyter kernel to execute with; ``None`` uses each template's kernelspec.
        log_output: let papermill log the notebooks' outputs.
        profile: name of the profile the plan came from, recorded in the manifest.

    Returns:
        A :class:`Summary`. A failed job does not stop the others; the jobs depending on it are skipped.

    Raises:
        ValueError: on an invalid plan or an unreadable manifest.
        KeyboardInterrupt: passed on after the finished jobs have been recorded.
    """
    t_start = time.perf_counter()
    order = validate(jobs)
    manifest = Path(manifest)
    records = load_manifest(manifest)
    library = library_digest()  # once per run, so that all jobs of a run agree on the library
    rerun_all = force or not changed_only
    done: queue.Queue = queue.Queue()
    backend = _DaskBackend(scheduler, done) if scheduler is not None else _LocalBackend(workers, done)
    summary = Summary()
    state: dict[str, str] = {}  # name -> "ok" | "up to date" | "failed" | "dependency failed"
    pending = list(order)
    running: dict[str, str] = {}  # name -> fingerprint
    bar = _Progress(len(order), progress)

    def settle(name: str, status: str) -> None:
        state[name] = status
        bar.step(running)

    try:
        while pending or running:
            changed = True
            while changed:  # start or skip everything whose deps are settled
                changed = False
                for job in list(pending):
                    if any(d not in state for d in job.deps):
                        continue
                    bad = [d for d in job.deps if state[d] in ("failed", DEPENDENCY_FAILED)]
                    if bad:
                        pending.remove(job)
                        summary.skipped[job.name] = f"{DEPENDENCY_FAILED}: {', '.join(bad)}"
                        bar.line(f"skip  {job.name} ({DEPENDENCY_FAILED}: {', '.join(bad)})")
                        settle(job.name, DEPENDENCY_FAILED)
                        changed = True
                        continue
                    fp = fingerprint(job, library)
                    if not rerun_all and is_up_to_date(job, fp, records):
                        pending.remove(job)
                        summary.skipped[job.name] = UP_TO_DATE
                        bar.line(f"skip  {job.name} ({UP_TO_DATE})")
                        settle(job.name, UP_TO_DATE)
                        changed = True
                        continue
                    if len(running) < backend.capacity:
                        pending.remove(job)
                        running[job.name] = fp
                        bar.line(f"start {job.name}")
                        backend.submit(job, kernel_name, log_output)
            if not running:
                break  # cannot happen with a valid DAG; guards against waiting forever
            try:
                name, result = done.get(timeout=0.5)
            except queue.Empty:
                continue
            fp = running.pop(name)
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # an interrupt inside a job stops the batch like Ctrl-C would
                result = {"status": "failed", "error": f"{type(result).__name__}: {result}", "seconds": None,
                          "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          "hardware": None, "peak_memory_mb": None}
            job = next(j for j in order if j.name == name)
            records[name] = _record(job, fp, result, profile, manifest)
            write_manifest(manifest, records)
            if result["seconds"] is not None:
                summary.seconds[name] = result["seconds"]
            secs = f"{result['seconds']:.1f} s" if result["seconds"] is not None else ""
            if result["status"] == "ok":
                summary.ran.append(name)
                bar.line(f"ok    {name} {secs}")
            else:
                summary.failed[name] = result["error"]
                bar.line(f"FAIL  {name} {secs}: {_one_line(result['error'], 200)}")
            settle(name, result["status"])
    finally:
        backend.close()
        bar.close()
    summary.total_seconds = round(time.perf_counter() - t_start, 3)
    return summary


def _record(job: Job, fp: str, result: dict, profile: str | None, manifest: Path) -> dict:
    """The manifest record of one finished job (paths relative to the manifest's folder)."""
    try:
        output = os.path.relpath(job.output.resolve(), manifest.resolve().parent)
    except ValueError:  # another drive on Windows
        output = str(job.output)
    return {"fingerprint": fp, "status": result["status"], "error": result["error"],
            "seconds": result["seconds"], "finished": result["finished"], "profile": profile,
            "hardware": result["hardware"], "peak_memory_mb": result["peak_memory_mb"],
            "output": Path(output).as_posix(), "parameters": job.parameters}


def describe(jobs: Sequence[Job], manifest: Path | str = DEFAULT_MANIFEST, force: bool = False) -> str:
    """A table of the plan: name, deps, and whether each job would run now.

    ``run`` means changed or never run successfully; ``up to date``; ``after deps`` means up to date now, but a
    dep will run and may change its inputs.
    """
    order = validate(jobs)
    records = load_manifest(manifest)
    library = library_digest()
    will: dict[str, str] = {}
    for job in order:
        if force or not is_up_to_date(job, fingerprint(job, library), records):
            will[job.name] = "run"
        elif any(will[d] != UP_TO_DATE for d in job.deps):
            will[job.name] = "after deps"
        else:
            will[job.name] = UP_TO_DATE
    rows = [("job", "deps", "status")] + [(j.name, ", ".join(j.deps) or "-", will[j.name]) for j in order]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:2], widths)) + "  " + r[2] for r in rows]
    n_run = sum(v == "run" for v in will.values())
    lines.append(f"{len(order)} jobs, {n_run} to run")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------- CLI

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m inverse_lib.batch",
                                description="Execute the book's notebooks for a profile with papermill.")
    p.add_argument("--profile", default="quick", help="profile of inverse_lib.profiles (default: quick)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--changed-only", dest="force", action="store_false",
                      help="run only jobs whose fingerprint changed (the default)")
    mode.add_argument("--force", dest="force", action="store_true", help="rerun every job")
    p.add_argument("--jobs", "-j", type=int, default=1, help="notebooks executed at a time locally (default 1)")
    p.add_argument("--scheduler", default=None, help="Dask distributed scheduler address, e.g. tcp://host:8786")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                   help="run only these jobs (their other deps are taken as done)")
    p.add_argument("--manifest", type=Path, default=None,
                   help="run manifest (default: _runs.json beside the profile's executed notebooks)")
    p.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the templates' kernelspec)")
    p.add_argument("--log-output", action="store_true", help="echo the notebooks' outputs")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--list", action="store_true", help="print the plan and what would run, run nothing")
    p.set_defaults(force=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m inverse_lib.batch``; returns the exit status (1 if a job failed)."""
    args = _parser().parse_args(argv)
    if args.jobs < 1:
        _parser().error("--jobs must be at least 1")
    from inverse_lib.profiles import notebook_dir, plan  # here, so that this module imports without them

    jobs = plan(args.profile)
    if args.manifest is None:
        args.manifest = PACKAGE_ROOT.parent / notebook_dir(args.profile) / "_runs.json"
    if args.only:
        jobs = select(jobs, args.only)
    if args.list:
        print(describe(jobs, args.manifest, force=args.force))
        return 0
    try:
        summary = run(jobs, manifest=args.manifest, force=args.force, workers=args.jobs,
                      scheduler=args.scheduler, progress=not args.quiet, kernel_name=args.kernel,
                      log_output=args.log_output, profile=args.profile)
    except KeyboardInterrupt:
        print(f"interrupted: the jobs that finished are recorded in {args.manifest}; "
              "run again to resume", file=sys.stderr)
        return 130
    print(summary.table())
    return exit_code(summary)


__all__ = ["Job", "Summary", "run", "fingerprint", "library_digest", "validate", "select", "load_manifest",
           "write_manifest", "is_up_to_date", "execute", "hardware", "describe", "exit_code", "main"]

if __name__ == "__main__":
    # Run the imported module's main, so that the plan's Job objects (made by inverse_lib.profiles from
    # inverse_lib.batch) are instances of the same class as the runner's.
    from inverse_lib.batch import main as _main

    sys.exit(_main())
