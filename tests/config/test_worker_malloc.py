"""The face worker's malloc setting (huge pages for the landmark model) is the same everywhere a
worker is started, and it really puts the models' memory on huge pages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SETTING = "GLIBC_TUNABLES=glibc.malloc.hugetlb=1"


def test_every_face_worker_start_sets_it() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    key, value = SETTING.split("=", 1)
    assert compose["services"]["face-worker"]["environment"][key] == value
    unit = (REPO / "deploy" / "systemd" / "kinguard-face-worker.service").read_text()
    assert f"Environment={SETTING}\n" in unit
    makefile = (REPO / "Makefile").read_text()
    assert f"WORKER_ENV := {SETTING}\n" in makefile
    celery_lines = [line for line in makefile.splitlines() if "bin/celery" in line and " worker " in line]
    assert celery_lines and all(line.strip().startswith("$(WORKER_ENV) ") for line in celery_lines)
    bench = (REPO / "bench" / "face_throughput.py").read_text()
    assert f'WORKER_MALLOC = "{value}"' in bench


def _thp_mode() -> str | None:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return None
    found = re.search(r"\[(\w+)\]", text)
    return found.group(1) if found else None


@pytest.mark.skipif(_thp_mode() not in ("madvise", "always"), reason="the kernel's transparent huge pages are off")
def test_the_setting_puts_the_face_models_on_huge_pages() -> None:
    probe = (
        "import warnings; warnings.filterwarnings('ignore')\n"
        "from lookups.faces.detection import warm_up; warm_up()\n"
        "print(next(int(l.split()[1]) for l in open('/proc/self/smaps_rollup') if l.startswith('AnonHugePages:')))\n"
    )
    key, value = SETTING.split("=", 1)

    def huge_kb(env: dict[str, str]) -> int:
        out = subprocess.run(
            [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=120
        )
        return int(out.stdout.split()[-1])

    plain = {k: v for k, v in os.environ.items() if k != key}
    with_setting = huge_kb({**plain, key: value})
    assert with_setting >= 50 * 1024  # most of the ~100 MB of models
    if _thp_mode() == "madvise":  # without the setting nothing asks for huge pages
        assert huge_kb(plain) < with_setting / 4
