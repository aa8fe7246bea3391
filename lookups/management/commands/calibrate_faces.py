"""``manage.py calibrate_faces DIR --enroll K``: FMR/FNMR of the face pipeline on a labeled set.

Needs no database (no system or migration checks). The measuring loop is
:func:`lookups.faces.calibration.calibrate`; this module only parses options and prints.
The last output line is always exactly
``threshold=T fmr=X% fnmr=Y% genuine=N impostor=M`` for the configured threshold.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lookups.faces.calibration import calibrate


def _pct(x: float, digits: int) -> str:
    return "n/a" if math.isnan(x) else f"{100.0 * x:.{digits}f}%"


def format_report(result: dict[str, Any], *, verbose_fta: bool = False) -> list[str]:
    """Human-readable report lines for a :func:`calibrate` result; the last
    line is the machine-readable summary for the configured threshold."""
    lines = [
        f"model={result['model_version']} enroll={result['enroll']} "
        f"identities={len(result['identities'])} images={result['n_images']} "
        f"templates={result['n_templates']} probes={result['n_probes']} "
        f"({result['seconds']:.1f} s)",
        f"genuine comparisons={len(result['genuine'])} impostor comparisons={len(result['impostor'])}",
        "",
        f"{'threshold':>9}  {'FNMR':>7}  {'FMR':>8}  {'false non-matches':>17}  {'false matches':>13}",
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['threshold']:>9.2f}  {_pct(row['fnmr'], 1):>7}  {_pct(row['fmr'], 3):>8}  "
            f"{row['false_non_matches']:>17}  {row['false_matches']:>13}"
        )
    lines.append("")
    max_fmr = _pct(result["max_fmr"], 1)
    best = result["best_grid_threshold"]
    exact = result["exact_threshold"]
    lines.append(f"largest grid threshold with FMR <= {max_fmr}: " + ("none" if best is None else f"{best:.2f}"))
    lines.append(f"largest threshold with FMR <= {max_fmr} (exact): " + ("n/a" if exact is None else f"{exact:.4f}"))
    enroll_fta, probe_fta = result["enroll_fta"], result["probe_fta"]
    lines.append(
        f"failure to acquire: {len(enroll_fta) + len(probe_fta)} "
        f"(enrollment {len(enroll_fta)}, probes {len(probe_fta)}; not counted as non-matches)"
    )
    by_code: dict[str, int] = {}
    for _, code in probe_fta:
        by_code[code] = by_code.get(code, 0) + 1
    if by_code:
        lines.append(
            "probe FTA by code (refused with a retake message, never decided on): "
            + ", ".join(f"{code}={n}" for code, n in sorted(by_code.items()))
        )
    if verbose_fta or len(enroll_fta) + len(probe_fta) <= 20:
        for rel, code in enroll_fta + probe_fta:
            lines.append(f"  FTA {rel}: {code}")
    if result["closest_impostors"]:
        lines.append("closest impostor comparisons (distance, probe, template):")
        for dist, rel, ident in result["closest_impostors"][:5]:
            lines.append(f"  {dist:.4f}  {rel}  vs {ident}")
    conf = result["configured"]
    lines.append(
        f"shipped rule (threshold + cohort margin {result['cohort_margin']:.2f}, the other templates as cohort) "
        f"at threshold={conf['threshold']:.2f}: fnmr={_pct(conf['fnmr_cohort'], 2)} "
        f"fmr={_pct(conf['fmr_cohort'], 3)} (impostor not enrolled) "
        f"fmr={_pct(conf['fmr_cohort_enrolled'], 3)} (impostor enrolled)"
    )
    lines.extend(_nearest_pair_lines(result, conf["threshold"]))
    lines.append(
        f"threshold={conf['threshold']:.2f} fmr={_pct(conf['fmr'], 3)} "
        f"fnmr={_pct(conf['fnmr'], 2)} genuine={len(result['genuine'])} "
        f"impostor={len(result['impostor'])}"
    )
    return lines


def _nearest_pair_lines(result: dict[str, Any], threshold: float) -> list[str]:
    """The look-alike line (issue 10): FMR of each identity's nearest other identity's photos
    against its template, then one indented line per pair naming it."""
    pairs = result.get("nearest_pairs") or []
    if not pairs:
        return []
    names = result.get("names") or {}

    def who(folder: str) -> str:
        return f"{folder} ({names[folder]})" if folder in names else folder

    summary = result["nearest_pairs_fmr"]
    lines = [
        f"nearest-identity pairs: fmr={_pct(summary['fmr'], 2)} "
        f"({summary['false_matches']} of {summary['comparisons']} photos of each identity's nearest "
        f"other identity accepted against its template; overall fmr={_pct(result['configured']['fmr'], 3)}) "
        f"at threshold={threshold:.2f}, {len(pairs)} pairs (threshold alone: look-alike not enrolled)",
        f"nearest-identity pairs, shipped rule (look-alike enrolled, cohort): fmr={_pct(summary['fmr_cohort'], 2)} "
        f"({summary['false_matches_cohort']} of {summary['comparisons']})",
    ]
    for pair in sorted(pairs, key=lambda p: (p["closest"], p["identity"])):
        lines.append(
            f"  {who(pair['identity'])} <- {who(pair['nearest'])}: template distance "
            f"{pair['template_distance']:.3f}, closest photo {pair['closest']:.3f}, "
            f"accepted {pair['false_matches']}/{pair['comparisons']} "
            f"(with cohort {pair['false_matches_cohort']})"
        )
    return lines


class Command(BaseCommand):
    help = (
        "Measure FMR/FNMR of the face pipeline (template of the first K images per identity "
        "vs every other image) and suggest a threshold. Needs no database."
    )
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dir", type=Path, help="folder with one sub-folder per identity")
        parser.add_argument("--enroll", type=int, required=True, help="images per template (K)")
        parser.add_argument(
            "--threshold",
            type=float,
            default=None,
            help="threshold for the summary line (default: DEFAULT_THRESHOLD)",
        )
        parser.add_argument(
            "--identities",
            default=None,
            help="e.g. person_01-25,person_36-40 (default: all sub-folders)",
        )
        parser.add_argument("--max-fmr", type=float, default=0.001, help="target FMR (default 0.001)")
        parser.add_argument(
            "--list-fta", action="store_true", help="name every refused image (default: only when <= 20)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        root: Path = options["dir"]
        if not root.is_dir():
            raise CommandError(f"{root} is not a directory")
        if options["enroll"] < 1:
            raise CommandError("--enroll must be >= 1")
        if options["threshold"] is not None and not 0.0 < options["threshold"] < 2.0:
            raise CommandError("--threshold must be in (0, 2)")
        verbosity = int(options.get("verbosity", 1))

        def progress(ident: str, n_enrolled: int, n_probes: int) -> None:
            if verbosity >= 2:
                self.stderr.write(f"{ident}: {n_enrolled} enrolled, {n_probes} probes")

        try:
            result = calibrate(
                root,
                options["enroll"],
                options["identities"],
                None,
                threshold=options["threshold"],
                max_fmr=options["max_fmr"],
                progress=progress,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        for line in format_report(result, verbose_fta=options["list_fta"]):
            self.stdout.write(line)
