"""Liveness attacks vs genuine live clips through ``lookups.faces.check_capture``.

Attacks are synthesised from the still photos of enrolled identities (template: their first 3
photos; attacks use other photos): ``moved`` (one photo shifted/scaled/rotated in the hand),
``tilt_yaw`` and ``tilt_pitch`` (one photo swung up to 30 degrees about the vertical/horizontal
axis, a perspective warp: the planar fake of a head turn or nod), ``slideshow`` (five different
photos, six frames each). 30 frames (3 s at 10 fps), each re-encoded as JPEG and decoded with
``load_probe_image`` like an upload. Genuine: the live clips (``live/clip_NN``, liveness only:
no clip shares a person with the photos).

Each capture is detected once (``detect_single_face`` per frame, exactly as ``check_capture``
does) and then decided by ``lookups.faces.decide_samples`` for each single action; the refusal
codes, planarity and continuity figures are printed per capture. Needs no Django.

    .venv/bin/python bench/liveness_attacks.py [--set tune|holdout|all]

Tuning: identities person_02-04, clips 00, 03, 06, 10. Held out: person_26-28, clips 11-13.
"""

from __future__ import annotations

import argparse
import io
import math
import pickle
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lookups import faces  # noqa: E402
from lookups.faces import liveness  # noqa: E402
from lookups.faces.calibration import default_faces_dir  # noqa: E402
from lookups.faces.detection import FaceSample, detect_single_face  # noqa: E402
from lookups.faces.errors import ProbeRejected  # noqa: E402
from lookups.faces.images import load_probe_image  # noqa: E402
from lookups.faces.matching import DEFAULT_THRESHOLD, MODEL_VERSION  # noqa: E402

SETS = {
    "tune": (["person_02", "person_03", "person_04"], ["clip_00", "clip_03", "clip_06", "clip_10"]),
    "holdout": (["person_26", "person_27", "person_28"], ["clip_11", "clip_12", "clip_13"]),
}
N_FRAMES = 30
CANVAS = (480, 360)
CACHE = Path("/tmp/kg_liveness_bench")


def _coeffs(dst_quad: np.ndarray, src_quad: np.ndarray) -> tuple[float, ...]:
    """PIL PERSPECTIVE coefficients mapping output points dst_quad to input points src_quad."""
    h = liveness._homography(dst_quad, src_quad)
    h = h / h[2, 2]
    return tuple(float(x) for x in h.ravel()[:8])


def _place(photo: Image.Image, quad: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render ``photo`` onto a grey textured canvas with its corners at ``quad`` (4 x 2)."""
    w, h = photo.size
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    warped = photo.transform(CANVAS, Image.Transform.PERSPECTIVE, _coeffs(quad, src), Image.Resampling.BILINEAR)
    mask = Image.new("L", photo.size, 255).transform(
        CANVAS, Image.Transform.PERSPECTIVE, _coeffs(quad, src), Image.Resampling.BILINEAR
    )
    bg = Image.fromarray(np.clip(rng.normal(110, 12, (CANVAS[1], CANVAS[0], 3)), 0, 255).astype(np.uint8))
    bg.paste(warped, (0, 0), mask)
    buf = io.BytesIO()
    bg.save(buf, "JPEG", quality=85)
    return load_probe_image(buf.getvalue())


def _plane_quad(size: tuple[int, int], t: float, kind: str) -> np.ndarray:
    """Corners of the held photo at phase t in [0, 1] for one attack kind."""
    w, h = size
    scale = 300.0 / max(w, h)
    cx, cy = CANVAS[0] / 2, CANVAS[1] / 2
    corners = np.array([[-w / 2, -h / 2, 0], [w / 2, -h / 2, 0], [w / 2, h / 2, 0], [-w / 2, h / 2, 0]]) * scale
    yaw = pitch = roll = 0.0
    dx = dy = 0.0
    s = 1.0
    if kind in ("moved", "slideshow"):
        dx, dy = 25 * math.sin(2 * math.pi * t), 12 * math.sin(4 * math.pi * t)
        s = 1.0 + 0.12 * math.sin(math.pi * t)
        roll = math.radians(10) * math.sin(2 * math.pi * t)
    elif kind == "tilt_yaw":
        yaw = math.radians(30) * math.sin(2 * math.pi * t)
    elif kind == "tilt_pitch":
        pitch = math.radians(30) * math.sin(2 * math.pi * t)
    cr, sr = math.cos(roll), math.sin(roll)
    cyw, syw = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    ry = np.array([[cyw, 0, syw], [0, 1, 0], [-syw, 0, cyw]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    pts = (corners * s) @ (rz @ ry @ rx).T
    f = 600.0
    z = f + pts[:, 2]
    return np.c_[cx + dx + f * pts[:, 0] / z, cy + dy + f * pts[:, 1] / z]


def attack_frames(photos: list[Image.Image], kind: str, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(N_FRAMES):
        t = i / (N_FRAMES - 1)
        photo = photos[(i * len(photos)) // N_FRAMES] if kind == "slideshow" else photos[0]
        frames.append(_place(photo, _plane_quad(photo.size, t, kind), rng))
    return frames


def _detect_all(frames: list[np.ndarray]) -> tuple[list[FaceSample] | None, str | None, float]:
    t0 = time.process_time()
    samples = []
    try:
        for fr in frames:
            samples.append(detect_single_face(fr))
    except ProbeRejected as exc:
        return None, ("several_faces" if exc.code == "multiple_faces" else exc.code), time.process_time() - t0
    return samples, None, time.process_time() - t0


def _cached(key: str, make_frames) -> tuple[list[FaceSample] | None, str | None, float, int]:
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"{key}.pkl"
    if path.is_file():
        return pickle.loads(path.read_bytes())
    frames = make_frames()
    out = (*_detect_all(frames), len(frames))
    path.write_bytes(pickle.dumps(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", choices=["tune", "holdout", "all"], default="all")
    args = ap.parse_args()
    root = default_faces_dir()
    names = ["tune", "holdout"] if args.set == "all" else [args.set]
    thr = DEFAULT_THRESHOLD
    cpu_capture: list[float] = []
    cpu_single: list[float] = []
    for name in names:
        idents, clips = SETS[name]
        att_acc = att_tot = gen_acc = gen_tot = 0
        print(f"== {name}: identities {', '.join(idents)}; clips {', '.join(clips)}")
        rows = []
        for ident in idents:
            paths = sorted((root / ident).glob("*.jpg"))
            enroll = [load_probe_image(p.read_bytes()) for p in paths[:3]]
            t0 = time.process_time()
            template = faces.build_template_from_images(enroll)
            cpu_single.append((time.process_time() - t0) / 3)
            photos = [Image.open(p).convert("RGB") for p in paths[3:8]]
            for k, kind in enumerate(("moved", "tilt_yaw", "tilt_pitch", "slideshow")):
                res = _cached(f"{ident}_{kind}", lambda kind=kind, k=k, photos=photos: attack_frames(photos, kind, k))
                rows.append((f"{ident}/{kind}", res, template, True))
        for clip in clips:
            files = sorted((root / "live" / clip).glob("*.jpg"))
            res = _cached(clip, lambda files=files: [load_probe_image(f.read_bytes()) for f in files])
            rows.append((clip, res, None, False))
        for label, (samples, code, cpu, n), template, is_attack in rows:
            if not is_attack and samples is not None:
                cpu_capture.append(cpu)
            extra = ""
            if samples is not None:
                plan = faces.capture_planarity(samples)
                brk = liveness._continuity_break(samples)
                extra = f" planar={plan:.4f} break={brk}"
            outcomes = []
            for action in faces.ACTIONS:
                if samples is None:
                    d = faces.CaptureDecision(False, code, None, 0, thr, MODEL_VERSION)
                else:
                    d = faces.decide_samples(samples, challenge=[action], template=template, threshold=thr)
                outcomes.append(f"{action}={'ACCEPT' if d.accepted else d.code}")
                if is_attack:
                    att_tot += 1
                    att_acc += d.accepted
                else:
                    gen_tot += 1
                    gen_acc += d.accepted
            print(f"{label:24} frames={n}{extra} " + " ".join(outcomes))
        print(f"{name}: attacks accepted {att_acc} / {att_tot}; genuine accepted {gen_acc} / {gen_tot}")
    if cpu_capture and cpu_single:
        per_capture = float(np.mean(cpu_capture))
        print(
            f"CPU: capture (live clip, detect every frame) {per_capture:.2f} s vs single photo "
            f"{float(np.mean(cpu_single)):.3f} s: ratio {per_capture / float(np.mean(cpu_single)):.1f}x"
        )


if __name__ == "__main__":
    main()
