"""Several ``fer-edge train`` runs at once on one GPU, each sized to finish inside a wall-clock budget.

A lent GPU comes for minutes, not hours, and one small model leaves most of it idle. This driver runs the
jobs of a JSON file side by side: first a short probe of every job together (``--epochs 2 --max-steps N``;
the second epoch's speed, measured under the others' load), then each job with the largest whole number of epochs
that fits the remaining budget, so every cosine schedule ends annealed (a job may also fix its "epochs":
no probe; past the budget it is stopped, keeping its best.pt). The epochs are written into each
job's real ``fer-edge train`` command (kept in its model card and in ``summary.json``), so any run can be
repeated as is.

    python -m fer_edge.train.many jobs.json --out runs/gpu --budget 420

jobs.json::

    {"common": ["--data", "fer2013", "--batch-size", "256"],
     "jobs": [{"name": "mnv2-96", "args": ["--arch", "mobilenetv2_100", "--input-size", "96"],
               "max_epochs": 200}]}
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_edge.runtime.errors import FerEdgeError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class Job:
    name: str
    args: list[str]
    max_epochs: int | None = None
    min_epochs: int = 1
    epochs: int | None = None  # fixed: no probe for this job
    proc: subprocess.Popen | None = field(default=None, repr=False)
    log: Any = field(default=None, repr=False)


def read_jobs(path: str | os.PathLike) -> tuple[list[str], list[Job]]:
    """``(common args, jobs)`` from a jobs file; FerEdgeError for anything malformed."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise FerEdgeError(f"cannot read the jobs file {path} ({e})")
    common = doc.get("common", [])
    jobs = doc.get("jobs")
    if not isinstance(common, list) or not isinstance(jobs, list) or not jobs:
        raise FerEdgeError(f"{path}: expected {{'common': [...], 'jobs': [{{'name': ..., 'args': [...]}}, ...]}}")
    out, names = [], set()
    for j in jobs:
        name, args = j.get("name"), j.get("args")
        if not isinstance(name, str) or not name or not isinstance(args, list):
            raise FerEdgeError(f"{path}: every job needs a 'name' and a list of 'args'")
        if name in names:
            raise FerEdgeError(f"{path}: job name '{name}' appears twice")
        bad = [a for a in ("--epochs", "--out", "--max-steps", "--resume") if a in common + args]
        if bad:
            raise FerEdgeError(f"{path}: job '{name}' sets {', '.join(bad)}; the driver sets those itself")
        names.add(name)
        out.append(Job(name, [str(a) for a in args], j.get("max_epochs"), int(j.get("min_epochs", 1)),
                       j.get("epochs")))
    return [str(a) for a in common], out


def count_train_images(common: list[str], job: Job) -> int:
    """Images in ``<--data>/train`` (an ImageFolder root): the size of one epoch."""
    args = common + job.args
    data = Path(args[args.index("--data") + 1]) if "--data" in args else None
    if data is None or not (data / "train").is_dir():
        raise FerEdgeError(f"job '{job.name}': --data must be an ImageFolder root with train/")
    return _images_under(str((data / "train").resolve()))


@functools.cache
def _images_under(folder: str) -> int:
    """Image files below ``folder``, counted once however many jobs share it."""
    return sum(1 for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def epochs_that_fit(seconds_left: float, images: int, images_per_s: float, fixed_s: float, safety: float,
                    max_epochs: int | None = None, min_epochs: int = 1) -> int:
    """Whole epochs of ``images`` at ``images_per_s`` inside ``safety * (seconds_left - fixed_s)``."""
    usable = safety * (seconds_left - fixed_s)
    n = math.floor(usable * images_per_s / max(images, 1)) if images_per_s > 0 else 0
    if max_epochs:
        n = min(n, max_epochs)
    return max(n, min_epochs)


def _launch(job: Job, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    job.log = open(log_path, "w")
    job.log.write(" ".join(argv) + "\n")
    job.log.flush()
    job.proc = subprocess.Popen(argv, stdout=job.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_all(jobs: list[Job], deadline: float) -> dict[str, int | None]:
    """Wait for every job; past ``deadline`` (monotonic) the stragglers get SIGTERM, then SIGKILL."""
    codes: dict[str, int | None] = {}
    while any(j.proc is not None and j.proc.poll() is None for j in jobs) and time.monotonic() < deadline:
        time.sleep(1.0)
    for j in jobs:
        if j.proc is not None and j.proc.poll() is None:
            os.killpg(j.proc.pid, signal.SIGTERM)
            try:
                j.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(j.proc.pid, signal.SIGKILL)
                j.proc.wait()
        codes[j.name] = None if j.proc is None else j.proc.returncode
        if j.log:
            j.log.close()
    return codes


def _best(run: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run / "metrics.json").read_text()).get("best")
    except (OSError, ValueError):
        return None


def run_jobs(jobs_file: str, out: str, budget: float, probe_steps: int = 60, safety: float = 0.85,
             python: str = sys.executable, log=print) -> dict[str, Any]:
    """Probe, size and run every job of ``jobs_file`` under ``out``; returns (and writes) ``summary.json``."""
    t_start = time.monotonic()
    deadline = t_start + budget
    common, jobs = read_jobs(jobs_file)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    base = [python, "-m", "fer_edge", "train"]
    # 1. probe: every job without fixed epochs, together, two short epochs each
    probed = [j for j in jobs if not j.epochs]
    images = {j.name: count_train_images(common, j) for j in probed}  # only these need an epoch's size
    for j in probed:
        argv = base + common + j.args + ["--epochs", "2", "--max-steps", str(probe_steps),
                                         "--out", str(root / "probe" / j.name)]
        _launch(j, argv, root / "probe" / f"{j.name}.log", env)
    probe_codes = _wait_all(probed, deadline)
    probe_s = time.monotonic() - t_start
    plan: dict[str, Any] = {}
    failed: dict[str, Any] = {}
    for j in jobs:
        if j.epochs:
            plan[j.name] = {"epochs": int(j.epochs)}
            continue
        m = root / "probe" / j.name / "metrics.json"
        try:
            ep = json.loads(m.read_text())["epochs"][1]
        except (OSError, ValueError, KeyError, IndexError):  # that job is dropped, the others go on
            failed[j.name] = {"exit": probe_codes[j.name], "failed": "probe",
                              "log": str(root / "probe" / f"{j.name}.log")}
            log(f"{j.name}: failed its probe (exit {probe_codes[j.name]}), dropped; see {failed[j.name]['log']}")
            continue
        # the second short epoch gives the steady speed (the first one pays for cuDNN autotuning, measured at
        # ~60 s with five jobs on an H100); what the probe spent beyond two steady epochs is start-up cost
        rate = float(ep["images_per_s"])
        fixed = max(0.0, probe_s - 2 * float(ep["train_seconds"]))
        left = deadline - time.monotonic()
        n = epochs_that_fit(left, images[j.name], rate, fixed, safety, j.max_epochs, j.min_epochs)
        plan[j.name] = {"probe_images_per_s": round(rate, 1), "fixed_s": round(fixed, 1), "epochs": n}
        log(f"{j.name}: {rate:.0f} img/s under load in the probe -> {n} epochs")

    jobs = [j for j in jobs if j.name not in failed]
    if not jobs:
        raise FerEdgeError(f"every job failed its probe; see the logs in {root / 'probe'}")

    # 2. the real runs, side by side
    for j in jobs:
        argv = base + common + j.args + ["--epochs", str(plan[j.name]["epochs"]), "--out", str(root / j.name)]
        plan[j.name]["command"] = ["fer-edge", "train"] + argv[len(base):]
        _launch(j, argv, root / f"{j.name}.log", env)
    codes = _wait_all(jobs, deadline)
    summary = {"budget_s": budget, "probe_s": round(probe_s, 1), "wall_s": round(time.monotonic() - t_start, 1),
               "jobs": dict(failed)}
    for j in jobs:
        summary["jobs"][j.name] = {**plan[j.name], "exit": codes[j.name], "best": _best(root / j.name)}
        b = summary["jobs"][j.name]["best"] or {}
        log(f"{j.name}: exit {codes[j.name]}, best epoch {b.get('epoch')} val accuracy {b.get('val_accuracy')}")
    (root / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_edge.train.many", description=__doc__.split("\n\n")[0])
    p.add_argument("jobs", help="jobs JSON file")
    p.add_argument("--out", required=True, help="folder for every run, the logs and summary.json")
    p.add_argument("--budget", type=float, required=True, help="wall-clock seconds for probe and runs together")
    p.add_argument("--probe-steps", type=int, default=60, help="training steps per probe epoch (60)")
    p.add_argument("--safety", type=float, default=0.85, help="fraction of the measured time to plan on (0.85)")
    a = p.parse_args(argv)
    try:
        run_jobs(a.jobs, a.out, a.budget, a.probe_steps, a.safety)
    except FerEdgeError as e:
        print(f"fer-edge: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
