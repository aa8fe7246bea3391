"""Enrollment-side template variants vs the shipped mean template (issue 11, "one match
decision per capture"): what can enrollment alone buy, with the probe unchanged?

    flock /tmp/kg-heavy.lock .venv/bin/python bench/template_variants.py [DIR] [--enroll 5]
        [--identities person_01-25,person_36-40] [--jitters 10] [--cache /tmp/tv.pkl]

The probe is always the shipped one (one ``detect_single_face`` embedding of the photo, no
mirror, no jitter: the capture CPU budget allows no more). Per identity the first ``--enroll``
photos that pass the gate are the enrollment photos, as in ``calibrate_faces``; each is also
embedded mirrored (image and box flipped, same 5-point aligner) and with ``--jitters`` (dlib's
random crop/rotate/flip jitter). Variants: ``mean`` (shipped ``build_template``),
``mirror`` (mean of the K embeddings and their K mirrors), ``jitter``, ``mirror+jitter``,
``renorm`` (mean rescaled to the members' mean norm), ``sharpness-weighted``, ``trimmed``
(drop the photo farthest from the mean) and ``geometric-median``.

For each variant: FNMR / FMR at grid thresholds with the shipped cohort rule for genuine
probes (impostor not enrolled, the conservative case), the threshold-only nearest-pair
acceptances (``nearest_identity_pairs``), and FNMR **at the same FMR as the shipped mean at
0.42** (the threshold just below that variant's next impostor): a variant that moves impostors
as close as genuines shows up only there. Default identities: the tuning set; the held-out
identities (person_26-35) must not be used to choose. The cache (embeddings only, outside the
repository) makes reruns take seconds.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lookups.faces.calibration import (  # noqa: E402
    _IMAGE_SUFFIXES,
    default_faces_dir,
    nearest_identity_pairs,
    pairs_fmr,
    parse_identities,
)
from lookups.faces.detection import _fr, detect_single_face  # noqa: E402
from lookups.faces.errors import ProbeRejected  # noqa: E402
from lookups.faces.images import load_probe_image  # noqa: E402
from lookups.faces.matching import COHORT_MARGIN, DEFAULT_THRESHOLD, build_template, decide  # noqa: E402

Row = dict[str, Any]


def _embed(root: Path, idents: list[str], enroll: int, jitters: int) -> dict[str, list[Row]]:
    fr = _fr()
    data: dict[str, list[Row]] = {}
    for ident in idents:
        rows: list[Row] = []
        for path in sorted(p for p in (root / ident).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES):
            img = load_probe_image(path.read_bytes())
            try:
                s = detect_single_face(img)
            except ProbeRejected:
                continue
            row: Row = {"rel": f"{ident}/{path.name}", "sample": s, "e": np.asarray(s.embedding)}
            if len(rows) < enroll:
                width = img.shape[1]
                top, right, bottom, left = s.box
                mirrored = np.ascontiguousarray(img[:, ::-1])
                mbox = (top, width - 1 - left, bottom, width - 1 - right)
                row["m"] = np.asarray(fr.face_encodings(mirrored, known_face_locations=[mbox], model="small")[0])
                if jitters > 1:
                    row["ej"] = np.asarray(
                        fr.face_encodings(img, known_face_locations=[s.box], num_jitters=jitters, model="small")[0]
                    )
                    row["mj"] = np.asarray(
                        fr.face_encodings(mirrored, known_face_locations=[mbox], num_jitters=jitters, model="small")[0]
                    )
            rows.append(row)
        data[ident] = rows
        print(f"  embedded {ident}: {len(rows)}", file=sys.stderr, flush=True)
    return data


def _trimmed(en: list[Row]) -> np.ndarray:
    e = np.stack([r["e"] for r in en])
    if len(e) < 4:
        return e.mean(axis=0)
    far = int(np.argmax(np.linalg.norm(e - e.mean(axis=0), axis=1)))
    return np.delete(e, far, axis=0).mean(axis=0)


def _geometric_median(en: list[Row]) -> np.ndarray:
    e = np.stack([r["e"] for r in en])
    y = e.mean(axis=0)
    for _ in range(100):
        w = 1.0 / np.maximum(np.linalg.norm(e - y, axis=1), 1e-9)
        y = (e * w[:, None]).sum(axis=0) / w.sum()
    return y


def _renorm(vectors: list[np.ndarray], members: list[np.ndarray]) -> np.ndarray:
    t = np.mean(vectors, axis=0)
    return t / np.linalg.norm(t) * float(np.mean([np.linalg.norm(v) for v in members]))


VARIANTS: dict[str, Callable[[list[Row]], np.ndarray]] = {
    "mean (shipped)": lambda en: build_template([r["sample"] for r in en]),
    "mirror": lambda en: np.mean([r["e"] for r in en] + [r["m"] for r in en], axis=0),
    "mirror 1/4": lambda en: np.mean([0.75 * r["e"] + 0.25 * r["m"] for r in en], axis=0),
    "jitter": lambda en: np.mean([r["ej"] for r in en], axis=0),
    "mirror+jitter": lambda en: np.mean([r["ej"] for r in en] + [r["mj"] for r in en], axis=0),
    "renorm": lambda en: _renorm([r["e"] for r in en], [r["e"] for r in en]),
    "mirror renorm": lambda en: _renorm([r["e"] for r in en] + [r["m"] for r in en], [r["e"] for r in en]),
    "sharpness-weighted": lambda en: np.average(
        [r["e"] for r in en], axis=0, weights=[min(r["sample"].sharpness, 400.0) for r in en]
    ),
    "trimmed": _trimmed,
    "geometric-median": _geometric_median,
}


def _evaluate(data: dict[str, list[Row]], enroll: int, fn: Callable[[list[Row]], np.ndarray]) -> Row:
    templates = {ident: fn(rows[:enroll]) for ident, rows in data.items() if rows}
    accepted = {ident: [(r["rel"], r["e"]) for r in rows] for ident, rows in data.items()}
    names = list(templates)
    stack = np.stack([templates[n] for n in names])
    gen, gen_other, imp = [], [], []
    for ident, rows in data.items():
        for r in rows[enroll:]:
            d = np.linalg.norm(stack - r["e"], axis=1)
            for k, name in enumerate(names):
                if name == ident:
                    gen.append(float(d[k]))
                    gen_other.append(min((float(d[j]) for j in range(len(names)) if j != k), default=math.inf))
                else:
                    imp.append(float(d[k]))
    return {
        "templates": templates,
        "accepted": accepted,
        "gen": np.asarray(gen),
        "gen_other": np.asarray(gen_other),
        "imp": np.sort(np.asarray(imp)),
    }


def _fnmr(ev: Row, t: float) -> int:
    return sum(not decide(d, t, o, COHORT_MARGIN) for d, o in zip(ev["gen"], ev["gen_other"], strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", type=Path, default=default_faces_dir())
    parser.add_argument("--enroll", type=int, default=5)
    parser.add_argument("--identities", default="person_01-25,person_36-40")
    parser.add_argument("--jitters", type=int, default=10)
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache (outside the repository)")
    args = parser.parse_args(argv)

    idents = parse_identities(args.identities, [p.name for p in args.dir.iterdir() if p.is_dir()])
    key = (str(args.dir.resolve()), tuple(idents), args.enroll, args.jitters)
    data = None
    if args.cache and args.cache.is_file():
        cached = pickle.loads(args.cache.read_bytes())
        data = cached["data"] if cached.get("key") == key else None
    if data is None:
        data = _embed(args.dir, idents, args.enroll, args.jitters)
        if args.cache:
            args.cache.write_bytes(pickle.dumps({"key": key, "data": data}))
    variants = {k: v for k, v in VARIANTS.items() if args.jitters > 1 or "jitter" not in k}

    base = _evaluate(data, args.enroll, VARIANTS["mean (shipped)"])
    base_fm = int((base["imp"] <= DEFAULT_THRESHOLD).sum())
    grid = (0.40, 0.42, 0.43, 0.44)
    print(f"K={args.enroll}, {len(idents)} identities; cohort rule margin {COHORT_MARGIN}; impostor not enrolled")
    print(f"'same FMR' = threshold just below each variant's impostor #{base_fm + 1} (shipped mean at 0.42: {base_fm})")
    header = " | ".join(f"t={t:.2f} FNMR / FM / pairs" for t in grid)
    print(f"| variant | genuine | impostor | {header} | same FMR: t, FNMR |")
    for name, fn in variants.items():
        ev = _evaluate(data, args.enroll, fn)
        cells = []
        for t in grid:
            pf = pairs_fmr(nearest_identity_pairs(ev["templates"], ev["accepted"], t))
            fnm = _fnmr(ev, t)
            cells.append(
                f"{100 * fnm / ev['gen'].size:.1f} % ({fnm}) / {int((ev['imp'] <= t).sum())} / "
                f"{pf['false_matches']}+{pf['false_matches_cohort']} of {pf['comparisons']}"
            )
        t_same = float(np.nextafter(ev["imp"][base_fm], -np.inf)) if ev["imp"].size > base_fm else math.inf
        fnm_same = _fnmr(ev, t_same)
        print(
            f"| {name} | {ev['gen'].size} | {ev['imp'].size} | {' | '.join(cells)} | "
            f"{t_same:.4f}, {100 * fnm_same / ev['gen'].size:.1f} % ({fnm_same}) |"
        )
    print("pairs = nearest-pair acceptances: threshold alone + shipped cohort rule, of comparisons")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
