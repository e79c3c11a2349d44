"""``fer-edge benchmark``: every artifact measured in one run on this machine, against PyTorch eager FP32."""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.runtime.errors import FerEdgeError


@dataclass
class Subject:
    """One thing to measure: a checkpoint (PyTorch eager) or an exported artifact (runtime)."""

    label: str
    path: Path
    backend: str
    precision: str
    classifier: Any
    source_sha256: str | None = None  # the checkpoint it is (torch) or was exported from (artifacts)

    @property
    def is_torch(self) -> bool:
        return self.backend == "torch"


def _label(clf, path: Path) -> tuple[str, str]:
    precision = str(clf.meta.extra.get("precision", "fp32")).upper() if hasattr(clf.meta, "extra") else "FP32"
    backend = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO", "torch": "PyTorch eager"}[clf.backend]
    return f"{backend} {precision} ({path.name})", precision


def load_subjects(models: list[str], checkpoints: list[str] | str | None, threads: int | None) -> list[Subject]:
    from fer_edge.runtime.assets import sha256_of
    from fer_edge.runtime.classifier import load_classifier

    if isinstance(checkpoints, str):
        checkpoints = [checkpoints]
    subjects = []
    for ckpt in checkpoints or []:
        from fer_edge.evaluate import load_model
        from fer_edge.train.checkpoint import weights_file

        clf = load_model(ckpt, threads=threads)
        subjects.append(Subject(f"PyTorch eager FP32 ({Path(ckpt).name})", Path(ckpt), "torch", "FP32", clf,
                                sha256_of(weights_file(ckpt))))
    for m in models:
        clf = load_classifier(m, threads=threads)
        label, precision = _label(clf, Path(m))
        subjects.append(Subject(label, Path(m), clf.backend, precision, clf,
                                clf.meta.extra.get("source_checkpoint_sha256")))
    if not subjects:
        raise FerEdgeError("nothing to benchmark: give model files and/or --checkpoint")
    classes = {s.classifier.classes for s in subjects}
    if len(classes) > 1:
        raise FerEdgeError("the models to compare have different classes")
    if len({s.label for s in subjects}) < len(subjects):  # same file names from several runs: name the folders
        for s in subjects:
            s.label = s.label.split(" (")[0] + f" ({s.path.parent.name}/{s.path.name})"
    return subjects


def _files(s: Subject) -> list[Path]:
    """The files a subject's size counts: an IR's .xml and .bin, a .pt, or a release folder's safetensors."""
    if s.is_torch:
        from fer_edge.train.checkpoint import weights_file

        return [weights_file(s.path)]
    return [p for p in (s.path, s.path.with_suffix(".bin")) if p.is_file() and (p == s.path or s.path.suffix == ".xml")]


def paired_counts(hits: np.ndarray, first_hits: np.ndarray, first_label: str) -> dict[str, Any]:
    """Faces (0/1 hits, the same faces in the same order) right here and wrong for the first model, the reverse,
    and McNemar's exact two-sided p-value."""
    from .paired import mcnemar_exact

    only_this = int(((hits == 1) & (first_hits == 0)).sum())
    only_first = int(((hits == 0) & (first_hits == 1)).sum())
    return {"first": first_label, "only_this": only_this, "only_first": only_first,
            "mcnemar_p": mcnemar_exact(only_this, only_first)}


def references(subjects: list[Subject]) -> list[Subject]:
    """Each subject's FP32 reference: the checkpoint it was exported from (by SHA-256), else the only
    checkpoint given, else the first FP32 artifact. A checkpoint is its own reference."""
    torch_subjects = [s for s in subjects if s.is_torch]
    fallback = (torch_subjects[0] if len(torch_subjects) == 1 else
                next((s for s in subjects if s.precision == "FP32"), subjects[0]))
    refs = []
    for s in subjects:
        if s.is_torch:
            refs.append(s)
            continue
        match = [t for t in torch_subjects if s.source_sha256 and t.source_sha256 == s.source_sha256]
        if not match and len(torch_subjects) > 1:
            raise FerEdgeError(f"{s.path} was not exported from any of the checkpoints given; give its checkpoint "
                               "too, or benchmark it in a run of its own")
        refs.append(match[0] if match else fallback)
    return refs


def _shared_default(*parts: str) -> Path | None:
    """``parts`` under $FER_EDGE_HOME or the shared folder (:func:`sweep_detect.shared`: $FER_EDGE_SHARED or, as
    for the tests, ``shared`` beside the checkout); None when neither has it."""
    from .sweep_detect import shared

    for base in (os.environ.get("FER_EDGE_HOME"), shared()):
        if base and Path(base, *parts).exists():
            return Path(base, *parts)
    return None


def _backgrounds_note(media: Path | None, n: int) -> str:
    """What the pasted faces were pasted on, for the report (the recall depends on it)."""
    if media and n and any(media.glob("voc_*.jpg")):
        return f"{n} blurred photos ({media}/voc_*.jpg)"
    return "one plain gray frame (no media/voc_*.jpg found: set FER_EDGE_SHARED)"


def run_benchmark(models: list[str], checkpoint: list[str] | str | None = None, data: str | None = None,
                  videos: list[str] | None = None, out: str = "benchmark-results", threads: int | None = None,
                  quick: bool = False, rounds: int | None = None, command: str | None = None, log=None,
                  peer_fer: str | None = None, loop_only: bool = False, loop_threads: list[int] | None = None,
                  loop_rounds: int | None = None, loop_frames: int | None = None) -> dict[str, Any]:
    from fer_edge.evaluate import predict_faces
    from fer_edge.machine import machine_summary
    from fer_edge.metrics import confusion_from_labels, metrics_from_confusion

    from .e2e import classify_matches, compare_loops, detected_crops, paste_backgrounds, paste_faces
    from .pareto import pareto_front, plot_tradeoff
    from .peers import load_fer_peer
    from .timing import interleaved_latency, throughput

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    subjects = load_subjects(models, checkpoint, threads)
    refs = references(subjects)  # before any measuring: a model without its checkpoint is refused at once
    peer = load_fer_peer(peer_fer, subjects[0].classifier.classes, threads, log)
    if threads and checkpoint:
        import torch

        torch.set_num_threads(threads)
    data_path = Path(data) if data else _shared_default("datasets", "fer2013", "val")
    if data_path is None:
        raise FerEdgeError("give --data: a labelled ImageFolder split (e.g. fer2013/val) to measure accuracy on")
    if videos is None:
        found = _shared_default("media")
        videos = sorted(str(p) for p in found.glob("video_*.mp4")) if found else []
    for v in videos:
        if not Path(v).is_file():
            raise FerEdgeError(f"video {v} does not exist")
    out_dir = Path(out).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    rounds = rounds or (3 if quick else 10)
    calls = 10 if quick else 50
    report: dict[str, Any] = {"command": command, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(
        timespec="seconds"), "quick": quick, "machine": machine_summary(threads), "loop_only": loop_only}
    pi = pi_estimate_inputs(report["machine"])
    if pi:
        report["pi_estimate"] = pi
        log("\n".join(pi))
    if loop_only:
        return _loop_report(report, subjects, ds_path=data_path, videos=videos, out_dir=out_dir, threads=threads,
                            quick=quick, log=log, loop_threads=loop_threads, loop_rounds=loop_rounds,
                            loop_frames=loop_frames)

    # --- accuracy on the labelled split --------------------------------------------------------------
    from fer_edge.data import resolve_eval_data

    meta = subjects[0].classifier.meta
    ds = resolve_eval_data(str(data_path), tuple(meta.classes), None, size=None, log=log,
                           mixed_size=tuple(meta.input_size))
    if quick and len(ds) > 300:
        ds = ds.subset(np.sort(np.random.default_rng(0).permutation(len(ds))[:300]))
    log(f"[1/5] accuracy on {len(ds)} faces of {ds.source}")
    preds, rows = {}, []
    for s in subjects:
        probs = predict_faces(s.classifier, ds.images)
        preds[s.label] = probs.argmax(1)
        m = metrics_from_confusion(confusion_from_labels(ds.labels, preds[s.label], len(meta.classes)), meta.classes)
        size = sum(p.stat().st_size for p in _files(s)) / 1e6
        rows.append({"label": s.label, "file": str(s.path), "backend": s.backend, "precision": s.precision,
                     "size_mb": round(size, 3), "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                     "per_class_f1": {c: v["f1"] for c, v in m["per_class"].items()}})
        log(f"  {s.label}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}")
    peer_rows = []
    if peer is not None:
        m = metrics_from_confusion(confusion_from_labels(ds.labels, peer.predict_faces(ds.images).argmax(1),
                                                         len(meta.classes)), meta.classes)
        peer_rows.append({"label": peer.label, "file": str(peer.path), "backend": peer.backend, "peer": True,
                          "precision": peer.precision, "size_mb": round(peer.path.stat().st_size / 1e6, 3),
                          "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "fp32_reference": None,
                          "agreement_with_fp32": None, "speedup_vs_pytorch": None,
                          "per_class_f1": {c: v["f1"] for c, v in m["per_class"].items()}})
        log(f"  {peer.label}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}")
    for r, ref in zip(rows, refs):
        r["fp32_reference"] = ref.label
        r["agreement_with_fp32"] = float((preds[r["label"]] == preds[ref.label]).mean())
    report["accuracy_data"] = {"source": ds.source, "faces": len(ds),
                               "fp32_reference": sorted({ref.label for ref in refs})}

    # --- classifier latency (interleaved) and throughput ------------------------------------------------
    log(f"[2/5] classifier latency at batch 1: {rounds} interleaved rounds of {calls} calls")
    from fer_edge.runtime.preprocess import normalized_faces

    # each model gets faces at its own input size and channel count
    xs = [normalized_faces(s.classifier.meta, ds.images[:256]) for s in subjects]
    peer_x = [peer.inputs(ds.images[:256])] if peer is not None else []
    lat = interleaved_latency([s.classifier.predict for s in subjects] + ([peer.predict] if peer else []),
                              [x[:1] for x in xs + peer_x], rounds, calls)
    for r, t in zip(rows + peer_rows, lat):
        r["latency_ms"] = float(np.median(t) * 1e3)
        r["latency_p90_ms"] = float(np.percentile(t, 90) * 1e3)
        r["faces_per_s_batch1"] = 1e3 / r["latency_ms"]
    for r, ref in zip(rows, refs):  # each artifact against the PyTorch eager run of its own checkpoint
        torch_ms = rows[subjects.index(ref)]["latency_ms"] if ref.is_torch else None
        r["speedup_vs_pytorch"] = (torch_ms / r["latency_ms"]) if torch_ms else None
    log("[3/5] throughput at batch 1, 8, 32, 64")
    seconds = 0.2 if quick else 1.0
    predicts = [s.classifier.predict for s in subjects] + ([peer.predict] if peer else [])
    for predict, r, x in zip(predicts, rows + peer_rows, xs + peer_x):
        tp = {b: throughput(predict, x, b, seconds) for b in (1, 8, 32, 64)}
        best = max(tp, key=tp.get)
        r["throughput_faces_per_s"] = {str(b): v for b, v in tp.items()}
        r["best_batch"], r["best_throughput_faces_per_s"] = best, tp[best]
        log(f"  {r['label']}: {r['latency_ms']:.3f} ms/face at batch 1, {tp[best]:.0f} faces/s at batch {best}")
    if peer_rows:  # every row against fer's, as ratios from this run
        fer = peer_rows[0]
        for r in rows + peer_rows:
            r["vs_fer"] = {"accuracy_points": 100 * (r["accuracy"] - fer["accuracy"]),
                           "macro_f1_points": 100 * (r["macro_f1"] - fer["macro_f1"]),
                           "latency_ratio": r["latency_ms"] / fer["latency_ms"]}
    report["classifiers"] = rows
    report["peers"] = peer_rows

    # --- detectors and the end-to-end loop -----------------------------------------------------------------
    log("[4/5] face detectors and the end-to-end loop (today's loop against the new defaults)")
    runtime_subjects = [s for s in subjects if not s.is_torch]
    report["detectors"] = _detectors(videos, quick, threads)
    report["end_to_end"] = []
    for s in runtime_subjects[: 1 if quick else None]:
        for e in compare_loops(videos[: 1 if quick else None], str(s.path), loop_threads or [threads],
                               loop_rounds or 1, loop_frames or (60 if quick else None), log):
            report["end_to_end"].append({"model": s.label, **e})

    # --- detection + crop accuracy on pasted faces --------------------------------------------------------
    log("[5/5] detection and crop accuracy on labelled faces pasted into frames")

    media = _shared_default("media")
    bgs = paste_backgrounds(media)
    report["pasted_backgrounds"] = _backgrounds_note(media, len(bgs))
    log(f"  pasted on {report['pasted_backgrounds']}")
    n_faces = 60 if quick else 2400  # >= 2,000 detected faces keep the gap's standard error under 1 point
    pick = np.sort(np.random.default_rng(1).permutation(len(ds))[: min(n_faces, len(ds))])
    faces, labels = ds.images[pick], ds.labels[pick]
    frames, truth = paste_faces(faces, bgs, per_frame=4, seed=1)
    pasted = []
    for d, size in PASTED_DETECTORS:
        try:
            matches, total = detected_crops(frames, truth, d, max_side=size)
        except FerEdgeError as e:  # a detector whose files are missing: its row says so, the report is kept
            pasted.append({"detector": _det_name(d, size), "error": str(e), "models": []})
            log(f"  {_det_name(d, size)}: skipped: {e}")
            continue
        face_idx = np.asarray([m[2] for m in matches], np.int64)
        entry = {"detector": _det_name(d, size), "faces": total, "frames": len(frames), "detected": len(matches),
                 "recall": len(matches) / max(total, 1), "models": []}
        first_hits = None
        for s in runtime_subjects or subjects:
            pred = classify_matches(s.classifier, frames, matches) if matches else np.zeros(0, np.int64)
            crop_pred = predict_faces(s.classifier, faces[face_idx]).argmax(1) if len(face_idx) else pred
            hit_frames = (pred == labels[face_idx]).astype(np.float64)
            hit_crops = (crop_pred == labels[face_idx]).astype(np.float64)
            n = max(len(pred), 1)
            # paired: the same faces both ways, so the gap's standard error comes from the per-face differences
            gap_se = float((hit_crops - hit_frames).std(ddof=1) / np.sqrt(n)) if len(pred) > 1 else float("nan")
            entry["models"].append({"model": s.label, "accuracy_detected_in_frames": float(hit_frames.mean())
                                    if len(pred) else 0.0, "accuracy_same_faces_as_crops": float(hit_crops.mean())
                                    if len(pred) else 0.0, "gap": float(hit_crops.mean() - hit_frames.mean())
                                    if len(pred) else 0.0, "gap_se": gap_se, "faces_compared": len(pred)})
            if first_hits is None:
                first_hits, first_label = hit_frames, s.label
            else:  # found faces, paired with the first model's: which faces each gets right that the other misses
                entry["models"][-1]["paired_vs_first"] = paired_counts(hit_frames, first_hits, first_label)
        pasted.append(entry)
        log(f"  {entry['detector']}: recall {entry['recall']:.3f} on {total} pasted faces")
    report["pasted_faces"] = pasted

    # --- outputs ------------------------------------------------------------------------------------------
    every = rows + peer_rows
    front = pareto_front([(r["faces_per_s_batch1"], r["accuracy"]) for r in every])
    for i, r in enumerate(every):
        r["pareto"] = i in front
    report["pareto_front"] = [every[i]["label"] for i in front]
    plot = None
    try:
        plot = plot_tradeoff([r["label"].split(" (")[0] + f" ({Path(r['file']).name})" for r in every],
                             [r["faces_per_s_batch1"] for r in every], [r["accuracy"] for r in every],
                             out_dir / "tradeoff.png",
                             f"fer-edge accuracy vs speed on {report['machine']['cpu']} "
                             f"({report['machine']['threads']} threads)")
    except ImportError:
        log("fer-edge: matplotlib is not installed: no plot (pip install matplotlib)")
    report["plot"] = str(plot) if plot else None
    (out_dir / "benchmark.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (out_dir / "benchmark.md").write_text(markdown(report))
    log(f"fer-edge: wrote {out_dir / 'benchmark.md'}, {out_dir / 'benchmark.json'}" + (f", {plot}" if plot else ""))
    return report


PASTED_DETECTORS = (("yunet", -1), ("yunet", 640), ("res10", -1))  # -1: the detector's default size
# (detector, size, YuNet engine); the OpenCV engine is today's (before issue 16) YuNet
DETECTOR_SIZES = (("yunet", -1, "onnxruntime"), ("yunet", -1, "opencv"), ("yunet", 640, "onnxruntime"),
                  ("yunet", 640, "opencv"), ("res10", -1, None))


def _det_name(d: str, size: int, engine: str | None = None) -> str:
    from fer_edge.runtime.detectors import Res10Detector, YuNetDetector

    default = {"yunet": YuNetDetector.default_side, "res10": Res10Detector.default_side}[d]
    name = f"{d} {default} px (default)" if size == -1 else f"{d} {size} px"
    return name + (f" in {'OpenCV' if engine == 'opencv' else 'ONNX Runtime'}" if engine else "")


def _detectors(videos: list[str], quick: bool, threads: int | None = None) -> dict[str, Any]:
    from .e2e import detector_latency, read_frames

    detectors = {}
    for v in videos[: 1 if quick else None]:
        frames = read_frames(v, 30 if quick else 120)
        for d, size, engine in DETECTOR_SIZES:
            name = _det_name(d, size, engine)
            key = f"{name} @ {Path(v).name}"
            try:
                detectors[key] = {"detector": name, "video": v,
                                  **detector_latency(d, frames, 1 if quick else 3, max_side=size, engine=engine,
                                                     threads=threads)}
            except FerEdgeError as e:
                detectors[key] = {"detector": name, "video": v, "error": str(e)}
    return detectors


def _loop_report(report: dict[str, Any], subjects, ds_path, videos, out_dir: Path, threads, quick, log,
                 loop_threads, loop_rounds, loop_frames) -> dict[str, Any]:
    """``--loop-only``: detectors, today's loop against the new defaults, and pasted-face recall of both sizes."""
    from .e2e import compare_loops, detected_crops, paste_backgrounds, paste_faces

    runtime_subjects = [s for s in subjects if not s.is_torch]
    if not runtime_subjects:
        raise FerEdgeError("--loop-only needs an exported model (.onnx or .xml)")
    log("[1/3] face detectors")
    report["detectors"] = _detectors(videos, quick, threads)
    log("[2/3] the end-to-end loop: today's loop against the new defaults, alternating round by round")
    report["end_to_end"] = []
    for s in runtime_subjects[: 1 if quick else None]:
        for e in compare_loops(videos[: 1 if quick else None], str(s.path), loop_threads or [threads],
                               loop_rounds or (1 if quick else 2), loop_frames or (60 if quick else None), log):
            report["end_to_end"].append({"model": s.label, **e})
    log("[3/3] detection recall on labelled faces pasted into frames")

    from fer_edge.data import resolve_eval_data

    ds = resolve_eval_data(str(ds_path), tuple(subjects[0].classifier.classes), None, size=None, log=log)
    media = _shared_default("media")
    bgs = paste_backgrounds(media)
    pick = np.sort(np.random.default_rng(1).permutation(len(ds))[: 60 if quick else 600])
    frames, truth = paste_faces(ds.images[pick], bgs, per_frame=4, seed=1)
    report["pasted_faces"] = []
    for d, size in PASTED_DETECTORS:
        try:
            matches, total = detected_crops(frames, truth, d, max_side=size)
        except FerEdgeError as e:  # a detector whose files are missing: its row says so, the report is kept
            report["pasted_faces"].append({"detector": _det_name(d, size), "error": str(e), "models": []})
            log(f"  {_det_name(d, size)}: skipped: {e}")
            continue
        report["pasted_faces"].append({"detector": _det_name(d, size), "faces": total, "frames": len(frames),
                                       "detected": len(matches), "recall": len(matches) / max(total, 1),
                                       "models": []})
        log(f"  {_det_name(d, size)}: recall {len(matches) / max(total, 1):.3f} on {total} pasted faces")
    (out_dir / "benchmark.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (out_dir / "benchmark.md").write_text(markdown(report))
    log(f"fer-edge: wrote {out_dir / 'benchmark.md'}, {out_dir / 'benchmark.json'}")
    return report


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    title = "# fer-edge benchmark" + (" (quick)" if r["quick"] else "")
    title += " (run loop only)" if r.get("loop_only") else ""
    lines = [title,
             "", f"- command: `{r['command']}`" if r.get("command") else "- command: (API call)",
             f"- machine: {m['cpu']} ({m['arch']}), {m['cores']} cores, {m['threads']} threads; ISA: {m['isa']}"
             + (f" (absent: {m['isa_absent']})" if m.get("isa_absent") else "")
             + (f"; {m['isa_note']}" if m.get("isa_note") else ""),
             f"- software: {m['os']}, Python {m['python']}, "
             + ", ".join(f"{k} {v}" for k, v in m["libraries"].items()),
             f"- date: {r['created']}"]
    if "classifiers" in r:
        lines += [f"- accuracy on {r['accuracy_data']['faces']} faces of `{r['accuracy_data']['source']}`; top-1 "
                  "agreement and speed-up of each model against " + _refs_text(r['accuracy_data']['fp32_reference']),
                  "", "## Classifiers", "",
                  "| model | size MB | accuracy | macro-F1 | agreement with FP32 | ms/face batch 1 (median) | p90 ms | "
                  "speed-up vs PyTorch | best faces/s (batch) | Pareto | accuracy vs fer | macro-F1 vs fer | "
                  "ms/face / fer's |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: | ---: | ---: | ---: |"]
        for c in r["classifiers"] + r.get("peers", []):
            sp = f"{c['speedup_vs_pytorch']:.1f}x" if c["speedup_vs_pytorch"] else "n/a"
            agree = "n/a" if c["agreement_with_fp32"] is None else f"{c['agreement_with_fp32']:.4f}"
            vs = c.get("vs_fer")
            vs_cells = (f"{vs['accuracy_points']:+.2f} pts | {vs['macro_f1_points']:+.2f} pts | "
                        f"{vs['latency_ratio']:.2f}x" if vs else "n/a | n/a | n/a")
            lines.append(f"| {c['label']} | {c['size_mb']:.2f} | {c['accuracy']:.4f} | {c['macro_f1']:.4f} | "
                         f"{agree} | {c['latency_ms']:.3f} | {c['latency_p90_ms']:.3f} | {sp} | "
                         f"{c['best_throughput_faces_per_s']:.0f} ({c['best_batch']}) | "
                         f"{'yes' if c['pareto'] else ''} | {vs_cells} |")
        lines += ["", "Latency: interleaved rounds, every model in every round; speed-ups are ratios from this one run."
                  + (" The fer row is the peer (its own preprocessing, one face per call); the last three columns "
                     "compare every row with it." if r.get("peers") else " No fer peer row (see --peer-fer).")]
    lines += _video_sections(r) if r["detectors"] or r["end_to_end"] else \
        ["", "## Face detectors and the end-to-end loop", "", "Not measured: no videos (`--videos` named none)."]
    lines += ["", "## Detection on labelled faces pasted into frames", ""]
    if r.get("pasted_backgrounds"):
        lines += [f"Backgrounds: {r['pasted_backgrounds']}.", ""]
    if any(p["models"] for p in r["pasted_faces"]):
        lines += ["Last column: of the found faces, how many this model labels right and the detector's first model "
                  "wrong, and the reverse, with McNemar's exact p (the same faces, so this compares two models better "
                  "than their accuracies' standard errors do).", "",
                  "| detector | faces | recall | model | accuracy of detected faces | accuracy of the same faces as "
                  "crops | gap (± standard error) | right only here / only in the first row |",
                  "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
        for p in r["pasted_faces"]:
            if "error" in p:
                lines.append(f"| {p['detector']} | | | | {p['error']} | | | |")
            for m2 in p["models"]:
                pv = m2.get("paired_vs_first")
                paired = (f"{pv['only_this']} / {pv['only_first']} (p = {pv['mcnemar_p']:.3f})" if pv else "")
                lines.append(f"| {p['detector']} | {p['faces']} | {p['recall']:.3f} | {m2['model']} | "
                             f"{m2['accuracy_detected_in_frames']:.4f} | {m2['accuracy_same_faces_as_crops']:.4f} | "
                             f"{m2['gap']:+.4f} (± {m2.get('gap_se', float('nan')):.4f}) | {paired} |")
    else:
        lines += ["| detector | faces | detected | recall |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {p['detector']} | | | {p['error']} |" if "error" in p else
                  f"| {p['detector']} | {p['faces']} | {p['detected']} | {p['recall']:.3f} |"
                  for p in r["pasted_faces"]]
    if r.get("plot"):
        lines += ["", f"![accuracy vs speed]({Path(r['plot']).name})"]
    if r.get("pi_estimate"):
        lines += ["", "## Raspberry Pi estimate inputs (compare with the measured rows above)", "", "```",
                  *r["pi_estimate"], "```"]
    return "\n".join(lines) + "\n"



def _video_sections(r: dict[str, Any]) -> list[str]:
    """The face-detector and end-to-end loop tables of :func:`markdown` (measured on the videos)."""
    lines = ["", "## Face detectors (ms per frame)", "", "| detector | video | frame | median ms | p90 ms |",
              "| --- | --- | --- | ---: | ---: |"]
    for d in r["detectors"].values():
        if "error" in d:
            lines.append(f"| {d['detector']} | {Path(d['video']).name} | | {d['error']} | |")
        else:
            size = f"{d['frame_size'][1]}x{d['frame_size'][0]}"
            lines.append(f"| {d['detector']} | {Path(d['video']).name} | {size} | {d['median_ms']:.2f} | "
                         f"{d['p90_ms']:.2f} |")
    lines += ["", "## End to end: today's loop against the new defaults", "",
              "The real `fer-edge run` loop (decode, detect, crop, classify, smooth, draw, JSON Lines and an annotated "
              "video), each run in a fresh process, old and new alternating round by round. Per-frame ms: `decode` and "
              "`output` run in threads of their own in the new loop (overlapped: their busy time, not on the critical "
              "path); with 2 or more threads detection runs in a thread of its own too, one frame ahead of "
              "classification, each stage on its share of the threads (`detect` is then that thread's busy time). "
              "`overhead` is the frame time spent neither detecting nor classifying (decode + track + output when "
              "serial; waiting for a frame + track + drawing and handing over when threaded; track + drawing and "
              "handing over + the detect thread's wait for decoded frames when detection has its own thread).", "",
              "| model | video | threads | loop | flags | frames | fps | speed-up | faces/frame | full detections | "
              "decode ms | detect ms | classify ms | track ms | output ms | overhead ms (share) | peak RSS MB |",
              "| --- | --- | ---: | --- | --- " + "| ---: " * 12 + "|"]
    for e in r["end_to_end"]:
        for name in ("old", "new"):
            x = e[name]
            s = x["stage_ms"]
            sp = f"{e['speedup']:.2f}x ({', '.join(f'{v:.2f}' for v in e['speedups'])})" if name == "new" else "1.00x"
            lines.append(f"| {e['model']} | {Path(e['video']).name} | {e['threads'] or 'all'} | {name} | "
                         f"{x['flags']} | "
                         f"{x['frames']} | {x['fps']:.1f} | {sp} | {x['faces_per_frame']:.2f} | "
                         f"{x['full_detections']} | {s['decode']:.2f} | {s['detect']:.2f} | {s['classify']:.2f} | "
                         f"{s['track']:.2f} | {s['output']:.2f} | {x['overhead_ms']:.2f} "
                         f"({100 * x['overhead_share']:.1f}%) | {x['peak_rss_mb']:.0f} |")
    lines += ["", "Speed-up: median over rounds of new fps / old fps within the round (each round's ratio in "
              "brackets)."]
    return lines

def pi_estimate_inputs(machine: dict[str, Any]) -> list[str] | None:
    """On an aarch64 machine, the Raspberry Pi estimate's inputs (benchmarks/pi_estimate.py), to be checked against
    what this run measures; None elsewhere."""
    if str(machine.get("arch", "")).lower() not in ("aarch64", "arm64"):
        return None
    from .pi_estimate import estimate_lines

    return [f"this machine: {machine.get('cpu')}; ISA {machine.get('isa')} (absent: {machine.get('isa_absent')})",
            *estimate_lines()]


def _refs_text(refs: list[str]) -> str:
    if len(refs) == 1:
        return refs[0]
    return "the PyTorch eager FP32 run of the checkpoint it was exported from (" + ", ".join(refs) + ")"


def command_line() -> str:
    return "fer-edge " + " ".join(shlex.quote(a) for a in sys.argv[1:])
