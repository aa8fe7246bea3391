"""Face check speed: per-image cost and checks/s through real Celery workers.

Prints, in one run on the same images (built in memory from KINGUARD_FACES_DIR's
special/large_original.jpg, scaled to 800 px and to 4000 px on the long side):

1. CPU time per image of the naive ``face_recognition`` call (``load_image_file`` +
   ``face_locations`` + ``face_encodings``, library defaults) and of Kinguard's pipeline
   (``load_probe_image`` + ``detect_single_face`` + ``compare``), and their ratio;
2. the pipeline's 4000 px / 800 px cost ratio (target <= 1.3), and the CPU of one prompted
   35-frame capture (``check_capture`` on a 3.5 s window of ``live/clip_06``, with a template)
   over one single-photo check (``detect_single_face`` + ``compare``) on a frame of the same
   clip, both on decoded frames as the worker gets them (target <= 2): interleaved rounds,
   median and range, in this process and again in a child with the face worker's malloc
   setting (``WORKER_MALLOC``), plus the capture over a still photo of 800 px;
3. checks/s of the worker's work (load the normalized probe file, detect, embed, compare:
   what ``face_check_run`` does minus the database) through real Celery workers on Redis
   versus a raw ``multiprocessing`` pool with the same number of processes (target >= 0.95x),
   for a few worker settings.

Usage (Redis must answer; the DB number is yours):

    .venv/bin/python bench/face_throughput.py --redis redis://127.0.0.1:6379/13
    .venv/bin/python bench/face_throughput.py --capture-only   # only the capture ratio

The Celery side uses a bench-only task defined in this module, loaded into the worker with
``-I bench.face_throughput`` and routed to the ``face`` queue like ``run_face_check``.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from celery import shared_task  # noqa: E402

from lookups.faces.detection import _fr, detect_single_face, warm_up  # noqa: E402
from lookups.faces.images import load_probe_image  # noqa: E402
from lookups.faces.matching import compare  # noqa: E402

TASK_NAME = "bench.face_throughput.check"


def worker_check(probe_path: str, template: list[float]) -> tuple[float, float]:
    """The face worker's work without the database: load the probe, detect, embed, compare.

    Returns (distance, CPU seconds spent), so both runners can be checked to do the same work."""
    started = time.process_time()
    with np.load(probe_path) as archive:
        frames = [archive[name] for name in archive.files]
    sample = detect_single_face(frames[0])
    distance = compare(np.asarray(template), sample).distance
    return distance, time.process_time() - started


@shared_task(name=TASK_NAME, ignore_result=False, acks_late=True, reject_on_worker_lost=True)
def celery_check(probe_path: str, template: list[float]) -> tuple[float, float]:
    return worker_check(probe_path, template)


# --- per-image cost ---------------------------------------------------------------------------


def scaled_jpeg(source: Path, long_side: int) -> bytes:
    from PIL import Image

    with Image.open(source) as image:
        image.load()
        factor = long_side / max(image.size)
        size = (round(image.width * factor), round(image.height * factor))
        resized = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    resized.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def cpu_cost(function, repeat: int) -> float:
    """Median CPU seconds of ``function()`` over ``repeat`` runs (after one warm-up run)."""
    function()
    times = []
    for _ in range(repeat):
        started = time.process_time()
        function()
        times.append(time.process_time() - started)
    return statistics.median(times)


def naive(data: bytes):
    fr = _fr()
    image = fr.load_image_file(io.BytesIO(data))
    locations = fr.face_locations(image)
    return fr.face_encodings(image, locations)


def pipeline(data: bytes, template: np.ndarray):
    sample = detect_single_face(load_probe_image(data))
    return compare(template, sample)


#: The face worker's malloc setting (Makefile, compose.yaml, deploy/systemd): glibc backs its
#: heap with transparent huge pages, so the 99 MB landmark model costs far fewer TLB misses.
WORKER_MALLOC = "glibc.malloc.hugetlb=1"


def _huge_pages_in_use() -> bool:
    try:
        with open("/proc/self/smaps_rollup") as rollup:
            return any(line.startswith("AnonHugePages:") and int(line.split()[1]) > 0 for line in rollup)
    except OSError:
        return False


def capture_ratio(clip: Path, rounds: int, photo: bytes | None = None) -> bool:
    """Print the capture / single-photo CPU ratio (see the module docstring).

    Interleaved: each round times a single-photo check, the capture, and a single-photo check
    again, and divides the capture by the mean of its two neighbours, so a machine that slows
    down or speeds up during the run (a shared host) moves both sides of a ratio together; the
    median over rounds is printed with the range."""
    from lookups.faces import liveness

    files = sorted(clip.glob("*.jpg"))[47:82]
    if len(files) < 35:
        print(f"capture_35_frames / single_photo: skipped ({clip} missing)")
        return False
    frames = [load_probe_image(f.read_bytes()) for f in files]
    template = detect_single_face(frames[0]).embedding

    def single() -> None:
        compare(template, detect_single_face(frames[17]))

    def capture() -> None:
        liveness.check_capture(frames, challenge=("blink",), template=template, threshold=0.6)

    still = load_probe_image(photo) if photo is not None else None

    def single_still() -> None:  # today's still-photo check, on the decoded 800 px upload
        compare(template, detect_single_face(still))

    def cpu(function) -> float:
        started = time.process_time()
        function()
        return time.process_time() - started

    single(), capture()  # warm
    ratios, singles, captures, still_ratios = [], [], [], []
    for _ in range(max(rounds, 3)):
        before, spent, after = cpu(single), cpu(capture), cpu(single)
        ratios.append(spent / ((before + after) / 2))
        singles.append((before + after) / 2)
        captures.append(spent)
        if still is not None:
            still_ratios.append(spent / ((cpu(single_still) + cpu(single_still)) / 2))
    ratio = statistics.median(ratios)
    malloc = "huge pages (the worker's setting)" if _huge_pages_in_use() else "plain"
    print(
        f"capture_35_frames / single_photo: {ratio:.2f}x (median of {len(ratios)} interleaved rounds, "
        f"{min(ratios):.2f}-{max(ratios):.2f}; {statistics.median(captures):.3f} s / "
        f"{statistics.median(singles):.3f} s, {clip.name} frames 48-82, {liveness.BEST_FRAMES} embedded, "
        f"malloc {malloc}; target <= 2.0) {'OK' if ratio <= 2.0 else 'MISSED'}"
    )
    if still_ratios:
        still_ratio = statistics.median(still_ratios)
        print(
            f"capture_35_frames / single_photo_800px: {still_ratio:.2f}x (the same captures over a still "
            f"photo of 800 px, the size the still-photo path gets; {min(still_ratios):.2f}-"
            f"{max(still_ratios):.2f}, malloc {malloc})"
        )
    return True


def capture_ratio_both(clip: Path, rounds: int, photo: bytes | None = None) -> None:
    """The ratio in this process, then in a child started with the face worker's malloc setting
    (glibc reads GLIBC_TUNABLES only at start-up), unless this process already has it."""
    if not capture_ratio(clip, rounds, photo):
        return
    if os.environ.get("GLIBC_TUNABLES") == WORKER_MALLOC or not sys.platform.startswith("linux"):
        return  # this process is that child already (or has no glibc tunables to set)
    env = dict(os.environ, GLIBC_TUNABLES=WORKER_MALLOC)
    command = [sys.executable, __file__, "--capture-only", "--capture-rounds", str(rounds)]
    command += ["--faces", str(clip.parents[1])]
    subprocess.run(command, env=env, check=False)


# --- throughput -------------------------------------------------------------------------------


def _pool_init() -> None:
    warm_up()


def pool_rate(processes: int, jobs: list[tuple[str, list[float]]]) -> tuple[float, float]:
    """(checks/s, mean CPU s per check) of a raw fork pool, chunksize 1 like prefetch 1."""
    context = multiprocessing.get_context("fork")
    with context.Pool(processes, initializer=_pool_init) as pool:
        pool.starmap(worker_check, jobs[: processes * 2], chunksize=1)  # warm
        started = time.perf_counter()
        cpu = [c for _, c in pool.imap_unordered(_star_check, jobs, chunksize=1)]
        return len(jobs) / (time.perf_counter() - started), statistics.mean(cpu)


def _star_check(job: tuple[str, list[float]]) -> tuple[float, float]:
    return worker_check(*job)


class BenchWorker:
    def __init__(self, *, redis_url: str, concurrency: int, prefetch: int, log_path: Path):
        env = dict(os.environ)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "config.settings.local",
                "CELERY_BROKER_URL": redis_url,
                "CELERY_RESULT_BACKEND": redis_url,
                "PYTHONPATH": str(REPO),
                "KINGUARD_VAR_DIR": str(log_path.parent / "var"),
            }
        )
        command = [
            str(Path(sys.executable).with_name("celery")),
            "-A",
            "config",
            "worker",
            "-Q",
            "face",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            f"--prefetch-multiplier={prefetch}",
            "-O",
            "fair",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=WARNING",
            "-n",
            f"bench-{os.getpid()}-{prefetch}@%h",
            "-I",
            "bench.face_throughput",
        ]
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()


def celery_rate(jobs: list[tuple[str, list[float]]], concurrency: int, timeout: float) -> tuple[float, float]:
    """(checks/s, mean CPU s per check) through the worker: publish all, wait for all results."""

    def run(batch):
        results = [celery_check.apply_async(args=job, queue="face") for job in batch]
        return [result.get(timeout=timeout)[1] for result in results]

    run(jobs[: concurrency * 2])  # warm: the worker is up and every pool process has its models
    started = time.perf_counter()
    cpu = run(jobs)
    return len(jobs) / (time.perf_counter() - started), statistics.mean(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", default=os.environ.get("KINGUARD_FACES_DIR", str(REPO.parent / "shared" / "faces")))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    parser.add_argument("--repeat", type=int, default=5, help="runs per per-image CPU measurement (median)")
    parser.add_argument("--naive-repeat", type=int, default=2, help="runs of the (slow) naive call at 4000 px")
    parser.add_argument("--tasks", type=int, default=120, help="checks per throughput run")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--prefetch", default="1,4", help="worker prefetch multipliers to try")
    parser.add_argument("--rounds", type=int, default=4, help="pool/Celery rounds (medians reported)")
    parser.add_argument("--capture-rounds", type=int, default=9, help="interleaved capture/single rounds")
    parser.add_argument("--capture-only", action="store_true", help="only the capture / single-photo ratio")
    args = parser.parse_args()
    clip = Path(args.faces) / "live" / "clip_06"
    source = Path(args.faces) / "special" / "large_original.jpg"
    if args.capture_only:
        warm_up()
        capture_ratio_both(clip, args.capture_rounds, scaled_jpeg(source, 800) if source.is_file() else None)
        return

    if not source.is_file():
        sys.exit(f"{source} not found: set KINGUARD_FACES_DIR or --faces")

    warm_up()
    images = {800: scaled_jpeg(source, 800), 4000: scaled_jpeg(source, 4000)}
    template = detect_single_face(load_probe_image(images[800])).embedding

    print(
        f"Images: {source.name} scaled to 800 px ({len(images[800]) // 1024} KB) and 4000 px "
        f"({len(images[4000]) // 1024} KB) JPEG q90; CPU time per image, median of runs, models warm."
    )
    cost = {}
    for side, data in images.items():
        cost["naive", side] = cpu_cost(lambda d=data: naive(d), args.naive_repeat if side == 4000 else args.repeat)
        cost["pipeline", side] = cpu_cost(lambda d=data: pipeline(d, template), args.repeat)
    print(f"{'':24}{'800 px':>10}{'4000 px':>10}")
    for kind, label in (("naive", "naive face_recognition"), ("pipeline", "Kinguard pipeline")):
        print(f"{label:24}{cost[kind, 800]:>9.3f}s{cost[kind, 4000]:>9.3f}s")
    print(
        f"{'naive / pipeline':24}{cost['naive', 800] / cost['pipeline', 800]:>9.1f}x"
        f"{cost['naive', 4000] / cost['pipeline', 4000]:>9.1f}x"
    )
    ratio = cost["pipeline", 4000] / cost["pipeline", 800]
    print(f"pipeline 4000 px / 800 px cost: {ratio:.2f}x (target <= 1.30) {'OK' if ratio <= 1.3 else 'MISSED'}")
    capture_ratio_both(clip, args.capture_rounds, images[800])

    # Throughput: the worker's job on normalized probe files, as the web process writes them.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ["CELERY_BROKER_URL"] = args.redis
    os.environ["CELERY_RESULT_BACKEND"] = args.redis
    import django

    django.setup()
    import redis

    from config.celery import app  # noqa: F401 - the app the task is sent with

    redis.Redis.from_url(args.redis).flushdb()
    with tempfile.TemporaryDirectory(prefix="kg-bench-") as tmp:
        jobs = []
        for index in range(args.tasks):
            frame = load_probe_image(images[800 if index % 2 else 4000])
            path = Path(tmp) / f"probe-{index}.npz"
            np.savez(path, frame)
            jobs.append((str(path), [float(x) for x in template]))
        print(
            f"\nThroughput: {args.tasks} checks per run (worker's work on normalized probes), "
            f"{args.processes} processes; {args.rounds} rounds, pool and Celery back to back in "
            "alternating order; medians (the machine is shared, so single runs are noisy)."
        )
        for prefetch in [int(p) for p in args.prefetch.split(",")]:
            worker = BenchWorker(
                redis_url=args.redis,
                concurrency=args.processes,
                prefetch=prefetch,
                log_path=Path(tmp) / f"worker-{prefetch}.log",
            )
            pool_runs, celery_runs = [], []
            try:
                for round_no in range(args.rounds):
                    order = ("pool", "celery") if round_no % 2 == 0 else ("celery", "pool")
                    for runner in order:
                        if runner == "pool":
                            pool_runs.append(pool_rate(args.processes, jobs))
                        else:
                            celery_runs.append(celery_rate(jobs, args.processes, timeout=300))
            finally:
                worker.stop()
            ratios = [c[0] / p[0] for p, c in zip(pool_runs, celery_runs, strict=True)]
            pool_med = statistics.median(r for r, _ in pool_runs)
            celery_med = statistics.median(r for r, _ in celery_runs)
            ratio = statistics.median(ratios)
            print(
                f"  prefetch {prefetch}: raw pool {pool_med:6.2f} checks/s "
                f"({statistics.mean(c for _, c in pool_runs) * 1000:.0f} ms CPU/check) | "
                f"Celery prefork -O fair acks_late {celery_med:6.2f} checks/s "
                f"({statistics.mean(c for _, c in celery_runs) * 1000:.0f} ms CPU/check) | "
                f"Celery/pool {ratio:.3f}x (runs {min(ratios):.2f}-{max(ratios):.2f}; target >= 0.95) "
                f"{'OK' if ratio >= 0.95 else 'MISSED'}"
            )
    redis.Redis.from_url(args.redis).flushdb()


if __name__ == "__main__":
    main()
