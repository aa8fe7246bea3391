"""``manage.py liveness_eval``: the exact output contract, on a tmp DIR of real live frames."""

from __future__ import annotations

import os
import re
import shutil
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from lookups.faces.calibration import default_faces_dir

LINE = re.compile(r"^(\S+) (accepted|refused [a-z_]+)$")


@pytest.fixture(scope="module")
def live() -> Path:
    root = default_faces_dir() / "live"
    if not (root / "clip_00" / "001.jpg").is_file():
        msg = f"live clips not found at {root} (set KINGUARD_FACES_DIR)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


def _run(*args: str) -> list[str]:
    out = StringIO()
    call_command("liveness_eval", *args, stdout=out)
    return out.getvalue().splitlines()


def test_exact_output_format(tmp_path: Path, live: Path) -> None:
    # "a_real": 6 real frames of a live clip (too short to show a blink, so a liveness refusal);
    # "b_blank": six grey frames (no face); "c_empty": no frames at all.
    real = tmp_path / "a_real"
    real.mkdir()
    for i in range(1, 7):
        shutil.copy(live / "clip_00" / f"{i:03d}.jpg", real / f"{i:03d}.jpg")
    blank = tmp_path / "b_blank"
    blank.mkdir()
    for i in range(1, 7):
        Image.fromarray(np.full((240, 320, 3), 128, np.uint8)).save(blank / f"{i:03d}.jpg")
    (tmp_path / "c_empty").mkdir()
    short = tmp_path / "d_short"  # 3 real frames: too short to show any action (a retake)
    short.mkdir()
    for i in range(1, 4):
        shutil.copy(live / "clip_00" / f"{i:03d}.jpg", short / f"{i:03d}.jpg")
    (tmp_path / "not_a_capture.txt").write_text("ignored")

    lines = _run(str(tmp_path), "--challenge", "blink,turn_left")
    assert len(lines) == 5
    assert [ln.split()[0] for ln in lines[:4]] == ["a_real", "b_blank", "c_empty", "d_short"]
    assert all(LINE.match(ln) for ln in lines[:4])
    assert lines[0].startswith("a_real refused ")
    assert lines[1] in ("b_blank refused no_face", "b_blank refused low_quality")
    assert lines[2:4] == ["c_empty refused too_few_frames", "d_short refused too_few_frames"]
    assert lines[-1] == "liveness: accepted=0 refused=4"


def test_frames_are_read_in_numeric_order(tmp_path: Path) -> None:
    from lookups.management.commands.liveness_eval import capture_frame_paths

    for name in ("010.jpg", "002.jpg", "001.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in capture_frame_paths(tmp_path)] == ["001.jpg", "002.jpg", "010.jpg"]


def test_unreadable_frame_is_a_refusal_not_a_traceback(tmp_path: Path) -> None:
    cap = tmp_path / "cap"
    cap.mkdir()
    (cap / "001.jpg").write_bytes(b"not an image")
    assert _run(str(tmp_path), "--challenge", "blink") == ["cap refused not_an_image", "liveness: accepted=0 refused=1"]


@pytest.mark.parametrize("spec", ["smile", "blink,wink", "", ","])
def test_unknown_action_is_a_command_error(tmp_path: Path, spec: str) -> None:
    with pytest.raises(CommandError):
        _run(str(tmp_path), "--challenge", spec)


def test_bad_dir_is_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="not a directory"):
        _run(str(tmp_path / "missing"), "--challenge", "blink")
    with pytest.raises(CommandError, match="not a directory"):
        _run(str(tmp_path), "--challenge", "blink", "--enroll-dir", str(tmp_path / "missing"))
    (tmp_path / "enroll").mkdir()
    with pytest.raises(CommandError, match="no images"):
        _run(str(tmp_path), "--challenge", "blink", "--enroll-dir", str(tmp_path / "enroll"))
