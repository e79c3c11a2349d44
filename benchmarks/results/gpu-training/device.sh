#!/usr/bin/env bash
# One call on a lent GPU (run from the repo root, gpu_data/ carried): unpack FER2013, train every job of
# jobs.json side by side inside BUDGET seconds, pack each run (best.pt with fp16 weights for the trip back,
# metrics, log) into $OUT. Env: BUDGET (s), JOBS (jobs file), DATA_ROOT, PY, PROBE_STEPS.
set -euo pipefail
BUDGET=${BUDGET:-460}; JOBS=${JOBS:-benchmarks/results/gpu-training/jobs.json}; PY=${PY:-python3}
DATA_ROOT=${DATA_ROOT:-/tmp/fer}; PKG=$(mktemp -d); RUNS=${RUNS:-/tmp/runs}; OUT=${OUT:-/tmp/out}
t0=$(date +%s)
mkdir -p "$DATA_ROOT" "$OUT" "$(dirname "$RUNS")" && tar xJf gpu_data/fer2013.tar.xz -C "$DATA_ROOT"
mkdir -p "$PKG/fer_edge" && cp -r fer_edge/. "$PKG/fer_edge/"
for d in runtime export benchmarks; do cp -r "$d" "$PKG/fer_edge/$d"; done
# PYTHONSAFEPATH: the repo root (the cwd) must not shadow the assembled package with the bare fer_edge/
export PYTHONPATH="$PKG" OMP_NUM_THREADS=2 PYTHONSAFEPATH=1
(nvidia-smi -L || true; $PY -c "import torch, timm, sys; print(sys.version.split()[0], torch.__version__, timm.__version__, torch.cuda.is_available())") 2>&1 | tee "$RUNS.env.txt"
echo "setup $(( $(date +%s) - t0 )) s" | tee -a "$RUNS.env.txt"
$PY -m fer_edge.train.many "$JOBS" --out "$RUNS" --budget "$BUDGET" --probe-steps "${PROBE_STEPS:-60}" \
    2>&1 | tee "$RUNS.log" || true
$PY - "$RUNS" "$OUT" <<'PY'
import sys, tarfile, torch
from pathlib import Path
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
for run in sorted(p for p in runs.iterdir() if p.is_dir() and p.name != "probe"):
    with tarfile.open(out / f"{run.name}.tar.gz", "w:gz") as tar:
        if (run / "best.pt").is_file():
            ck = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
            ck["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in ck["state_dict"].items()}
            torch.save(ck, run / "best.fp16.pt")
            tar.add(run / "best.fp16.pt", arcname=f"{run.name}/best.fp16.pt")
        for f in ("metrics.csv", "metrics.json"):
            if (run / f).is_file():
                tar.add(run / f, arcname=f"{run.name}/{f}")
        if (runs / f"{run.name}.log").is_file():
            tar.add(runs / f"{run.name}.log", arcname=f"{run.name}/train.log")
with tarfile.open(out / "summary.tar.gz", "w:gz") as tar:
    for p in [runs / "summary.json", runs.with_suffix(".log"), Path(f"{runs}.env.txt"), runs / "probe"]:
        if p.exists():
            tar.add(p, arcname=p.name, filter=lambda t: None if t.name.endswith(".pt") else t)
PY
ls -la "$OUT"; echo "total $(( $(date +%s) - t0 )) s"
