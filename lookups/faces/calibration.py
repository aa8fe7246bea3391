"""Calibration of the match threshold on a folder-per-identity face set (pure; used by the
``calibrate_faces`` management command and tests; no Django imports)."""

from __future__ import annotations

import csv
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lookups.faces.detection import FaceSample, detect_single_face
from lookups.faces.errors import ProbeRejected
from lookups.faces.images import load_probe_image
from lookups.faces.matching import COHORT_MARGIN, DEFAULT_THRESHOLD, MODEL_VERSION, build_template, decide

# ---------------------------------------------------------------------------------------------
# Calibration (pure; used by the calibrate_faces management command and tests)
# ---------------------------------------------------------------------------------------------


def default_faces_dir() -> Path:
    """``$KINGUARD_FACES_DIR`` or ``<repo>/../shared/faces`` (never copied into the repo)."""
    env = os.environ.get("KINGUARD_FACES_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "faces"


_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}


def parse_identities(spec: str | None, available: Iterable[str]) -> list[str]:
    """Expand ``"person_01-25,person_36-40"`` (or exact folder names) against ``available``.

    ``None``/empty means all. Unknown names raise ``ValueError``."""
    names = sorted(available)
    if not spec:
        return names
    chosen: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        m = re.fullmatch(r"(.*?)(\d+)-(\d+)", part)
        if m and part not in names:
            prefix, lo, hi = m.group(1), m.group(2), m.group(3)
            wanted = [f"{prefix}{i:0{len(lo)}d}" for i in range(int(lo), int(hi) + 1)]
        else:
            wanted = [part]
        for w in wanted:
            if w not in names:
                raise ValueError(f"unknown identity folder {w!r}")
            if w not in chosen:
                chosen.append(w)
    return chosen


def _threshold_for_fmr(impostor: np.ndarray, max_fmr: float) -> float | None:
    """Largest t with (#impostor distances <= t) / M <= max_fmr (t just below the next
    impostor distance); None if there are no impostor comparisons."""
    if impostor.size == 0:
        return None
    allowed = math.floor(max_fmr * impostor.size + 1e-9)
    ordered = np.sort(impostor)
    if allowed >= ordered.size:
        return float(ordered[-1])
    return float(np.nextafter(ordered[allowed], -np.inf))


def identity_names(root: str | os.PathLike[str]) -> dict[str, str]:
    """Folder -> real name from ``identities.csv`` in ``root`` (the shared layout), else {}."""
    path = Path(root) / "identities.csv"
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {row["folder"]: row["identity"] for row in rows if row.get("folder") and row.get("identity")}


def nearest_identity_pairs(
    templates: dict[str, np.ndarray],
    photos: Mapping[str, Sequence[tuple[str, np.ndarray]]],
    threshold: float,
    margin: float = COHORT_MARGIN,
) -> list[dict[str, Any]]:
    """The look-alike impostors: for each identity A with a template, its nearest other
    identity B (smallest template-to-template distance), and the distances of every accepted
    photo of B to A's template (any photo of B is an attempt on A, so enrollment photos of B
    count too). ``false_matches`` counts those within ``threshold`` (the global threshold
    alone: B not enrolled); ``false_matches_cohort`` those the shipped rule
    (:func:`~lookups.faces.matching.decide`, every other template of ``templates`` as the
    cohort, so B is enrolled) accepts."""
    names = sorted(templates)
    pairs: list[dict[str, Any]] = []
    for a in names:
        others = [(float(np.linalg.norm(templates[a] - templates[b])), b) for b in names if b != a]
        if not others:
            continue
        template_distance, b = min(others)
        cohort = np.stack([templates[n] for n in names if n != a])
        distances = []
        cohort_accepted = 0
        for rel, emb in photos.get(b, ()):
            d = float(np.linalg.norm(templates[a] - emb))
            distances.append((d, rel))
            nearest_other = float(np.min(np.linalg.norm(cohort - emb, axis=1)))
            cohort_accepted += decide(d, threshold, nearest_other, margin)
        pairs.append(
            {
                "identity": a,
                "nearest": b,
                "template_distance": template_distance,
                "distances": distances,
                "comparisons": len(distances),
                "false_matches": sum(1 for d, _ in distances if d <= threshold),
                "false_matches_cohort": cohort_accepted,
                "closest": min((d for d, _ in distances), default=float("nan")),
            }
        )
    return pairs


def pairs_fmr(pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pooled FMR over :func:`nearest_identity_pairs` (false matches / comparisons), for the
    global threshold alone (``fmr``) and for the shipped cohort rule (``fmr_cohort``)."""
    comparisons = sum(p["comparisons"] for p in pairs)
    false_matches = sum(p["false_matches"] for p in pairs)
    cohort = sum(p.get("false_matches_cohort", 0) for p in pairs)
    return {
        "comparisons": comparisons,
        "false_matches": false_matches,
        "fmr": false_matches / comparisons if comparisons else float("nan"),
        "false_matches_cohort": cohort,
        "fmr_cohort": cohort / comparisons if comparisons else float("nan"),
    }


def calibrate(
    dir: str | os.PathLike[str],  # name fixed by the agreed interface
    enroll: int,
    identities: Sequence[str] | str | None = None,
    thresholds: Sequence[float] | None = None,
    *,
    threshold: float | None = None,
    max_fmr: float = 0.001,
    progress: Any = None,
) -> dict[str, Any]:
    """Template-vs-probe error rates on a folder-per-identity face set.

    For each identity the first ``enroll`` images (sorted by file name) *that pass the quality
    gate* form the template via :func:`build_template` -- a refused enrollment photo is
    retaken at the desk, so it is counted as ``enroll_fta`` and the next image is used. All
    remaining images are probes (load_probe_image + detect_single_face; refusals count as
    ``probe_fta``, never as false non-matches) and are compared with every template: same
    identity = genuine, other = impostor. Each image is embedded once.

    Returns a dict with ``rows`` (threshold, fnmr, fmr, false_non_matches, false_matches),
    ``genuine``/``impostor`` distance lists, FTA details, ``best_grid_threshold`` (largest
    grid value with FMR <= max_fmr), ``exact_threshold`` (same, continuous) and ``configured``
    (the row for ``threshold`` or DEFAULT_THRESHOLD), ``nearest_pairs`` /
    ``nearest_pairs_fmr`` (:func:`nearest_identity_pairs` at that threshold) and ``names``.
    """
    if enroll < 1:
        raise ValueError("enroll must be >= 1")
    root = Path(dir)
    available = [p.name for p in root.iterdir() if p.is_dir()]
    if identities is None or identities == "":
        # Default: the identity folders of the shared layout (person_NN); other sub-folders
        # such as special/ and camera/ are not identities.
        people = [name for name in available if re.fullmatch(r"person_\d+", name)]
        available = people or available
    if isinstance(identities, str) or identities is None:
        idents = parse_identities(identities, available)
    else:
        idents = parse_identities(",".join(identities), available)
    if thresholds is None:
        thresholds = [round(0.30 + 0.02 * i, 2) for i in range(16)]
    configured_t = DEFAULT_THRESHOLD if threshold is None else float(threshold)

    templates: dict[str, np.ndarray] = {}
    probes: dict[str, list[tuple[str, np.ndarray]]] = {}
    accepted: dict[str, list[tuple[str, np.ndarray]]] = {}
    enroll_fta: list[tuple[str, str]] = []
    probe_fta: list[tuple[str, str]] = []
    n_images = 0
    t_start = time.perf_counter()
    for ident in idents:
        files = sorted(p for p in (root / ident).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        enrolled: list[FaceSample] = []
        probes[ident] = []
        accepted[ident] = []
        for path in files:
            n_images += 1
            rel = f"{ident}/{path.name}"
            try:
                sample = detect_single_face(load_probe_image(path.read_bytes()))
            except ProbeRejected as exc:
                (enroll_fta if len(enrolled) < enroll else probe_fta).append((rel, exc.code))
                continue
            accepted[ident].append((rel, sample.embedding))
            if len(enrolled) < enroll:
                enrolled.append(sample)
            else:
                probes[ident].append((rel, sample.embedding))
        if enrolled:
            templates[ident] = build_template(enrolled)
        if progress is not None:
            progress(ident, len(enrolled), len(probes[ident]))

    # Every comparison keeps the distance to the claimed template and the distance to the
    # nearest *other* template of the cohort rule: for an impostor, once with the impostor's
    # own template in the cohort (an enrolled look-alike) and once without (not enrolled).
    genuine: list[float] = []
    genuine_other: list[float] = []
    impostor: list[float] = []
    impostor_other: list[float] = []
    impostor_other_enrolled: list[float] = []
    impostor_pairs: list[tuple[float, str, str]] = []
    t_names = list(templates)
    t_stack = np.stack([templates[n] for n in t_names]) if t_names else np.zeros((0, 128))
    for ident, plist in probes.items():
        for rel, emb in plist:
            dists = np.linalg.norm(t_stack - emb, axis=1)
            for k, t_ident in enumerate(t_names):
                d = float(dists[k])
                rest = [float(dists[j]) for j in range(len(t_names)) if j != k and t_names[j] != ident]
                nearest_rest = min(rest, default=math.inf)
                if t_ident == ident:
                    genuine.append(d)
                    genuine_other.append(nearest_rest)
                else:
                    own = float(dists[t_names.index(ident)]) if ident in templates else math.inf
                    impostor.append(d)
                    impostor_other.append(nearest_rest)
                    impostor_other_enrolled.append(min(nearest_rest, own))
                    impostor_pairs.append((d, rel, t_ident))
    gen = np.asarray(genuine)
    imp = np.asarray(impostor)
    gen_o, imp_o, imp_oe = (np.asarray(v) for v in (genuine_other, impostor_other, impostor_other_enrolled))

    def row(t: float) -> dict[str, Any]:
        fnm = int((gen > t).sum())
        fm = int((imp <= t).sum())
        # the shipped rule (lookups.faces.matching.decide) with the cohort
        fnm_c = int((~((gen <= t) & (gen + COHORT_MARGIN <= gen_o))).sum()) if gen.size else 0
        fm_c = int(((imp <= t) & (imp + COHORT_MARGIN <= imp_o)).sum()) if imp.size else 0
        fm_ce = int(((imp <= t) & (imp + COHORT_MARGIN <= imp_oe)).sum()) if imp.size else 0
        return {
            "threshold": t,
            "false_non_matches": fnm,
            "false_matches": fm,
            "fnmr": fnm / gen.size if gen.size else float("nan"),
            "fmr": fm / imp.size if imp.size else float("nan"),
            "false_non_matches_cohort": fnm_c,
            "fnmr_cohort": fnm_c / gen.size if gen.size else float("nan"),
            "false_matches_cohort": fm_c,
            "fmr_cohort": fm_c / imp.size if imp.size else float("nan"),
            "false_matches_cohort_enrolled": fm_ce,
            "fmr_cohort_enrolled": fm_ce / imp.size if imp.size else float("nan"),
        }

    rows = [row(float(t)) for t in thresholds]
    ok = [r["threshold"] for r in rows if imp.size and r["fmr"] <= max_fmr]
    impostor_pairs.sort()
    nearest = nearest_identity_pairs(templates, accepted, configured_t)
    return {
        "dir": str(root),
        "enroll": enroll,
        "identities": idents,
        "n_images": n_images,
        "n_templates": len(templates),
        "n_probes": sum(len(v) for v in probes.values()),
        "genuine": genuine,
        "impostor": impostor,
        "rows": rows,
        "max_fmr": max_fmr,
        "best_grid_threshold": max(ok) if ok else None,
        "exact_threshold": _threshold_for_fmr(imp, max_fmr),
        "enroll_fta": enroll_fta,
        "probe_fta": probe_fta,
        "closest_impostors": impostor_pairs[:10],
        "configured": row(configured_t),
        "nearest_pairs": nearest,
        "nearest_pairs_fmr": pairs_fmr(nearest),
        "names": identity_names(root),
        "cohort_margin": COHORT_MARGIN,
        "model_version": MODEL_VERSION,
        "seconds": time.perf_counter() - t_start,
    }
