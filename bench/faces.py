"""Face detectors on the demo and evaluation footage: dlib's HOG against mediapipe's BlazeFace.

python bench/faces.py [--fit]

The indexer finds faces with mediapipe's BlazeFace (LiteRT) and asks dlib only for the 128-d
descriptors of the faces found (:mod:`retrieval.analysis.faces`); it used dlib's HOG detector on every
keyframe before. Here both run on the same frames: every still of the demo library, of the
evaluation set (assets/eval) and of its old set, and every keyframe the indexer takes from their
videos. Prints per frame set: frames, faces found by both, by dlib only, by mediapipe only, the
CPU ms per frame of each detector, and for the faces both found the distance between the
descriptor of dlib's box and of mediapipe's box, as the indexer takes it (same person:
under 0.6, the usual threshold; the same face described twice should stay far below it).
``--fit`` prints how dlib's box sits in mediapipe's on the matched faces (median centre shift
and size, in units of mediapipe's box): the size is what ``retrieval.analysis.faces.shot_scale`` needs.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import evalset  # noqa: E402
from montage.cli.demo import fetch_demo_library  # noqa: E402
from retrieval.media.library import find_media  # noqa: E402
from retrieval.media.decode import probe, read_still  # noqa: E402
from retrieval.analysis.scan import scan_video  # noqa: E402

MEDIA_CACHE = Path.home() / ".cache" / "montage" / "eval-media"


def frames_of(root: Path) -> list[tuple[str, np.ndarray]]:
    """Every still, and every keyframe the indexer takes from each video, of a library."""
    out = []
    for m in find_media(root):
        path = root / m.path
        if m.kind == "still":
            out.append((m.path, read_still(path)))
            continue
        info = probe(path)
        for shot in scan_video(path, info.duration, info.fps):
            out += [(f"{m.path}@{t:.2f}", f) for t, f in zip(shot.times, shot.keyframes)]
    return out


def _match(dlib_boxes, mp_boxes) -> list[tuple[int, int]]:
    """Pairs (i, j) of a dlib box and a mediapipe box of the same face (centre of each inside
    the other), greedily, largest dlib box first."""
    pairs, used = [], set()
    for i, (t, l, b, r) in enumerate(dlib_boxes):
        for j, (x, y, w, h) in enumerate(mp_boxes):
            if j in used:
                continue
            cx, cy = (l + r) / 2, (t + b) / 2
            mx, my = x + w / 2, y + h / 2
            if l <= mx <= r and t <= my <= b and x <= cx <= x + w and y <= cy <= y + h:
                pairs.append((i, j))
                used.add(j)
                break
    return pairs


def measure(label: str, frames: list[tuple[str, np.ndarray]], fit_rows: list) -> dict:
    """Both detectors as the indexer runs them (retrieval.analysis.faces.FaceScan: the frame scaled to
    640 px, then the detector) on ``frames``; CPU time of the detection only."""
    from retrieval.analysis import faces as F

    both = dlib_only = mp_only = 0
    dlib_ms = mp_ms = 0.0
    dists, missed, extra = [], [], []
    for name, frame in frames:
        t = time.process_time()
        old = F.FaceScan(frame, detector="dlib")
        dlib_ms += (time.process_time() - t) * 1000
        t = time.process_time()
        new = F.FaceScan(frame, detector="mediapipe")
        mp_ms += (time.process_time() - t) * 1000
        d_boxes = [(f.top, f.left, f.bottom, f.right) for f in old.faces(descriptors=False)]
        m_boxes = [(f.left, f.top, f.right - f.left, f.bottom - f.top)
                   for f in new.faces(descriptors=False)]
        pairs = _match(d_boxes, m_boxes)
        both += len(pairs)
        dlib_only += len(d_boxes) - len(pairs)
        mp_only += len(m_boxes) - len(pairs)
        if len(d_boxes) > len(pairs):
            missed.append(name)
        if len(m_boxes) > len(pairs):
            extra.append(name)
        fit_rows += [(d_boxes[i], m_boxes[j]) for i, j in pairs]
        if pairs:  # the same faces described from either detector's box
            a, b = old.faces(descriptors=True), new.faces(descriptors=True)
            dists += [F.distance(a[i].descriptor, b[j].descriptor) for i, j in pairs
                      if a[i].descriptor and b[j].descriptor]
    n = max(1, len(frames))
    return {"frames": label, "count": len(frames), "faces_both": both, "dlib_only": dlib_only,
            "mediapipe_only": mp_only, "dlib_ms_per_frame": round(dlib_ms / n, 1),
            "mediapipe_ms_per_frame": round(mp_ms / n, 1),
            "descriptor_distance_same_face": {
                "n": len(dists), "median": round(float(np.median(dists)), 3) if dists else None,
                "max": round(float(np.max(dists)), 3) if dists else None},
            "dlib_only_in": missed[:12], "mediapipe_only_in": extra[:12]}


def fit(rows: list) -> dict:
    """Least squares: dlib box (centre, size) from the mediapipe box, in units of its size."""
    if not rows:
        return {}
    dx, dy, sw, sh = [], [], [], []
    for (t, l, b, r), (x, y, w, h) in rows:
        dx.append(((l + r) / 2 - (x + w / 2)) / w)
        dy.append(((t + b) / 2 - (y + h / 2)) / h)
        sw.append((r - l) / w)
        sh.append((b - t) / h)
    med = lambda v: round(float(np.median(v)), 3)  # noqa: E731
    return {"fit": "dlib box from mediapipe box", "pairs": len(rows), "centre_dx": med(dx),
            "centre_dy": med(dy), "width": med(sw), "height": med(sh)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fit", action="store_true", help="print the fitted box mapping")
    args = parser.parse_args()
    from retrieval.analysis.faces import FaceScan

    for detector in ("dlib", "mediapipe"):  # models loaded before anything is timed
        FaceScan(np.zeros((64, 64, 3), np.uint8), detector=detector)
    rows: list = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sets = [("demo library", fetch_demo_library())]
        for label, csv in (("eval set", evalset.EVAL / "items.csv"),
                           ("old eval set", evalset.OLD / "items.csv")):
            root = work / label.replace(" ", "-")
            evalset.fetch(evalset.rows(csv), root, MEDIA_CACHE)
            sets.append((label, root))
        total = {"faces_both": 0, "dlib_only": 0, "mediapipe_only": 0}
        for label, root in sets:
            result = measure(label, frames_of(root), rows)
            for k in total:
                total[k] += result[k]
            print(json.dumps(result), flush=True)
        print(json.dumps({"frames": "all", **total}))
    if args.fit:
        print(json.dumps(fit(rows)))


if __name__ == "__main__":
    main()
