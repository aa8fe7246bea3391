"""Test-only Celery task, loaded into the integration tests' workers with ``-I``.

It reports on the worker process it runs in, so a test can check what happened there
(e.g. that the face models were loaded once, not per task). Never loaded in production.
"""

import json
import os
from pathlib import Path

from celery import shared_task

from lookups.faces.detection import _fr


@shared_task(name="tests.worker_probe.report_process")
def report_process(out_path: str) -> None:
    loads = _fr.cache_info()
    report = {"pid": os.getpid(), "model_loads": loads.misses, "model_uses": loads.hits}
    tmp = Path(out_path).with_suffix(".tmp")
    tmp.write_text(json.dumps(report))
    tmp.rename(out_path)
