"""Synthetic optimizer instances built the way real retrieval builds them.

A library of clips with topic structure (each file holds clips of one topic; features drawn
around the topic's look; some clips show one of a few recurring people, as dlib-like 128-d
descriptors), a script whose scenes each follow one topic, and per shot the top-M clips by
cosine similarity of embeddings -- so consecutive sentences want the same clips, as in a
real film.
"""
from __future__ import annotations

import math

import numpy as np

from planner.shots import PlannedShot, ShotPlan
from retrieval.types import (CAMERA_MOVES, SCALES, CandidateSet, Hit, LibraryShot, QueryCalibration,
                             ShotCandidates, ShotFeatures)

from montage.optimize import KAPPA
from montage.optimize.confidence import BAR_MARGIN

# the scores as match values: one sd is KAPPA and the card bar stands at score 0.30, where the
# card threshold stood before calibration (the same edits; each objective CARD_VALUE - 0.30 a
# shot higher, so bench/optimizer.py's objective version changed with it)
CALIBRATION = QueryCalibration(mean=0.0, sd=KAPPA, unrelated=0.30 / KAPPA - BAR_MARGIN,
                               unrelated_sd=0.0)

DIM = 32
PEOPLE = ("Maya", "Tom", "Ines")


def make_instance(shots: int, candidates: int, seed: int = 0) -> tuple[ShotPlan, CandidateSet]:
    rng = np.random.default_rng(seed)
    n_topics = max(3, shots // 12)
    n_clips = max(3 * candidates, 4 * shots)
    centroids = _unit(rng.normal(size=(n_topics, DIM)))
    topic_look = rng.uniform(0.15, 0.85, size=(n_topics, 4))  # brightness, r, g, b
    people = rng.normal(scale=0.09, size=(len(PEOPLE) + 3, 128))  # 3 strangers too
    clips: list[LibraryShot] = []
    vectors = []
    per_file = 6
    for c in range(n_clips):
        topic = c * n_topics // n_clips
        vectors.append(centroids[topic] + rng.normal(scale=0.55, size=DIM) / math.sqrt(DIM) * 3)
        file_no, shot_no = divmod(c, per_file)
        start = float(shot_no * 10)
        length = float(rng.choice([1.5, 2.5, 4.0, 6.0, 9.0]))
        clips.append(LibraryShot(
            id=f"f{file_no:04d}.mp4#{shot_no}", path=f"f{file_no:04d}.mp4", kind="video",
            start=start, end=start + length, width=int(rng.choice([640, 1280, 1920])),
            height=int(rng.choice([360, 720, 1080])), fps=25.0, labels=(f"topic{topic}",),
            features=_features(rng, topic_look[topic], people)))
    vectors = _unit(np.asarray(vectors))
    plan_shots = []
    queries = []
    scene, topic = 0, 0
    for i in range(shots):
        if i == 0 or rng.random() < 0.12:
            scene += i > 0
            topic = int(rng.integers(n_topics))
        queries.append(centroids[topic] + rng.normal(scale=0.5, size=DIM) / math.sqrt(DIM) * 3)
        names = tuple(p for p in PEOPLE if rng.random() < 0.2)
        plan_shots.append(PlannedShot(id=f"sh-{i:04d}", scene=scene, text=f"sentence {i}.",
                                      query=f"topic {topic}", characters=names,
                                      duration=float(rng.uniform(1.5, 4.5)), line=i + 1))
    sims = _unit(np.asarray(queries)) @ vectors.T
    sets = []
    for i, shot in enumerate(plan_shots):
        top = np.argsort(-sims[i], kind="stable")[:candidates]
        sets.append(ShotCandidates(shot_id=shot.id, query=shot.query, hits=tuple(
            Hit(clips[int(k)], round(float(0.2 + 0.6 * max(0.0, sims[i, k])), 4)) for k in top),
            calibration=CALIBRATION))
    plan = ShotPlan(source="<bench>", shots=tuple(plan_shots),
                    scene_titles=tuple("" for _ in range(scene + 1)))
    return plan, CandidateSet(library="/bench", embedder="bench", shots=tuple(sets))


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _features(rng: np.random.Generator, look: np.ndarray, people: np.ndarray) -> ShotFeatures:
    brightness = float(np.clip(look[0] + rng.normal(scale=0.12), 0.02, 0.98))
    rgb = np.clip(look[1:] + rng.normal(scale=0.1, size=3), 0.02, 0.98)
    hist = []
    for channel in rgb:
        bins = np.exp(-((np.arange(8) + 0.5) / 8 - channel) ** 2 / 0.02)
        hist.extend((bins / bins.sum() / 3).tolist())
    faces = int(rng.choice([0, 0, 1, 1, 2]))
    who = rng.choice(len(people), size=faces, replace=False) if faces else []
    descriptors = tuple(tuple((people[k] + rng.normal(scale=0.004, size=128)).round(4).tolist())
                        for k in who)
    scale = "close-up" if faces and rng.random() < 0.5 else str(rng.choice(SCALES[:3]))
    camera = str(rng.choice(CAMERA_MOVES, p=[0.4, 0.1, 0.1, 0.05, 0.05, 0.1, 0.1, 0.1]))
    return ShotFeatures(
        brightness=round(brightness, 3), contrast=round(float(rng.uniform(0.03, 0.3)), 3),
        saturation=round(float(rng.uniform(0, 1)), 3), sharpness=round(float(rng.uniform(0.3, 1)), 3),
        stability=round(float(rng.uniform(0.4, 1)), 3), motion=round(float(rng.uniform(0, 0.4)), 3),
        camera=camera, histogram=tuple(round(h, 5) for h in hist),
        colors=(tuple(int(v * 255) for v in rgb),), faces=faces,
        face_size=0.3 if faces else 0.0, scale=scale, people=faces, face_descriptors=descriptors)
