"""Degraded copies of a folder-per-identity face set (issue 11, "Degraded probes").

    .venv/bin/python bench/degrade_faces.py OUT [--src ../shared/faces] [--identities person_01-25,person_36-40]
    .venv/bin/python manage.py calibrate_faces OUT --enroll 5

For each identity, the first ``--enroll`` photos (default 5, as the desk enrolls) are copied
unchanged as ``a_NN.jpg`` (the desk enrolls from good photos, and ``calibrate_faces`` takes
the first files by name as the
template); every other photo becomes probes ``d_NN_<variant>.jpg``: JPEG quality 40, rotation
by -10 and +10 degrees, brightness x0.6, the face downscaled to about 120 px high, and
combinations. OUT must be outside the repository (the set is licence-restricted); by default
only the tuning identities are written (held-out identities are not to be tuned on).
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import sys
from pathlib import Path

from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lookups.faces.calibration import default_faces_dir, parse_identities  # noqa: E402

FACE_PX = 120


def _jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _rotate(im: Image.Image, degrees: float) -> Image.Image:
    return im.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=(128, 128, 128))


def _darker(im: Image.Image) -> Image.Image:
    return ImageEnhance.Brightness(im).enhance(0.6)


def _face_height(im: Image.Image) -> int | None:
    import numpy as np

    from lookups.faces.detection import _fr

    boxes = _fr().face_locations(np.asarray(im.convert("RGB")), number_of_times_to_upsample=1, model="hog")
    return (boxes[0][2] - boxes[0][0]) if len(boxes) == 1 else None


def _small(im: Image.Image) -> Image.Image:
    """Scale so the face box is ~FACE_PX high (only ever down)."""
    height = _face_height(im)
    if not height or height <= FACE_PX:
        return im
    f = FACE_PX / height
    return im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), Image.Resampling.LANCZOS)


VARIANTS = {
    "q40": lambda im: _jpeg(im, 40),
    "rotm10": lambda im: _rotate(im, -10),
    "rotp10": lambda im: _rotate(im, 10),
    "dark": _darker,
    "small": _small,
    "dark_q40": lambda im: _jpeg(_darker(im), 40),
    "rotp10_q40": lambda im: _jpeg(_rotate(im, 10), 40),
    "small_dark_q40": lambda im: _jpeg(_darker(_small(im)), 40),
    "all": lambda im: _jpeg(_darker(_rotate(_small(im), -10)), 40),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--src", type=Path, default=default_faces_dir())
    parser.add_argument("--identities", default="person_01-25,person_36-40")
    parser.add_argument("--enroll", type=int, default=5)
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    if args.out.resolve().is_relative_to(repo):
        parser.error("OUT must be outside the repository")
    available = [p.name for p in args.src.iterdir() if p.is_dir()]
    idents = parse_identities(args.identities, available)
    args.out.mkdir(parents=True, exist_ok=True)
    if (args.src / "identities.csv").is_file():
        with (args.src / "identities.csv").open(newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh) if r["folder"] in idents]
        with (args.out / "identities.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["folder", "identity"], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    n = 0
    for ident in idents:
        dst = args.out / ident
        if dst.exists():
            shutil.rmtree(dst)
        dst.mkdir()
        files = sorted(p for p in (args.src / ident).iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        for i, path in enumerate(files):
            if i < args.enroll:
                shutil.copyfile(path, dst / f"a_{path.stem}{path.suffix}")
                continue
            with Image.open(path) as im:
                im = im.convert("RGB")
                for name, fn in VARIANTS.items():
                    fn(im).save(dst / f"d_{path.stem}_{name}.jpg", "JPEG", quality=95)
                    n += 1
    print(f"{len(idents)} identities, {n} degraded probes in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
