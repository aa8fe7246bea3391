"""Look-alike impostors (issue 10, item 6): the closest other person must not pass the face step.

Attack: a family member or someone of the same region and age holds the guardian's phone and
presents a photo of themselves. The strongest such attacker in the labeled set is, for every
enrolled identity A, the identity B whose template is nearest to A's. Every accepted photo of B
is tried against A's template, built exactly as enrollment builds it (the first K = 3 or 5 photos
that pass the quality gate, ``detect_single_face(load_probe_image(...))``, then
``build_template``), at the shipped threshold.

* Tuning identities (person_01-25, person_36-40; nearest B among them): every attempt must be
  refused by the shipped rule (threshold + cohort margin, ``lookups.faces.matching.decide``,
  the other enrolled templates as the cohort: B is enrolled herself, as in the attack report)
  (asserted). The threshold alone accepts 3 of 264 at 0.42 (printed and recorded): a look-alike
  who is *not* enrolled meets only the global threshold.
* Held-out identities (person_26-35; nearest B among all 40): the figure is printed and
  recorded (``record_property`` and ``$KG_FACE_CACHE/lookalikes_report.json``), not asserted:
  nothing may be tuned on it.

Embeddings are cached in ``$KG_FACE_CACHE`` (default /tmp/f-match-cache), keyed by file path,
size, mtime and MODEL_VERSION, so the run takes seconds after the first one. Without the face
set or the face models the tests skip, and fail when CI=true.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings

from lookups.faces.calibration import identity_names, nearest_identity_pairs, pairs_fmr, parse_identities
from lookups.faces.detection import detect_single_face
from lookups.faces.errors import ProbeRejected
from lookups.faces.images import load_probe_image
from lookups.faces.matching import DEFAULT_THRESHOLD, MODEL_VERSION, build_template
from tests.helpers import IN_CI, require_faces

pytestmark = pytest.mark.faces

TUNING = "person_01-25,person_36-40"
HELD_OUT = "person_26-35"
#: Photos per template: 3 (the form's minimum recommendation, as the threshold was first
#: calibrated) and 5 (what the README now recommends); both must hold.
ENROLL_SIZES = (3, 5)
#: /tmp/f-match-cache on Linux; not the repo (the face set must never be copied into it).
CACHE_DIR = Path(os.environ.get("KG_FACE_CACHE") or Path(tempfile.gettempdir()) / "f-match-cache")
_SUFFIXES = {".jpg", ".jpeg", ".png"}


def _shipped_threshold() -> float:
    configured = settings.KINGUARD_FACE_THRESHOLD
    return float(configured) if configured is not None else DEFAULT_THRESHOLD


def _require_models() -> None:
    missing = [m for m in ("face_recognition", "face_recognition_models") if importlib.util.find_spec(m) is None]
    if missing:
        message = f"face models not installed ({', '.join(missing)})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def _key(path: Path) -> str:
    st = path.stat()
    raw = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{MODEL_VERSION}"
    return hashlib.sha256(raw.encode()).hexdigest()


class EncodingCache:
    """Embedding (or refusal code) per image file, persisted as JSON (exact float repr)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "encodings.json"
        self.dirty = False
        try:
            self.data: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def get(self, path: Path) -> np.ndarray | str:
        key = _key(path)
        value = self.data.get(key)
        if value is None:
            try:
                value = [float(x) for x in detect_single_face(load_probe_image(path.read_bytes())).embedding]
            except ProbeRejected as exc:
                value = exc.code
            self.data[key] = value
            self.dirty = True
        return value if isinstance(value, str) else np.asarray(value, dtype=np.float64)

    def save(self) -> None:
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.data))
        tmp.replace(self.path)  # atomic: concurrent runs never read a half-written file


@pytest.fixture(scope="module", params=ENROLL_SIZES, ids=lambda k: f"K{k}")
def face_set(request) -> dict[str, Any]:
    """Templates (enrollment-style) and every accepted photo of each identity."""
    root = require_faces()
    _require_models()
    cache = EncodingCache(CACHE_DIR)
    available = [p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("person_")]
    templates: dict[str, np.ndarray] = {}
    photos: dict[str, list[tuple[str, np.ndarray]]] = {}
    enrolled_files: dict[str, list[Path]] = {}
    for ident in parse_identities(f"{TUNING},{HELD_OUT}", available):
        enrolled: list[np.ndarray] = []
        photos[ident] = []
        enrolled_files[ident] = []
        for path in sorted(p for p in (root / ident).iterdir() if p.suffix.lower() in _SUFFIXES):
            value = cache.get(path)
            if isinstance(value, str):  # refused by the gate: retaken at the desk / retake
                continue
            photos[ident].append((f"{ident}/{path.name}", value))
            if len(enrolled) < request.param:
                enrolled.append(value)
                enrolled_files[ident].append(path)
        templates[ident] = build_template([_Embedded(e) for e in enrolled])
    cache.save()
    return {
        "root": root,
        "templates": templates,
        "photos": photos,
        "enrolled_files": enrolled_files,
        "names": identity_names(root),
        "enroll": request.param,
    }


class _Embedded:
    """What :func:`build_template` reads from a FaceSample (its embedding), from the cache."""

    def __init__(self, embedding: np.ndarray) -> None:
        self.embedding = embedding


def _describe(pairs: list[dict[str, Any]], names: dict[str, str], threshold: float) -> list[str]:
    lines = []
    for p in sorted(pairs, key=lambda p: p["closest"]):
        accepted = [f"{rel} {d:.3f}" for d, rel in p["distances"] if d <= threshold]
        lines.append(
            f"{p['identity']} ({names.get(p['identity'], '?')}) <- {p['nearest']} "
            f"({names.get(p['nearest'], '?')}): template distance {p['template_distance']:.3f}, "
            f"closest {p['closest']:.3f}, accepted by the threshold alone {p['false_matches']}/{p['comparisons']}, "
            f"by the shipped rule {p['false_matches_cohort']}" + (f" [{', '.join(accepted)}]" if accepted else "")
        )
    return lines


def _record(name: str, payload: dict[str, Any]) -> None:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / "lookalikes_report.json"
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        report = {}
    report[name] = payload
    path.write_text(json.dumps(report, indent=1))


def test_the_cached_templates_are_the_ones_enrollment_builds(face_set: dict[str, Any]) -> None:
    """Guards the cache: the enrollment service itself gives the same template."""
    from guardians.services import face_samples_from_images

    for ident in ("person_12", "person_13"):  # the sisters of the attack report
        files = face_set["enrolled_files"][ident]
        samples = face_samples_from_images([p.read_bytes() for p in files])
        assert np.allclose(build_template(samples), face_set["templates"][ident], atol=1e-9)


def test_closest_impostors_of_the_tuning_set_are_refused(face_set: dict[str, Any], record_property) -> None:
    threshold = _shipped_threshold()
    available = list(face_set["templates"])
    tuning = parse_identities(TUNING, available)
    templates = {i: face_set["templates"][i] for i in tuning}
    pairs = nearest_identity_pairs(templates, face_set["photos"], threshold)
    summary = pairs_fmr(pairs)
    lines = _describe(pairs, face_set["names"], threshold)
    print(f"\ntuning nearest-identity pairs at threshold {threshold:.2f}: {summary}")
    print("\n".join(lines))
    record_property("tuning_nearest_pairs", json.dumps(summary))
    _record(f"tuning_K{face_set['enroll']}", {"threshold": threshold, **summary, "pairs": lines})

    assert len(pairs) == len(tuning) == 30
    assert all(p["comparisons"] >= 3 for p in pairs)
    # The shipped rule: threshold + cohort margin, every other tuning template as the cohort
    # (the look-alike is enrolled herself, as in the attack report).
    accepted = [
        line
        for p, line in zip(sorted(pairs, key=lambda p: p["closest"]), lines, strict=True)
        if p["false_matches_cohort"]
    ]
    assert not accepted, "look-alike impostors accepted:\n" + "\n".join(accepted)
    assert summary["false_matches_cohort"] == 0


def test_closest_impostors_of_the_held_out_set_are_measured(face_set: dict[str, Any], record_property) -> None:
    """Held out: nearest other identity among all 40; printed and recorded, never asserted on
    (a figure to report, not to tune on)."""
    threshold = _shipped_threshold()
    held_out = parse_identities(HELD_OUT, list(face_set["templates"]))
    pairs = [
        p
        for p in nearest_identity_pairs(face_set["templates"], face_set["photos"], threshold)
        if p["identity"] in held_out
    ]
    summary = pairs_fmr(pairs)
    lines = _describe(pairs, face_set["names"], threshold)
    print(f"\nheld-out nearest-identity pairs at threshold {threshold:.2f}: {summary}")
    print("\n".join(lines))
    record_property("held_out_nearest_pairs", json.dumps(summary))
    _record(f"held_out_K{face_set['enroll']}", {"threshold": threshold, **summary, "pairs": lines})
    assert len(pairs) == len(held_out) == 10
    assert summary["comparisons"] == sum(len(face_set["photos"][p["nearest"]]) for p in pairs)
