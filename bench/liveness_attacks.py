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
Genuine: 3.5 s windows (35 frames) around hand-labelled actions (EVENTS); every attack is decided
for all 16 challenges (4 single actions, 12 ordered pairs). CPU: ``check_capture`` (tracking) on a
few live windows vs one ``detect_single_face`` on a frame of the same clip.
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
from lookups.faces.detection import FaceSample, detect_single_face, warm_up  # noqa: E402
from lookups.faces.errors import ProbeRejected  # noqa: E402
from lookups.faces.images import load_probe_image  # noqa: E402
from lookups.faces.matching import DEFAULT_THRESHOLD  # noqa: E402

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


class _OldPathUnpickler(pickle.Unpickler):
    """Reads caches written before the split of ``lookups.face_pipeline`` (FaceSample moved)."""

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if module == "lookups.face_pipeline":
            module = "lookups.faces.detection"
        return super().find_class(module, name)


def _cached(key: str, make_frames) -> tuple[list[FaceSample] | None, str | None, float, int]:
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"{key}.pkl"
    if path.is_file():
        return _OldPathUnpickler(io.BytesIO(path.read_bytes())).load()
    frames = make_frames()
    out = (*_detect_all(frames), len(frames))
    path.write_bytes(pickle.dumps(out))
    return out


#: Hand-labelled actions in the live clips (0-based frame of the event, read off the landmark
#: series: an EAR dip, a MAR rise, a nose-parallax swing). Each event gives two 3.5 s windows
#: (35 frames) starting 22 and 12 frames before it, as a user answering a prompt.
EVENTS = {
    "clip_00": {"blink": [26]},
    "clip_03": {"turn_right": [5, 70, 101], "turn_left": [50, 88], "open_mouth": [100]},
    "clip_06": {"blink": [69, 73], "open_mouth": [18, 40]},
    "clip_10": {"blink": [74, 111], "open_mouth": [33]},
    "clip_11": {"blink": [60], "turn_left": [46], "open_mouth": [65]},
    "clip_12": {"blink": [19, 54], "open_mouth": [48], "turn_right": [33], "turn_left": [67]},
    "clip_13": {"blink": [14, 26, 34, 105]},
}
WINDOW = 35


def _windows(n: int, event: int) -> list[int]:
    return sorted({max(0, min(n - WINDOW, event - lead)) for lead in (22, 12)})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", choices=["tune", "holdout", "all"], default="all")
    ap.add_argument("--cpu-windows", type=int, default=3, help="live windows timed through check_capture")
    args = ap.parse_args()
    root = default_faces_dir()
    names = ["tune", "holdout"] if args.set == "all" else [args.set]
    thr = DEFAULT_THRESHOLD
    challenges = [(a,) for a in faces.ACTIONS] + [(a, b) for a in faces.ACTIONS for b in faces.ACTIONS if a != b]
    timed: list[tuple[str, int, str]] = []
    for name in names:
        idents, clips = SETS[name]
        att_acc = att_tot = 0
        print(f"== {name}: identities {', '.join(idents)}; clips {', '.join(clips)}")
        for ident in idents:
            paths = sorted((root / ident).glob("*.jpg"))
            enroll = [load_probe_image(p.read_bytes()) for p in paths[:3]]
            template = faces.build_template_from_images(enroll)
            photos = [Image.open(p).convert("RGB") for p in paths[3:8]]
            for k, kind in enumerate(("moved", "tilt_yaw", "tilt_pitch", "slideshow")):
                samples, code, _cpu, n = _cached(
                    f"{ident}_{kind}", lambda kind=kind, k=k, photos=photos: attack_frames(photos, kind, k)
                )
                codes: dict[str, int] = {}
                for ch in challenges:
                    if samples is None:
                        got = code
                    else:
                        d = faces.decide_samples(samples, challenge=ch, template=template, threshold=thr)
                        got = "ACCEPTED" if d.accepted else d.code
                    codes[got] = codes.get(got, 0) + 1
                    att_tot += 1
                    att_acc += got == "ACCEPTED"
                print(
                    f"  attack {ident}/{kind:10} frames={n} " + " ".join(f"{c}={v}" for c, v in sorted(codes.items()))
                )
        gen_acc = gen_tot = wrong_acc = wrong_tot = 0
        for clip in clips:
            files = sorted((root / "live" / clip).glob("*.jpg"))
            samples, code, _cpu, n = _cached(
                clip, lambda files=files: [load_probe_image(f.read_bytes()) for f in files]
            )
            if samples is None:
                print(f"  genuine {clip}: {code}")
                continue
            for action, events in EVENTS[clip].items():
                for ev in events:
                    for st in _windows(n, ev):
                        win = samples[st : st + WINDOW]
                        d = faces.decide_samples(win, challenge=[action], template=None, threshold=thr)
                        gen_tot += 1
                        gen_acc += d.accepted
                        print(
                            f"  genuine {clip}[{st}:{st + WINDOW}] {action:10} {'accepted' if d.accepted else d.code}"
                        )
                        if len(timed) < args.cpu_windows and clip not in [t[0] for t in timed]:
                            timed.append((clip, st, action))
            # informative: windows asked an action the clip never shows
            for action in faces.ACTIONS:
                if action in EVENTS[clip]:
                    continue
                for st in range(0, max(1, n - WINDOW + 1), 20):
                    d = faces.decide_samples(
                        samples[st : st + WINDOW], challenge=[action], template=None, threshold=thr
                    )
                    wrong_tot += 1
                    wrong_acc += d.accepted
        print(
            f"{name}: attacks accepted {att_acc} / {att_tot} (all 16 challenges); genuine windows accepted "
            f"{gen_acc} / {gen_tot}; windows asked an action the clip never shows accepted {wrong_acc} / {wrong_tot}"
        )
    if timed:
        warm_up()
        ratios = []
        for clip, st, action in timed:
            files = sorted((root / "live" / clip).glob("*.jpg"))[st : st + WINDOW]
            frames = [load_probe_image(f.read_bytes()) for f in files]
            detect_single_face(frames[0])
            t0 = time.process_time()
            for _ in range(3):
                detect_single_face(frames[0])
            single = (time.process_time() - t0) / 3
            t0 = time.process_time()
            d = faces.check_capture(frames, challenge=[action], template=None, threshold=thr)
            cap = time.process_time() - t0
            ratios.append(cap / single)
            print(
                f"CPU {clip}[{st}:{st + WINDOW}] {action}: capture (tracked, 3 frames embedded) {cap:.2f} s "
                f"({'accepted' if d.accepted else d.code}) vs single photo {single:.3f} s: ratio {cap / single:.1f}x"
            )
        print(f"CPU ratio capture / single photo: mean {float(np.mean(ratios)):.1f}x (target <= 2x)")


if __name__ == "__main__":
    main()
