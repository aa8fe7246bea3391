"""Probe files: the normalized pixels of a face submission, private, deleted when the check ends."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings

if TYPE_CHECKING:
    from collections.abc import Sequence


def _probe_path(check_id: uuid.UUID) -> Path:
    return Path(settings.PROBE_DIR) / f"{check_id}.npz"


def _write_probe(path: Path, frames: Sequence[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    buffer = io.BytesIO()
    np.savez(buffer, *frames)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(buffer.getvalue())


def delete_probe(path: str | Path) -> None:
    if path:
        Path(path).unlink(missing_ok=True)
