"""``manage.py liveness_eval DIR --challenge ACTIONS [--enroll-dir E]`` (issue 11 contract).

DIR holds one sub-folder per capture with frames ``001.jpg``, ``002.jpg``, ... in time order
at 10 fps. For each capture (folder names sorted) the frames are decoded with
:func:`lookups.faces.images.load_probe_image` and decided by
:func:`lookups.faces.check_capture`, the same code path as the face-step worker. Output, one
line per capture: ``<folder> accepted`` or ``<folder> refused <code>``; the last line is
exactly ``liveness: accepted=A refused=R``. Needs no database.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from lookups import faces
from lookups.faces.errors import ProbeRejected
from lookups.faces.images import load_probe_image
from lookups.faces.matching import DEFAULT_THRESHOLD, MODEL_VERSION

_FRAME_RE = re.compile(r"^(\d+)\.(jpe?g|png)$", re.IGNORECASE)
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def capture_frame_paths(folder: Path) -> list[Path]:
    """Frame files ``NNN.jpg`` of one capture, in numeric order."""
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_file() and (m := _FRAME_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def parse_challenge(spec: str) -> tuple[str, ...]:
    """``blink`` or ``open_mouth,turn_left`` -> tuple of known actions (ValueError otherwise)."""
    actions = tuple(a.strip() for a in spec.split(",") if a.strip())
    if not actions:
        raise ValueError("--challenge needs at least one action")
    unknown = [a for a in actions if a not in faces.ACTIONS]
    if unknown:
        raise ValueError(f"unknown action(s) {', '.join(unknown)}; known: {', '.join(faces.ACTIONS)}")
    return actions


def evaluate_capture(
    folder: Path, challenge: tuple[str, ...], template: np.ndarray | None, threshold: float
) -> faces.CaptureDecision:
    """Decode a capture folder and decide it with :func:`faces.check_capture`."""
    frames: list[np.ndarray] = []
    for path in capture_frame_paths(folder):
        try:
            frames.append(load_probe_image(path.read_bytes()))
        except ProbeRejected as exc:
            return faces.CaptureDecision(False, exc.code, None, 0, threshold, MODEL_VERSION)
    return faces.check_capture(frames, challenge=challenge, template=template, threshold=threshold)


class Command(BaseCommand):
    help = "Run the face step's capture check (prompted liveness, optional 1:1 match) on capture folders."
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dir", type=Path, help="folder with one sub-folder of frames per capture")
        parser.add_argument("--challenge", required=True, help="e.g. blink or open_mouth,turn_left")
        parser.add_argument("--enroll-dir", type=Path, default=None, help="enrollment images to match against")
        parser.add_argument("--threshold", type=float, default=None, help="default: DEFAULT_THRESHOLD")

    def handle(self, *args: Any, **options: Any) -> None:
        root: Path = options["dir"]
        if not root.is_dir():
            raise CommandError(f"{root} is not a directory")
        try:
            challenge = parse_challenge(options["challenge"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        threshold = options["threshold"] if options["threshold"] is not None else DEFAULT_THRESHOLD
        if not 0.0 < threshold < 2.0:
            raise CommandError("--threshold must be in (0, 2)")
        template: np.ndarray | None = None
        enroll_dir: Path | None = options["enroll_dir"]
        if enroll_dir is not None:
            if not enroll_dir.is_dir():
                raise CommandError(f"{enroll_dir} is not a directory")
            paths = sorted(p for p in enroll_dir.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
            if not paths:
                raise CommandError(f"{enroll_dir} holds no images")
            try:
                images = [load_probe_image(p.read_bytes()) for p in paths]
                template = faces.build_template_from_images(images)
            except ProbeRejected as exc:
                raise CommandError(f"cannot enroll from {enroll_dir}: {exc.code}") from exc
        accepted = refused = 0
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            decision = evaluate_capture(folder, challenge, template, threshold)
            if decision.accepted:
                accepted += 1
                self.stdout.write(f"{folder.name} accepted")
            else:
                refused += 1
                self.stdout.write(f"{folder.name} refused {decision.code}")
        self.stdout.write(f"liveness: accepted={accepted} refused={refused}")
