"""Genuine / impostor distances of the live clips (``../shared/faces/live``): single frame vs
the capture decision (mean embedding of the sharpest frame of each third of a 3.5 s window).

    flock /tmp/kg-heavy.lock .venv/bin/python bench/live_match.py [--live DIR] [--threshold T]

Per clip, the template is built from 5 frames of its first 4 s (frames 0, 10, 20, 30, 40: the
"desk photos"); every later 35-frame window is one capture. Genuine: a clip's captures against
its own template; impostor: against every other clip's template (with the cohort rule, the
other templates as the cohort). The enrollment frames come from the same video as the probes
(same light and camera), so FNMR here is optimistic; the clips are 7 people only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lookups.faces.calibration import default_faces_dir  # noqa: E402
from lookups.faces.detection import detect_single_face  # noqa: E402
from lookups.faces.errors import ProbeRejected  # noqa: E402
from lookups.faces.images import load_probe_image  # noqa: E402
from lookups.faces.matching import DEFAULT_THRESHOLD, build_template, decide  # noqa: E402

WINDOW = 35
ENROLL_FRAMES = (0, 10, 20, 30, 40)


def _sample(path: Path):
    try:
        return detect_single_face(load_probe_image(path.read_bytes()))
    except ProbeRejected:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", type=Path, default=default_faces_dir() / "live")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    args = parser.parse_args(argv)
    templates: dict[str, np.ndarray] = {}
    captures: dict[str, list[tuple[np.ndarray, list[np.ndarray]]]] = {}
    for clip in sorted(p for p in args.live.iterdir() if p.is_dir()):
        files = sorted(clip.glob("*.jpg"))
        enrolled = [s for s in (_sample(files[i]) for i in ENROLL_FRAMES if i < len(files)) if s is not None]
        if len(enrolled) < 3:
            continue
        templates[clip.name] = build_template(enrolled)
        captures[clip.name] = []
        for start in range(ENROLL_FRAMES[-1] + 5, len(files) - WINDOW + 1, WINDOW):
            thirds = np.array_split(np.arange(start, start + WINDOW, 2), 3)
            best = []
            for part in thirds:
                samples = [s for s in (_sample(files[i]) for i in part) if s is not None]
                if samples:
                    best.append(max(samples, key=lambda s: s.sharpness).embedding)
            if len(best) == 3:
                captures[clip.name].append((np.mean(best, axis=0), best))
        print(f"{clip.name}: {len(enrolled)} enrollment frames, {len(captures[clip.name])} captures", flush=True)
    t = args.threshold
    names = sorted(templates)
    stats = {"gen": 0, "fnm_mean": 0, "fnm_single": 0, "single": 0, "imp": 0, "fm_mean": 0, "fm_cohort": 0}
    closest_impostor = np.inf
    for name in names:
        for mean, frames in captures[name]:
            d = float(np.linalg.norm(templates[name] - mean))
            others = min(float(np.linalg.norm(templates[o] - mean)) for o in names if o != name)
            stats["gen"] += 1
            stats["fnm_mean"] += not decide(d, t, others)
            for e in frames:
                stats["single"] += 1
                stats["fnm_single"] += float(np.linalg.norm(templates[name] - e)) > t
            for o in names:
                if o == name:
                    continue
                di = float(np.linalg.norm(templates[o] - mean))
                closest_impostor = min(closest_impostor, di)
                rest = min(float(np.linalg.norm(templates[x] - mean)) for x in names if x != o)
                stats["imp"] += 1
                stats["fm_mean"] += di <= t
                stats["fm_cohort"] += decide(di, t, rest)
    print(
        f"threshold={t:.2f} captures={stats['gen']} capture FNMR={stats['fnm_mean']}/{stats['gen']} "
        f"single-frame FNMR={stats['fnm_single']}/{stats['single']} impostor captures={stats['imp']} "
        f"FM threshold alone={stats['fm_mean']} FM shipped rule={stats['fm_cohort']} "
        f"closest impostor={closest_impostor:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
