"""The measurements behind `fer-edge run`'s detection defaults (issue 16).

    python -m fer_edge.benchmarks.sweep_detect --part size  --out benchmarks/results/detect-sweep
    python -m fer_edge.benchmarks.sweep_detect --part every --size 320 --out benchmarks/results/detect-sweep
    python -m fer_edge.benchmarks.sweep_detect --part hold  --size 320 --every 3 --carry roi --out ...

* ``size``: YuNet at each longest side: recall of the VOC face boxes (IoU >= 0.3), faces found in the counted
  photos, recall of labelled FER2013 faces pasted into frames (as ``fer-edge benchmark`` pastes them), faces per
  frame on the shared videos and recall of the 640 px boxes there, and ms per 640x360 frame (interleaved).
* ``every``: ``--detect-every N`` with each carry mode on every frame of both videos: recall of the every-frame
  boxes (same detect size) and of the 640 px every-frame boxes, label agreement with every-frame detection, ms of
  detection (full + carried) per frame, and how often a lost track forced a full detection.
* ``hold``: label hysteresis (margin, frames) replayed on the smoothed probabilities of the every-frame run at
  640 px (today's loop) and of the chosen configuration: label switches per track-second and agreement.
* ``threshold``: YuNet at each (``--sizes``, ``--scores``): the size part's recall plus the boxes that match no
  labelled face, against 640 px at the default score.
* ``floor``: how far labels move between every-frame runs that differ only in detect size (+-16 px): the label
  agreement no carry scheme can beat.

Data: ``$FER_EDGE_SHARED`` (default ../shared): media/ and datasets/fer2013/val. Writes ``<part>.json`` and
``<part>.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

from fer_edge.runtime.tracker import Hysteresis, Track, iou_matrix

SIZES = (160, 224, 256, 288, 320, 384, 480, 640)
VIDEOS = ("video_hamilton_whitehouse_9s.mp4", "video_talking_woman_15s.mp4")


def shared() -> Path:
    return Path(os.environ.get("FER_EDGE_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


def voc_boxes(media: Path) -> dict[str, np.ndarray]:
    out = {}
    for im in ET.parse(media / "voc_faces_train.xml").getroot().iter("image"):
        out[im.get("file")] = np.array([[float(b.get("left")), float(b.get("top")), float(b.get("width")),
                                         float(b.get("height"))] for b in im.iter("box")], np.float32)
    return out


def matched(truth: np.ndarray, found: np.ndarray, iou_min: float = 0.3) -> int:
    """How many ``truth`` boxes a distinct ``found`` box covers at IoU >= iou_min (greedy, best first)."""
    if len(truth) == 0 or len(found) == 0:
        return 0
    iou = iou_matrix(np.asarray(truth[:, :4], np.float32), np.asarray(found[:, :4], np.float32))
    used_t, used_f, n = set(), set(), 0
    for flat in np.argsort(-iou.ravel()):
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] < iou_min:
            break
        if i in used_t or j in used_f:
            continue
        used_t.add(i)
        used_f.add(j)
        n += 1
    return n


def video_frames(path: Path, step: int = 1) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames, i = [], 0
    while True:
        ok, f = cap.read()
        if not ok:
            break
        if i % step == 0:
            frames.append(f)
        i += 1
    cap.release()
    return frames


def labelled_faces(n_pasted: int) -> dict:
    """The labelled detection data: VOC face boxes and counted photos (name -> (truth, image)), and ``n_pasted``
    FER2013 val faces pasted into VOC frames as ``fer-edge benchmark`` pastes them (frames, boxes per frame)."""
    from fer_edge.benchmarks.e2e import paste_backgrounds, paste_faces
    from fer_edge.classes import EMOTIONS
    from fer_edge.data import resolve_eval_data

    media = shared() / "media"
    manifest = json.loads((media / "manifest.json").read_text())["images"]
    voc = {f: (b, cv2.imread(str(media / f))) for f, b in voc_boxes(media).items()}
    photos = {f: (m["faces"], cv2.imread(str(media / f))) for f, m in manifest.items() if "boxes" not in m}
    ds = resolve_eval_data(str(shared() / "datasets" / "fer2013" / "val"), EMOTIONS, None, size=None,
                           log=lambda m: None)
    pick = np.sort(np.random.default_rng(1).permutation(len(ds))[:n_pasted])
    frames, truth = paste_faces(ds.images[pick], paste_backgrounds(media), per_frame=4, seed=1)
    return {"voc": voc, "photos": photos, "pasted": (frames, truth)}


def recall_on(detector, data: dict) -> dict:
    """Boxes found (and boxes matching nothing, or over the count) on each kind of :func:`labelled_faces`."""
    r = {}
    found = [(b, detector.detect(im)) for b, im in data["voc"].values()]
    r["voc_found"], r["voc_boxes"] = sum(matched(b, f) for b, f in found), sum(len(b) for b, _ in found)
    r["voc_unmatched"] = sum(len(f) - matched(b, f) for b, f in found)
    counts = [(n, len(detector.detect(im))) for n, im in data["photos"].values()]
    r["photos_found"], r["photos_faces"] = sum(min(k, n) for n, k in counts), sum(n for n, _ in counts)
    r["photos_over"] = sum(max(0, k - n) for n, k in counts)
    frames, truth = data["pasted"]
    got = [(t, detector.detect(f)) for f, t in zip(frames, truth)]
    r["pasted_found"], r["pasted_faces"] = sum(matched(t, b) for t, b in got), sum(len(t) for t in truth)
    r["pasted_unmatched"] = sum(len(b) - matched(t, b) for t, b in got)
    return r


def part_size(sizes, video_step: int, n_pasted: int) -> dict:
    """YuNet at each longest side: :func:`recall_on` the labelled data, and on the videos faces per frame, recall
    of the largest size's boxes and ms per frame (every size on each frame in turn)."""
    from fer_edge.runtime.detectors import create_detector

    media = shared() / "media"
    dets = {s: create_detector("yunet", max_side=s) for s in sizes}
    data = labelled_faces(n_pasted)
    res = {s: {"size": s, **recall_on(d, data)} for s, d in dets.items()}
    for v in VIDEOS:
        frames = video_frames(media / v, video_step)
        times = {s: [] for s in sizes}
        boxes = {s: [] for s in sizes}
        for f in frames:
            for s, d in dets.items():
                t = time.perf_counter()
                boxes[s].append(d.detect(f))
                times[s].append(time.perf_counter() - t)
        ref = boxes[max(sizes)]
        n_ref = sum(len(b) for b in ref)
        for s in sizes:
            res[s][v] = {"frames": len(frames), "faces_per_frame": sum(len(b) for b in boxes[s]) / len(frames),
                         "recall_of_640": sum(matched(r, b) for r, b in zip(ref, boxes[s])) / max(n_ref, 1),
                         "median_ms": 1e3 * float(np.median(times[s])),
                         "frame": f"{frames[0].shape[1]}x{frames[0].shape[0]}"}
    return {"sizes": [res[s] for s in sizes]}


def part_threshold(configs: list[tuple[int, float]], n_pasted: int, video_step: int) -> dict:
    """Recall and extra boxes of YuNet at each (max side, score threshold), against 640 px at the default score:
    :func:`recall_on` the labelled data, and the boxes of the shared videos."""
    from fer_edge.runtime.detectors import create_detector

    media = shared() / "media"
    dets = {c: create_detector("yunet", max_side=c[0], score_threshold=c[1]) for c in configs}
    ref = create_detector("yunet", max_side=640)
    data = labelled_faces(n_pasted)
    videos = {v: video_frames(media / v, video_step) for v in VIDEOS}
    ref_boxes = {v: [ref.detect(f) for f in fr] for v, fr in videos.items()}
    res = []
    for c, d in dets.items():
        r = {"size": c[0], "score": c[1], **recall_on(d, data)}
        for v, fr in videos.items():
            boxes = [d.detect(f) for f in fr]
            hit = sum(matched(rb, b) for rb, b in zip(ref_boxes[v], boxes))
            n_ref = sum(len(b) for b in ref_boxes[v])
            r[v] = {"frames": len(fr), "faces_per_frame": sum(len(b) for b in boxes) / len(fr),
                    "recall_of_640": hit / max(n_ref, 1),
                    "not_in_640_per_frame": (sum(len(b) for b in boxes) - hit) / len(fr)}
        print(r, flush=True)
        res.append(r)
    return {"reference": f"yunet 640 px, score {ref.score_threshold:.2f}", "configs": res}


def run_video(path: Path, model: str, size: int, every: int, carry: str, hold: Hysteresis | None,
              threads: int, classify_every: int = 1) -> dict:
    """Every frame of ``path`` through EmotionPipeline; per frame the faces (box, track, label, smoothed probs)."""
    from fer_edge.runtime.classifier import load_classifier
    from fer_edge.runtime.detectors import create_detector
    from fer_edge.runtime.pipeline import EmotionPipeline
    from fer_edge.runtime.tracker import FaceTracker

    mode, roi, keep = (carry.split(":") + ["", ""])[:3]  # "roi", "roi:64", "roi:96:0.5", "motion"
    pipe = EmotionPipeline(create_detector("yunet", max_side=size, threads=threads),
                           load_classifier(model, threads=threads),
                           tracker=FaceTracker(hysteresis=hold), detect_every=every, carry=mode,
                           roi_size=int(roi or 96), keep_score=float(keep) if keep else None,
                           classify_every=classify_every)
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    out, buf = [], None
    while True:
        ok, buf = cap.read(buf)
        if not ok:
            break
        faces = pipe.process(buf)
        out.append([(f.box, f.track, f.label, np.array(list(f.probs.values()), np.float32), f.box_from)
                    for f in faces])
    cap.release()
    n = len(out)
    return {"frames": out, "fps": fps, "detect_ms": 1e3 * pipe.timings["detect"] / n,
            "classify_ms": 1e3 * pipe.timings["classify"] / n, "full_detections": pipe.full_detections,
            "classified_share": pipe.classified / max(sum(len(f) for f in out), 1)}


def compare(ref: list, run: list) -> tuple[float, float, int]:
    """Recall of ``ref``'s face boxes in ``run`` (IoU >= 0.3, per frame) and label agreement on the matched ones."""
    found = agree = total = 0
    for rf, f in zip(ref, run):
        total += len(rf)
        if not rf or not f:
            continue
        a = np.array([x[0] for x in rf], np.float32)
        b = np.array([x[0] for x in f], np.float32)
        iou = iou_matrix(a, b)
        used = set()
        for i in np.argsort(-iou.max(axis=1)):
            j = int(iou[i].argmax())
            if iou[i, j] >= 0.3 and j not in used:
                used.add(j)
                found += 1
                agree += rf[i][2] == f[j][2]
    return found / max(total, 1), agree / max(found, 1), total


def switches(run: dict, classes: tuple[str, ...], hold: Hysteresis | None = None) -> tuple[float, dict]:
    """Label switches per track-second; with ``hold`` the labels are replayed through that hysteresis on the
    recorded smoothed probabilities (exact: hysteresis changes labels only). Also the replayed labels."""
    tracks: dict[int, Track] = {}
    last: dict[int, str] = {}
    n_sw, n_frames = 0, 0
    labels = []
    for faces in run["frames"]:
        row = []
        for box, tid, label, probs, _ in faces:
            if hold is not None:
                t = tracks.setdefault(tid, Track(tid, np.zeros(4, np.float32), probs))
                hold.step(t, probs)
                label = classes[t.label]
            if tid in last and last[tid] != label:
                n_sw += 1
            last[tid] = label
            n_frames += 1
            row.append((box, tid, label, probs, _))
        labels.append(row)
    return n_sw / max(n_frames / run["fps"], 1e-9), {"frames": labels}


def md_table(head: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "| " + " | ".join("---" if i == 0 else "---:" for i in range(len(head)))
            + " |"] + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def _pct(found: int, total: int) -> str:
    return f"{found}/{total} ({100 * found / total:.1f}%)"


def report_size(args, model: str) -> tuple[dict, list[str]]:
    r = part_size(sorted(args.sizes), args.video_step, args.pasted or 400)
    rows = []
    for s in r["sizes"]:
        h, w = s[VIDEOS[0]], s[VIDEOS[1]]
        rows.append([s["size"], f"{s['voc_found']}/{s['voc_boxes']}", f"{s['photos_found']}/{s['photos_faces']}",
                     _pct(s["pasted_found"], s["pasted_faces"]),
                     f"{h['faces_per_frame']:.2f}", f"{100 * h['recall_of_640']:.1f}%", f"{h['median_ms']:.1f}",
                     f"{w['faces_per_frame']:.2f}", f"{100 * w['recall_of_640']:.1f}%", f"{w['median_ms']:.1f}"])
    return r, md_table(["max side", "VOC boxes found", "counted photos: faces found", "pasted faces found",
                        "hamilton faces/frame", "hamilton recall of 640 px boxes", "hamilton ms/frame",
                        "woman faces/frame", "woman recall of 640 px boxes", "woman ms/frame"], rows)


def report_threshold(args, model: str) -> tuple[dict, list[str]]:
    r = part_threshold([(z, sc) for z in sorted(args.sizes) for sc in args.scores], args.pasted or 1200,
                       args.video_step)
    rows = []
    for c in r["configs"]:
        h, w = c[VIDEOS[0]], c[VIDEOS[1]]
        rows.append([c["size"], f"{c['score']:.2f}", f"{c['voc_found']}/{c['voc_boxes']} (+{c['voc_unmatched']})",
                     f"{c['photos_found']}/{c['photos_faces']} (+{c['photos_over']})",
                     f"{_pct(c['pasted_found'], c['pasted_faces'])} (+{c['pasted_unmatched']})",
                     f"{h['faces_per_frame']:.2f}", f"{100 * h['recall_of_640']:.1f}%",
                     f"{h['not_in_640_per_frame']:.2f}", f"{w['faces_per_frame']:.2f}",
                     f"{100 * w['recall_of_640']:.1f}%", f"{w['not_in_640_per_frame']:.2f}"])
    lines = [f"Reference: {r['reference']} (today's default score). (+k): boxes that match no labelled face (VOC, "
             "pasted) or exceed the faces counted by eye (photos). Videos: every "
             f"{args.video_step}-th frame; 'not in 640' is boxes per frame that match no box of the reference.", ""]
    return r, lines + md_table(["max side", "score", "VOC boxes found (+unmatched)", "counted photos found (+over)",
                                "pasted faces found (+unmatched)", "hamilton faces/frame", "hamilton recall of 640 px",
                                "hamilton not in 640 /frame", "woman faces/frame", "woman recall of 640 px",
                                "woman not in 640 /frame"], rows)


def report_floor(args, model: str) -> tuple[dict, list[str]]:
    from fer_edge.runtime.classifier import load_classifier

    classes = load_classifier(model).classes
    media = shared() / "media"
    hold = Hysteresis(args.margins[0], args.hold_frames[0])
    rows, res = [], []
    for v in VIDEOS:
        runs = {(z, 1): run_video(media / v, model, z, 1, "roi", None, args.threads)
                for z in (args.size, args.size - 16, args.size + 16)}
        runs[(args.size, args.every[0])] = run_video(media / v, model, args.size, args.every[0], args.carry[0],
                                                     None, args.threads)
        base = switches(runs[(args.size, 1)], classes, hold)[1]["frames"]
        for (z, n), run in runs.items():
            if (z, n) == (args.size, 1):
                continue
            agree = compare(base, switches(run, classes, hold)[1]["frames"])[1]
            raw = compare(runs[(args.size, 1)]["frames"], run["frames"])[1]
            res.append({"video": v, "size": z, "every": n, "agreement": agree, "agreement_no_hysteresis": raw})
            rows.append([v, z, n, f"{100 * agree:.1f}%", f"{100 * raw:.1f}%"])
            print(rows[-1], flush=True)
    lines = [f"Label agreement (faces both runs found, IoU >= 0.3) with detection on every frame at {args.size} "
             f"px, hysteresis {hold.margin}/{hold.frames} on both sides (and without hysteresis: smoothed "
             "argmax). The other every-frame runs differ from it only in detect size: how far the labels move "
             "when the boxes move by a few pixels, the floor for any carry scheme.", ""]
    return {"runs": res}, lines + md_table(["video", "detect size", "detect every", "agreement",
                                            "agreement without hysteresis"], rows)


def report_every(args, model: str) -> tuple[dict, list[str]]:
    from fer_edge.runtime.classifier import load_classifier

    classes = load_classifier(model).classes
    media = shared() / "media"
    runs, rows = {}, []
    for v in VIDEOS:
        base640 = run_video(media / v, model, 640, 1, "roi", None, args.threads)
        base = run_video(media / v, model, args.size, 1, "roi", None, args.threads)
        for carry in args.carry:
            for n in args.every:
                r = base if n == 1 else run_video(media / v, model, args.size, n, carry, None, args.threads)
                rec, agree, total = compare(base["frames"], r["frames"])
                rec640, agree640, _ = compare(base640["frames"], r["frames"])
                fpf = sum(len(f) for f in r["frames"]) / len(r["frames"])
                row = {"video": v, "carry": carry, "every": n, "recall_of_every_frame": rec,
                       "label_agreement": agree, "recall_of_640": rec640, "label_agreement_640": agree640,
                       "faces_per_frame": fpf, "detect_ms": r["detect_ms"], "classify_ms": r["classify_ms"],
                       "full_detection_share": r["full_detections"] / len(r["frames"])}
                runs.setdefault(v, []).append(row)
                rows.append([v, carry, n, f"{fpf:.2f}", f"{100 * rec:.1f}%", f"{100 * agree:.1f}%",
                             f"{100 * rec640:.1f}%", f"{100 * agree640:.1f}%", f"{row['detect_ms']:.1f}",
                             f"{row['classify_ms']:.1f}", f"{100 * row['full_detection_share']:.0f}%"])
                print(rows[-1], flush=True)
    lines = [f"YuNet at {args.size} px; ms per frame measured inside this sweep (not interleaved: compare "
             "within a video only).", ""]
    return {"runs": runs, "classes": list(classes)}, lines + md_table(
        ["video", "carry", "detect every", "faces/frame", "recall of every-frame boxes",
         "label agreement with every-frame", "recall of 640 px every-frame boxes",
         "label agreement with 640 px every-frame", "detect ms/frame", "classify ms/frame",
         "frames with full detection"], rows)


def report_hold(args, model: str) -> tuple[dict, list[str]]:
    from fer_edge.runtime.classifier import load_classifier

    classes = load_classifier(model).classes
    media = shared() / "media"
    rows, res = [], []
    for v in VIDEOS:
        old = run_video(media / v, model, 640, 1, "roi", None, args.threads)
        same = run_video(media / v, model, args.size, 1, "roi", None, args.threads)
        base_sw, _ = switches(old, classes)
        for ce in args.classify_every:
            new = run_video(media / v, model, args.size, args.every[0], args.carry[0], None, args.threads, ce)
            for m in args.margins:
                for k in args.hold_frames:
                    hold = Hysteresis(m, k)
                    if hold.off and (m, k) != (0.0, 1):
                        continue
                    sw_old, lab_old = switches(old, classes, hold)
                    sw_same, lab_same = switches(same, classes, hold)
                    sw_new, lab_new = switches(new, classes, hold)
                    _, agree_today, _ = compare(old["frames"], lab_old["frames"])
                    _, agree_same, _ = compare(lab_same["frames"], lab_new["frames"])
                    _, agree_640, _ = compare(lab_old["frames"], lab_new["frames"])
                    res.append({"video": v, "classify_every": ce, "classified_share": new["classified_share"],
                                "margin": m, "frames": k, "switches_per_track_s_today": base_sw,
                                "switches_per_track_s_640_every_frame": sw_old,
                                "switches_per_track_s_every_frame": sw_same, "switches_per_track_s_new": sw_new,
                                "agreement_640_with_today": agree_today,
                                "agreement_new_with_every_frame_same_hold": agree_same,
                                "agreement_new_with_640_every_frame_same_hold": agree_640})
                    rows.append([v, ce, f"{100 * new['classified_share']:.0f}%", m, k, f"{base_sw:.3f}",
                                 f"{sw_old:.3f}", f"{sw_new:.3f}", f"{sw_new / base_sw:.2f}",
                                 f"{100 * agree_today:.1f}%", f"{100 * agree_same:.1f}%", f"{100 * agree_640:.1f}%"])
                    print(rows[-1], flush=True)
    lines = [f"'today': 640 px, every frame, smoothing 0.5, no hysteresis. 'new': {args.size} px, detect every "
             f"{args.every[0]}, carry {args.carry[0]}. Each hysteresis is replayed on the recorded smoothed "
             "probabilities of each run (exact: it changes labels only). Agreement: labels of the faces both "
             "runs found (IoU >= 0.3), same hysteresis on both sides.", ""]
    return {"runs": res}, lines + md_table(
        ["video", "classify every", "faces classified", "margin", "frames", "switches/track-s today",
         "switches/track-s 640 every frame with this hysteresis", "switches/track-s new", "new / today",
         "labels 640 with / without this hysteresis", "agreement new vs every frame (same size)",
         "agreement new vs 640 every frame"], rows)


PARTS = {"size": report_size, "every": report_every, "hold": report_hold, "threshold": report_threshold,
         "floor": report_floor}


def main() -> None:
    from fer_edge.machine import machine_summary
    from fer_edge.runtime.models import default_classifier_path

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=tuple(PARTS), required=True)
    ap.add_argument("--out", default="benchmarks/results/detect-sweep")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--video-step", type=int, default=2, help="size part: every k-th video frame")
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--every", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 8])
    ap.add_argument("--carry", nargs="+", default=["roi", "roi:64", "motion"],
                    help="carry modes (roi[:SIZE[:KEEP_SCORE]], motion)")
    ap.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.1, 0.15, 0.2, 0.3])
    ap.add_argument("--hold-frames", type=int, nargs="+", default=[1, 3, 5, 8, 12])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--classify-every", type=int, nargs="+", default=[1],
                    help="hold part: classify each tracked face on every K-th frame in the new loop")
    ap.add_argument("--scores", type=float, nargs="+", default=[0.5, 0.6, 0.7],
                    help="threshold part: YuNet score thresholds (each with each of --sizes)")
    ap.add_argument("--pasted", type=int, default=None,
                    help="size and threshold parts: FER2013 val faces pasted into frames (400 and 1200)")
    ap.add_argument("--model", default=None, help="classifier for the label parts (default: the shipped one)")
    args = ap.parse_args()
    os.environ.setdefault("FER_EDGE_HOME", str(shared()))  # the detector files under shared/models
    cv2.setNumThreads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = args.model or str(default_classifier_path())
    report = {"part": args.part, "machine": machine_summary(args.threads), "command":
              "python -m fer_edge.benchmarks.sweep_detect " + " ".join(os.sys.argv[1:])}
    lines = [f"# detection sweep: {args.part}", "", f"- command: `{report['command']}`",
             f"- machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, {args.threads} thread(s); "
             f"ISA: {report['machine']['isa']}", f"- classifier: {model}", ""]
    results, table = PARTS[args.part](args, model)
    report.update(results)
    lines += table
    (out / f"{args.part}.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (out / f"{args.part}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
