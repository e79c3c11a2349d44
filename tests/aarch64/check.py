"""The aarch64 check: fer-edge installed on an arm64 Debian 12 root, run under emulated Cortex-A72 and Cortex-A76.

Run as root on an x86-64 Linux host, with the project's x86 venv (it computes the x86 reference):

    .venv/bin/python tests/aarch64/check.py                       # CI subset: 20 val faces per class
    .venv/bin/python tests/aarch64/check.py --full-val --out benchmarks/results/aarch64

Steps (timed, written to OUT/summary.json and OUT/summary.md):

1. the arm64 root: ``mmdebstrap --arch=arm64 --variant=apt --include=...`` into ``--root`` (default
   /var/cache/fer-edge-aarch64/root; kept and reused, never inside the repository), executed through
   qemu-user-static + binfmt_misc;
2. the install: the README's "Raspberry Pi OS Lite" block, run line by line inside the root (two substitutions,
   printed: ``models fetch`` reads the shared models folder through ``--mirror file://`` since GitHub is not
   reachable from CI, and ``photo.jpg`` is the shared group photo), then pytest and onnx for the test;
3. for each CPU (``QEMU_CPU``, with a Raspberry Pi ``/proc/cpuinfo`` of that core bind-mounted, without which
   onnxruntime crashes under qemu-user): tests/test_no_torch.py, the machine description, ``fer-edge run --image``
   on the 6-face group photo and ``fer-edge evaluate`` of the shipped ONNX model with ``--predictions``, compared
   image by image with the same command on this x86 machine; then the model on x86's own preprocessed input
   tensors (``same_inputs.py``), which separates the INT8 kernels from OpenCV's resize rounding.

It exits 0 when every target holds (6 faces, the no-torch test passes, accuracy within 0.3 points of x86,
agreement >= 99%), 1 when one is missed, and 0 with one "aarch64 check skipped: ..." line when this machine cannot
run it (not root, no qemu-user-static / mmdebstrap / binfmt_misc); ``--require`` turns a skip into exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_ROOT = Path("/var/cache/fer-edge-aarch64/root")
PACKAGES = "python3,python3-venv,python3-pip,ca-certificates,sudo"
MMDEBSTRAP = ["mmdebstrap", "--arch=arm64", "--variant=apt", f"--include={PACKAGES}", "bookworm"]
CPUS = {"cortex-a72": HERE / "cpuinfo-pi4.txt", "cortex-a76": HERE / "cpuinfo-pi5.txt"}
CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
GROUP_PHOTO = "media/group_selfie_6faces.jpg"
README_MARK = "<!-- pi-install-lite -->"
GUEST_SHARED = "/mnt/shared"
GUEST_ASSETS = "~/fer-edge-venv/lib/python3.11/site-packages/fer_edge/assets"
GUEST_SAME = "/root/same-inputs"  # same_inputs.py and x86's input tensors, inside the root
# the shipped ONNX models (`--model NAME`) and the suffix of their result files ("" keeps the older file names)
MODELS = {"accurate": ("accurate_int8.onnx", ""), "fast": ("fast_int8.onnx", "_fast")}
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The targets, on the full val split. A subset of a few dozen faces per class cannot resolve 0.3 points, and
# on an AVX2-only x86 host (no VNNI) about 5% of faces get another class than on Arm (15 of 280 measured), whose INT8
# kernels (Cortex-A72 without and A76 with dot-product instructions) agree with each other on every face: the x86 side
# is the likely inexact one (its AVX2 INT8 kernels multiply-add through saturating 16-bit sums). The subset gate
# allows for that and also requires the two Arm CPUs to agree.
MAX_ACC_DIFF, MIN_AGREEMENT = 0.003, 0.99
SUBSET_ACC_DIFF, SUBSET_AGREEMENT = 0.03, 0.90
MIN_ARM_AGREEMENT = 0.99


class Skip(Exception):
    """This machine cannot run the check; the message says why."""


def log(msg: str) -> None:
    print(f"[aarch64] {msg}", flush=True)


def sh(cmd: list[str] | str, check: bool = True, capture: bool = False, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, shell=isinstance(cmd, str),
                          stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT if capture else None,
                          **kw)


# ---- prerequisites -----------------------------------------------------------------------------------------

def check_host(need_mmdebstrap: bool) -> None:
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise Skip(f"needs an x86-64 Linux host (this is {platform.system()} {platform.machine()})")
    if os.geteuid() != 0:
        raise Skip("needs root (chroot, bind mounts, binfmt_misc)")
    missing = [t for t in ("unshare", "chroot", "mount") if not shutil.which(t)]
    if need_mmdebstrap and not shutil.which("mmdebstrap"):
        missing.append("mmdebstrap")
    if not Path("/usr/libexec/qemu-binfmt/aarch64-binfmt-P").exists() and not shutil.which("qemu-aarch64-static"):
        missing.append("qemu-user-static")
    if missing:
        raise Skip(f"missing {', '.join(missing)} (apt-get install -y mmdebstrap qemu-user-static binfmt-support)")
    enable_binfmt()


def enable_binfmt() -> None:
    """qemu-aarch64 registered with binfmt_misc, with the F flag (the interpreter works inside a chroot)."""
    d = Path("/proc/sys/fs/binfmt_misc")
    if not (d / "register").exists():
        r = sh(["mount", "-t", "binfmt_misc", "binfmt_misc", str(d)], check=False, capture=True)
        if r.returncode:
            raise Skip(f"cannot mount binfmt_misc ({r.stdout.strip() or 'mount failed'})")
    entry = d / "qemu-aarch64"
    if not entry.exists() or "enabled" not in entry.read_text():
        if shutil.which("update-binfmts"):
            sh(["update-binfmts", "--enable", "qemu-aarch64"], check=False, capture=True)
    if not entry.exists() or "enabled" not in entry.read_text():
        raise Skip("qemu-aarch64 is not registered with binfmt_misc (apt-get install binfmt-support "
                   "qemu-user-static; update-binfmts --enable qemu-aarch64)")
    if "F" not in re.sub(r"^(?!flags:).*$", "", entry.read_text(), flags=re.M):
        raise Skip("qemu-aarch64's binfmt_misc entry lacks the F flag, so it cannot run inside a chroot")


# ---- the root ------------------------------------------------------------------------------------------------

def ensure_root(root: Path, rebuild: bool, no_build: bool = False) -> float | None:
    """Build the arm64 root unless a finished one is there; the seconds it took, or None when reused."""
    marker = root / ".fer-edge-root"
    if marker.is_file() and not rebuild:
        log(f"reusing the arm64 root {root} ({marker.read_text().strip()})")
        return None
    if no_build:
        raise Skip(f"no cached arm64 root at {root} and --no-build (building one took 20 min under emulation on a "
                   "busy 2-core machine: run tests/aarch64/check.sh once, or FER_EDGE_ARM_BUILD=1 .ci/run)")
    if not shutil.which("mmdebstrap"):
        raise Skip("no arm64 root yet and no mmdebstrap to build one (apt-get install -y mmdebstrap)")
    tmp = root.with_name(root.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*MMDEBSTRAP, str(tmp)]
    log("building the arm64 root: " + " ".join(cmd))
    t0 = time.monotonic()
    r = sh(cmd, check=False, capture=True)
    if r.returncode:
        tail = "\n".join(r.stdout.strip().splitlines()[-5:])
        raise RuntimeError(f"mmdebstrap failed (exit {r.returncode}):\n{tail}")
    secs = time.monotonic() - t0
    (tmp / ".fer-edge-root").write_text(f"{' '.join(cmd[:-1])} (built in {secs:.0f} s)\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    log(f"root built in {secs:.0f} s")
    return secs


def guest(root: Path, script: str, cpu: str | None = None, timeout: float = 3600, cwd: str = "/root",
          env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a bash script inside the root, in a private mount namespace: /proc with a Raspberry Pi cpuinfo of
    ``cpu`` bind-mounted over /proc/cpuinfo, /dev, the shared data read-only at /mnt/shared, and QEMU_CPU."""
    cpuinfo = CPUS[cpu or "cortex-a72"]
    genv = {"HOME": "/root", "PATH": GUEST_PATH, "LANG": "C.UTF-8", "QEMU_CPU": cpu or "cortex-a72",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_PROGRESS_BAR": "off", **(env or {})}
    mounts = [
        f"mount -t proc proc {root}/proc",
        f"mount --bind {shlex.quote(str(cpuinfo))} {root}/proc/cpuinfo",
        f"mount --rbind /dev {root}/dev",
        f"mount --rbind /sys {root}/sys",
        f"mkdir -p {root}{GUEST_SHARED} && mount --bind -o ro {shlex.quote(str(SHARED))} {root}{GUEST_SHARED}",
        f"cp -L /etc/resolv.conf {root}/etc/resolv.conf 2>/dev/null || true",
    ]
    # The host's network settings, not the Pi's: a CA bundle that pip must trust (e.g. behind a TLS proxy)
    host_ca = next((p for p in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE")) if p and
                    Path(p).is_file()), None)
    if host_ca:
        mounts.append(f"cp -L {shlex.quote(host_ca)} {root}/etc/ssl/host-ca-bundle.crt")
        genv.update({k: "/etc/ssl/host-ca-bundle.crt" for k in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")})
    body = shlex.quote(f"cd {cwd}; " + script)
    inner = " && ".join(mounts) + f" && exec chroot {root} /usr/bin/env -i " + " ".join(
        f"{k}={shlex.quote(v)}" for k, v in genv.items()) + f" /bin/bash -e -o pipefail -c {body}"
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", inner], text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)


def timed(what: str, root: Path, script: str, timings: dict, **kw) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    r = guest(root, script, **kw)
    timings[what] = round(time.monotonic() - t0, 1)
    log(f"{what}: exit {r.returncode} in {timings[what]:.0f} s")
    return r


# ---- the install, as the README says ----------------------------------------------------------------------

def readme_lite_block() -> list[str]:
    """The command lines of the README's Raspberry Pi OS Lite install block (after the marker comment)."""
    text = (REPO / "README.md").read_text()
    i = text.find(README_MARK)
    if i < 0:
        raise RuntimeError(f"README.md has no {README_MARK} block")
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", text[i:], re.S)
    lines = []
    for ln in block.group(1).splitlines():
        ln = ln.split("  #")[0].rstrip()
        if ln and not ln.lstrip().startswith("#"):
            lines.append(ln)
    return lines


def install(root: Path, timings: dict, out: Path) -> list[str]:
    """Copy the checkout to /root/fer-edge and run the README's Lite block in /root; returns the lines run."""
    src = root / "root" / "fer-edge"
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(root / "root" / "fer-edge-venv", ignore_errors=True)
    files = sh(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], capture=True,
               cwd=REPO).stdout.split("\0")
    for f in filter(None, files):
        p = REPO / f
        if p.is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, src / f)
    lines = []
    for ln in readme_lite_block():
        ln = re.sub(r"(fer-edge models fetch [^#]*?)\s*$", rf"\1 --mirror file://{GUEST_SHARED}/models", ln)
        ln = ln.replace("photo.jpg", f"{GUEST_SHARED}/{GROUP_PHOTO}")
        lines.append(ln)
    log("README Lite block, as run in the root:\n    " + "\n    ".join(lines))
    # as on a fresh Pi: no detector file (it comes from the block's own `models fetch`) and no outputs of an earlier
    # run in the cached root (fer-edge refuses to replace an existing output without --overwrite)
    guest(root, "rm -rf ~/.cache/fer-edge ~/annotated.jpg ~/faces.jsonl")
    r = timed("install (README Lite block)", root, " && ".join(f"( {ln} )" for ln in lines), timings)
    (out / "install.log").write_text(r.stdout)
    if r.returncode:
        tail = "\n".join(r.stdout.splitlines()[-15:])
        raise RuntimeError(f"the README's Lite install failed inside the root:\n{tail}")
    r = timed("pip install pytest onnx (test only)", root, "~/fer-edge-venv/bin/pip install -q pytest onnx", timings)
    if r.returncode:
        raise RuntimeError("pip install pytest onnx failed:\n" + r.stdout[-2000:])
    return lines


# ---- the checks ----------------------------------------------------------------------------------------------

def make_subset(dest: Path, per_class: int) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    for c in CLASSES:
        files = sorted((SHARED / "datasets/fer2013/val" / c).iterdir())[:per_class]
        (dest / c).mkdir(parents=True)
        for f in files:
            shutil.copy2(f, dest / c / f.name)


def host_reference(data: Path, out: Path, threads: int, models: list[str], root: Path) -> tuple[dict, list]:
    """The same evaluate (each shipped .onnx) and run on this x86 machine, with ONNX Runtime; and x86's
    preprocessed input tensors with its predictions, written into the root for ``same_inputs.py compare``."""
    env = {**os.environ, "FER_EDGE_HOME": str(SHARED)}
    t0 = time.monotonic()
    evals = {}
    same = root / GUEST_SAME.lstrip("/")
    shutil.rmtree(same, ignore_errors=True)
    same.mkdir(parents=True)
    shutil.copy2(HERE / "same_inputs.py", same / "same_inputs.py")
    for name in models:
        fname, sfx = MODELS[name]
        model = str(REPO / "fer_edge/assets" / fname)
        sh([sys.executable, "-m", "fer_edge", "evaluate", model, "--data", str(data),
            "--predictions", str(out / f"x86_predictions{sfx}.csv"), "--json", str(out / f"x86_eval{sfx}.json"),
            "--no-confusion", "--quiet", "--threads", str(threads)], env=env, capture=True)
        evals[name] = json.loads((out / f"x86_eval{sfx}.json").read_text())
        sh([sys.executable, str(HERE / "same_inputs.py"), "prepare", str(data), model,
            str(same / f"x86_inputs{sfx}.npz")], capture=True)
    sh([sys.executable, "-m", "fer_edge", "run", "--image", str(SHARED / GROUP_PHOTO), "--model",
        str(REPO / "fer_edge/assets/accurate_int8.onnx"), "--json", str(out / "x86_group.jsonl"), "--overwrite",
        "--quiet"],
       env=env, capture=True)
    log(f"x86 reference in {time.monotonic() - t0:.0f} s")
    return evals, _faces(out / "x86_group.jsonl")


def _faces(jsonl: Path) -> list:
    return [(r["label"], [round(v) for v in r["box"]]) for r in map(json.loads, jsonl.read_text().splitlines())]


def read_predictions(path: Path) -> dict[str, tuple[str, str]]:
    import csv

    with open(path, newline="") as f:
        return {r["path"]: (r["label"], r["pred"]) for r in csv.DictReader(f)}


def check_cpu(root: Path, cpu: str, guest_data: str, out: Path, threads: int, x86: dict, x86_faces: list,
              openvino: bool) -> dict:
    res: dict = {"cpu": cpu, "cpuinfo": CPUS[cpu].name, "timings_s": {}}
    # pytest runs from /tmp: in the checkout, its fer_edge/ folder would shadow the installed package
    t = res["timings_s"]
    gout = f"/root/out/{cpu}"
    guest(root, f"rm -rf {gout} && mkdir -p {gout}")
    r = timed(f"{cpu}: tests/test_no_torch.py", root, "cd /tmp && FER_EDGE_SHARED=/mnt/shared "
              "~/fer-edge-venv/bin/python -m pytest -q -p no:cacheprovider --rootdir ~/fer-edge "
              "~/fer-edge/tests/test_no_torch.py", t, cpu=cpu)
    res["no_torch_test"] = {"exit": r.returncode, "tail": r.stdout.strip().splitlines()[-1:]}
    r = timed(f"{cpu}: machine description", root, "~/fer-edge-venv/bin/python -c 'import json; "
              "from fer_edge.machine import machine_summary as m; d = m(); d.pop(\"libraries\"); "
              "print(json.dumps(d))'", t, cpu=cpu)
    res["machine"] = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"error": r.stdout[-500:]}
    r = timed(f"{cpu}: fer-edge run --image (group photo)", root, "~/fer-edge-venv/bin/fer-edge run --image "
              f"/mnt/shared/{GROUP_PHOTO} --json {gout}/group.jsonl", t, cpu=cpu)
    faces = _faces(root / gout.lstrip("/") / "group.jsonl") if r.returncode == 0 else []
    res["group_photo"] = {"exit": r.returncode, "faces": len(faces), "labels": [f[0] for f in faces],
                          "same_labels_as_x86": [f[0] for f in faces] == [f[0] for f in x86_faces],
                          "log": r.stdout.strip().splitlines()[-1:]}
    res["evaluate"] = {}
    for name, x86_ev in x86.items():
        fname, sfx = MODELS[name]
        step = f"{cpu}: fer-edge evaluate" + (f" ({name})" if sfx else "")
        r = timed(step, root, f"~/fer-edge-venv/bin/fer-edge evaluate {GUEST_ASSETS}/{fname} --data {guest_data} "
                  f"--predictions {gout}/predictions{sfx}.csv --json {gout}/eval{sfx}.json --no-confusion "
                  f"--quiet --threads {threads}", t, cpu=cpu)
        if r.returncode:
            res["evaluate"][name] = {"error": r.stdout[-1500:]}
            continue
        ev = json.loads((root / gout.lstrip("/") / f"eval{sfx}.json").read_text())
        arm_p = read_predictions(root / gout.lstrip("/") / f"predictions{sfx}.csv")
        x86_p = read_predictions(out / f"x86_predictions{sfx}.csv")
        common = sorted(set(arm_p) & set(x86_p))
        agree = sum(arm_p[k][1] == x86_p[k][1] for k in common)
        res["evaluate"][name] = {
            "model": fname, "n": ev["n"], "accuracy": ev["accuracy"], "macro_f1": ev["macro_f1"],
            "x86_accuracy": x86_ev["accuracy"], "accuracy_diff": ev["accuracy"] - x86_ev["accuracy"],
            "agreement": agree / max(len(common), 1), "compared": len(common),
            "disagreements": [k for k in common if arm_p[k][1] != x86_p[k][1]][:50]}
        shutil.copy2(root / gout.lstrip("/") / f"predictions{sfx}.csv", out / f"{cpu}_predictions{sfx}.csv")
        r = timed(f"{cpu}: {name} on x86's input tensors", root, f"~/fer-edge-venv/bin/python {GUEST_SAME}/"
                  f"same_inputs.py compare {GUEST_ASSETS}/{fname} {GUEST_SAME}/x86_inputs{sfx}.npz", t, cpu=cpu)
        try:
            res["evaluate"][name]["same_inputs"] = json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            res["evaluate"][name]["same_inputs"] = {"error": r.stdout[-1500:]}
    if openvino:
        res["openvino"] = try_openvino(root, cpu, t)
    return res


def try_openvino(root: Path, cpu: str, t: dict) -> dict:
    """The shipped OpenVINO IR with --backend openvino: does it run, or does it fail in one line?"""
    guest(root, "~/fer-edge-venv/bin/python -c 'import openvino' 2>/dev/null || "
          "~/fer-edge-venv/bin/pip install -q openvino", timeout=3600)
    r = timed(f"{cpu}: OpenVINO IR on the group photo", root, "~/fer-edge-venv/bin/fer-edge run --image "
              f"/mnt/shared/{GROUP_PHOTO} --model {GUEST_ASSETS}/accurate_int8.xml --json /tmp/ov.jsonl "
              "|| echo exit=$?", t, cpu=cpu)
    return {"output": r.stdout.strip().splitlines()[-3:]}


def count_instructions(root: Path, cpus: list[str], out: Path, reps: int) -> dict:
    """Per-stage guest instruction counts (benchmarks/pi_estimate.py) under the dynamic qemu-aarch64 with the
    tests/aarch64/insncount.c plugin, for each CPU; a Raspberry Pi cpuinfo bind-mounted as for the checks."""
    sys.path.insert(0, str(REPO))
    from benchmarks.pi_estimate import per_call, read_marks

    qemu = shutil.which("qemu-aarch64")
    if not qemu or not shutil.which("gcc"):
        raise Skip("counting instructions needs the dynamic qemu-aarch64 (apt-get install -y qemu-user; its "
                   "plugin support) and gcc")
    so = out / "insncount.so"
    sh(["gcc", "-shared", "-fPIC", "-O2", "-o", str(so), str(HERE / "insncount.c")])
    site = root / "root/fer-edge-venv/lib/python3.11/site-packages"
    if not (site / "fer_edge").is_dir():
        raise Skip(f"no fer-edge installed in {site} (run the check once without --count-instructions)")
    # the checkout's stage plan, even when the installed copy is older
    shutil.copy2(REPO / "benchmarks/pi_estimate.py", site / "fer_edge/benchmarks/pi_estimate.py")
    video = SHARED / "media/video_talking_woman_15s.mp4"
    yunet = SHARED / "models/face_detectors/yunet/face_detection_yunet_2023mar.onnx"
    counts = {}
    for cpu in cpus:
        marks, stages = out / f"marks_{cpu}.txt", out / f"stages_{cpu}.json"
        cmd = [qemu, "-L", str(root), "-cpu", cpu, "-plugin", f"{so},out={marks}", str(root / "usr/bin/python3.11"),
               "-m", "fer_edge.benchmarks.pi_estimate", "count", "--video", str(video), "--yunet", str(yunet),
               "--reps", str(reps), "--out", str(stages)]
        inner = f"mount --bind {shlex.quote(str(CPUS[cpu]))} /proc/cpuinfo && exec " + " ".join(map(shlex.quote, cmd))
        t0 = time.monotonic()
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", inner], text=True,
                           capture_output=True, cwd="/tmp", env={**os.environ, "PYTHONPATH": str(site), "QEMU_CPU": cpu,
                                                     "OMP_NUM_THREADS": "1"})
        if r.returncode:
            raise RuntimeError(f"instruction count under {cpu} failed:\n{r.stderr[-2000:]}")
        info = json.loads(stages.read_text())
        counts[cpu] = {k: round(v) for k, v in per_call(read_marks(marks), info["stages"], reps).items()}
        counts[cpu]["default_detect_side"] = info.get("default_detect_side", 640)
        log(f"{cpu}: instructions counted in {time.monotonic() - t0:.0f} s: {counts[cpu]}")
        info["instructions_per_call"] = counts[cpu]
        stages.write_text(json.dumps(info, indent=1))
    doc = {"command": "tests/aarch64/check.py --count-instructions", "qemu": sh([qemu, "--version"], capture=True)
           .stdout.splitlines()[0], "reps": reps, "counts": counts}
    (out / "instructions.json").write_text(json.dumps(doc, indent=1))
    return doc


def targets(results: list[dict], max_acc_diff: float, min_agreement: float) -> list[str]:
    missed = []
    for r in results:
        c = r["cpu"]
        if r["no_torch_test"]["exit"]:
            missed.append(f"{c}: tests/test_no_torch.py failed ({' '.join(r['no_torch_test']['tail'])})")
        if r["group_photo"]["faces"] != 6:
            missed.append(f"{c}: {r['group_photo']['faces']} faces on the group photo, not 6")
        for name, e in _evaluations(r):
            if "error" in e:
                missed.append(f"{c}: fer-edge evaluate ({name}) failed")
                continue
            if abs(e["accuracy_diff"]) > max_acc_diff:
                missed.append(f"{c}, {name}: accuracy {100 * e['accuracy']:.2f}% is {100 * e['accuracy_diff']:+.2f} "
                              "points from x86")
            if e["agreement"] < min_agreement:
                missed.append(f"{c}, {name}: agreement {100 * e['agreement']:.2f}% < {100 * min_agreement:.0f}%")
            si = e.get("same_inputs")
            if si is not None and si.get("agreement", 0.0) < min_agreement:
                missed.append(f"{c}, {name}: on x86's input tensors " + (
                    f"agreement {100 * si['agreement']:.2f}% < {100 * min_agreement:.0f}% (the INT8 kernels differ)"
                    if "agreement" in si else "the comparison failed"))
    return missed


def _evaluations(result: dict) -> list[tuple[str, dict]]:
    """(model, evaluation) of one CPU's result; results written before the fast model held only `accurate`'s."""
    e = result["evaluate"]
    return [("accurate", e)] if "accuracy" in e or "error" in e else list(e.items())


def missed_targets(summary: dict) -> list[str]:
    t = summary["targets"]
    missed = targets(summary["results"], t["max_accuracy_diff"], t["min_agreement"])
    arm = summary.get("a72_vs_a76_agreement")
    arm = {"accurate": arm} if isinstance(arm, float) else (arm or {})
    for name, a in arm.items():
        if a < MIN_ARM_AGREEMENT:
            missed.append(f"{name}: Cortex-A72 and Cortex-A76 agree on {100 * a:.2f}% of faces < "
                          f"{100 * MIN_ARM_AGREEMENT:.0f}%")
    return missed


def markdown(s: dict) -> str:
    lines = ["# aarch64 check (emulated)", "", f"- command: `{s['command']}`", f"- host: {s['host']}",
             f"- root: `{s['mmdebstrap']}`", f"- data: {s['data']}", "", "## Timings (s)", ""]
    lines += ["| step | s |", "| --- | ---: |"] + [f"| {k} | {v} |" for k, v in s["timings_s"].items()]
    lines += ["", "## Results", "", "| CPU | ISA seen by fer-edge | no-torch test | group photo faces (labels = x86) "
              "| model | accuracy (x86) | agreement with x86 | on x86's input tensors: agreement (accuracy) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in s["results"]:
        g, m = r["group_photo"], r["machine"]
        isa = f"{m.get('isa', '?')}; absent: {m.get('isa_absent', '?')} ({m.get('isa_source', '')})"
        for i, (name, e) in enumerate(_evaluations(r)):
            acc = (f"{100 * e['accuracy']:.2f}% ({100 * e['x86_accuracy']:.2f}%)" if "accuracy" in e else "failed")
            agr = f"{100 * e['agreement']:.2f}% of {e['compared']}" if "agreement" in e else "failed"
            si = e.get("same_inputs", {})
            same = (f"{100 * si['agreement']:.2f}% ({100 * si['accuracy']:.2f}%)" if "agreement" in si else
                    "failed" if si else "not run")
            head = (f"| {r['cpu']} | {isa} | {'pass' if r['no_torch_test']['exit'] == 0 else 'FAIL'} | "
                    f"{g['faces']} ({'yes' if g['same_labels_as_x86'] else 'no'}) |") if i == 0 else "| | | | |"
            lines.append(f"{head} {name} | {acc} | {agr} | {same} |")
    lines += ["", "## README Lite block as run", "", "```bash", *s["install_lines"], "```", ""]
    if any("openvino" in r for r in s["results"]):
        lines += ["## OpenVINO IR (`--model accurate_int8.xml`)", ""]
        lines += [f"- {r['cpu']}: " + " / ".join(f"`{x}`" for x in r["openvino"]["output"]) for r in s["results"]
                  if "openvino" in r]
        lines.append("")
    arm = s.get("a72_vs_a76_agreement")
    for name, a in ({"accurate": arm} if isinstance(arm, float) else (arm or {})).items():
        lines += [f"Cortex-A72 vs Cortex-A76 ({name}), image by image: {100 * a:.2f}% the same class.", ""]
    t = s["targets"]
    lines += [f"## Targets (accuracy within {100 * t['max_accuracy_diff']:.1f} points of x86, agreement >= "
              f"{100 * t['min_agreement']:.0f}%)", ""] + ([f"- MISSED: {m}" for m in s["missed"]] or ["- all met"])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(os.environ.get("FER_EDGE_ARM_ROOT", DEFAULT_ROOT)))
    ap.add_argument("--rebuild", action="store_true", help="build the root afresh even when one exists")
    ap.add_argument("--cpus", default=",".join(CPUS), help="emulated CPUs (cortex-a72,cortex-a76)")
    ap.add_argument("--per-class", type=int, default=20, help="val faces per class (default 20)")
    ap.add_argument("--full-val", action="store_true", help="all of val/ (3,589 faces)")
    ap.add_argument("--threads", type=int, default=2, help="evaluate's inference threads")
    ap.add_argument("--models", default=",".join(MODELS), help="shipped ONNX models to evaluate (accurate,fast)")
    ap.add_argument("--openvino", action="store_true", help="also try the OpenVINO IR (pip installs openvino)")
    ap.add_argument("--out", type=Path, default=REPO / "build" / "aarch64")
    ap.add_argument("--require", action="store_true", help="exit 2 instead of skipping when it cannot run")
    ap.add_argument("--count-instructions", action="store_true", help="only count the instructions of each run "
                    "stage (benchmarks/pi_estimate.py) in the installed root, for the Raspberry Pi estimate")
    ap.add_argument("--no-install", action="store_true", help="reuse the venv installed by an earlier run")
    ap.add_argument("--no-build", action="store_true", help="skip (one line) when no cached root exists instead of "
                    "building one")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per stage when counting instructions")
    args = ap.parse_args(argv)
    cpus = [c for c in args.cpus.split(",") if c]
    if any(c not in CPUS for c in cpus):
        ap.error(f"--cpus: choose from {', '.join(CPUS)}")
    models = [m for m in args.models.split(",") if m]
    if not models or any(m not in MODELS for m in models):
        ap.error(f"--models: choose from {', '.join(MODELS)}")
    t_start = time.monotonic()
    try:
        if not SHARED.is_dir():
            raise Skip(f"shared data not found at {SHARED} (set FER_EDGE_SHARED)")
        check_host(need_mmdebstrap=not args.no_build and (not (args.root / ".fer-edge-root").is_file() or args.rebuild))
        timings: dict = {}
        built = ensure_root(args.root, args.rebuild, args.no_build)
    except Skip as e:
        print(f"aarch64 check skipped: {e}", flush=True)
        return 2 if args.require else 0
    if built is not None:
        timings["build the arm64 root (mmdebstrap)"] = round(built, 1)
    out = args.out.resolve()
    shutil.rmtree(out / "tmp", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    if args.count_instructions:
        try:
            doc = count_instructions(args.root, cpus, out, args.reps)
        except Skip as e:
            print(f"aarch64 check skipped: {e}", flush=True)
            return 2 if args.require else 0
        from benchmarks.pi_estimate import estimate_lines

        print("\n".join(estimate_lines(doc["counts"])))
        return 0
    lines = (readme_lite_block() if args.no_install else install(args.root, timings, out))
    if args.full_val:
        host_data, guest_data = SHARED / "datasets/fer2013/val", f"{GUEST_SHARED}/datasets/fer2013/val"
    else:
        host_data, guest_data = args.root / "root" / "val", "/root/val"
        make_subset(host_data, args.per_class)
    with tempfile.TemporaryDirectory():
        x86, x86_faces = host_reference(host_data, out, args.threads, models, args.root)
    results = [check_cpu(args.root, c, guest_data, out, args.threads, x86, x86_faces, args.openvino) for c in cpus]
    for r in results:
        timings.update(r["timings_s"])
    timings["total"] = round(time.monotonic() - t_start, 1)
    summary = {"command": " ".join([Path(sys.argv[0]).as_posix() if argv is None else "check.py", *(
        sys.argv[1:] if argv is None else argv)]),
               "host": f"{platform.machine()} {platform.platform()}, {os.cpu_count()} cores",
               "mmdebstrap": " ".join(MMDEBSTRAP) + " ROOT",
               "data": f"{guest_data} ({next(iter(x86.values()))['n']} faces)", "timings_s": timings,
               "install_lines": lines,
               "x86": {**{m: {"accuracy": e["accuracy"], "macro_f1": e["macro_f1"], "n": e["n"]}
                          for m, e in x86.items()}, "group_photo_labels": [f[0] for f in x86_faces]},
               "results": results}
    for name in models:
        preds = [out / f"{r['cpu']}_predictions{MODELS[name][1]}.csv" for r in results]
        if len(preds) == 2 and all(p.is_file() for p in preds):
            a, b = (read_predictions(p) for p in preds)
            arm = sum(a[k][1] == b.get(k, ("", ""))[1] for k in a) / max(len(a), 1)
            summary.setdefault("a72_vs_a76_agreement", {})[name] = arm
            log(f"Cortex-A72 vs Cortex-A76 agreement ({name}): {100 * arm:.2f}%")
    full = args.full_val
    summary["targets"] = {"max_accuracy_diff": MAX_ACC_DIFF if full else SUBSET_ACC_DIFF,
                          "min_agreement": MIN_AGREEMENT if full else SUBSET_AGREEMENT}
    summary["missed"] = missed_targets(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(markdown(summary))
    log(f"wrote {out / 'summary.md'}")
    print(markdown(summary))
    return 1 if summary["missed"] else 0


SHARED = Path(os.environ.get("FER_EDGE_SHARED", REPO.parent / "shared")).resolve()

if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:  # a step inside the root failed: say which, with the tail of its output
        print(f"aarch64 check failed: {e}", file=sys.stderr)
        sys.exit(1)
