"""``cxrexplain audit``: where the model looks across a data set, against the lungs.

The work is :func:`cxrexplain.cli.audit.to_folder.audit_to_folder` (also
``cxrexplain.audit_command.audit_to_folder``), imported when the subcommand runs. The exit
code says the verdict: 0 not flagged, 3 flagged.

Example:
    >>> from cxrexplain.cli import main
    >>> main(["audit", "pneumonia.keras", "cxr", "--lungs", "lungs.keras",
    ...       "--out", "audit", "--no-progress"])  # doctest: +SKIP
    not flagged: ...
    wrote audit/index.html, audit/audit.csv, audit/audit.json
    0
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cxrexplain.cli._options import add_method, check_methods, load_classifier, target
from cxrexplain.cli._subcommand import Subcommand
from cxrexplain.errors import InvalidInputError

__all__ = ["COMMAND"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="a .keras classifier saved by cxrexplain")
    parser.add_argument("images", nargs="+", type=Path, help="image files or folders")
    parser.add_argument("--lungs", type=Path, required=True,
                        help="a lungs .keras file (cxrexplain lungs train) or a folder of "
                        "masks named like the images")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder: index.html, audit.csv, audit.json (and "
                        "counterfactual.csv)")
    parser.add_argument("--groups", choices=["folder"],
                        help="also summarise per parent folder (one per hospital or source)")
    parser.add_argument("--labels", choices=["folder"],
                        help="each film's true class is its parent folder's name (as "
                        "test/NORMAL, test/PNEUMONIA); turns the swap test on")
    parser.add_argument("--counterfactual", action=argparse.BooleanOptionalAction,
                        default=None,
                        help="run the swap test (each film's lungs on another film's "
                        "surroundings; written to OUT/counterfactual.csv); default: on with "
                        "--labels")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the swap test's donors, the intervals and the encoding "
                        "probe (default 0)")
    parser.add_argument("--metadata", type=Path,
                        help="a CSV with a row per film: a path column (--metadata-path), "
                        "optional 'label' (class names: the films' labels) and metadata "
                        "columns (patient, view, sex, age, source, ...)")
    parser.add_argument("--metadata-path", default="image",
                        help="the metadata CSV's column of film paths (default 'image')")
    parser.add_argument("--by",
                        help="metadata columns to report by, e.g. view,sex,age: lung share, "
                        "performance (with labels; OUT/subgroups.csv) and the encoding probe "
                        "(OUT/encoding.csv) per value")
    parser.add_argument("--bands", default="40,60,80",
                        help="edges that cut a numeric column (the age) into bands "
                        "(default 40,60,80)")
    parser.add_argument("--encoding", action=argparse.BooleanOptionalAction, default=None,
                        help="run the encoding probe (default: on with --by)")
    add_method(parser)
    parser.add_argument("--target",
                        help="class name or index to explain (default: predicted)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--resume", action="store_true",
                        help="keep the films already in OUT/audit.csv and audit the rest")
    parser.add_argument("--no-progress", action="store_true")


def _run(args: argparse.Namespace) -> int:
    check_methods([args.method])
    from cxrexplain.cli.audit.to_folder import FLAGGED_EXIT_CODE, audit_to_folder
    from cxrexplain.io import find_images

    classifier = load_classifier(args.model)
    if not args.lungs.exists():
        raise InvalidInputError(f"--lungs: no such file or folder '{args.lungs}'")
    if args.by and args.metadata is None:
        raise InvalidInputError("--by: give the films' metadata with --metadata FILE")
    metadata = None
    if args.metadata is not None:
        from cxrexplain.cli.audit.metadata import read_metadata

        metadata = read_metadata(args.metadata, path=args.metadata_path)
    report = audit_to_folder(
        classifier, find_images(args.images), args.lungs, args.out, method=args.method,
        target=target(args.target), groups=args.groups, batch_size=args.batch_size,
        resume=args.resume, progress=not args.no_progress, labels=args.labels,
        counterfactual=args.counterfactual, seed=args.seed, by=args.by, metadata=metadata,
        bands=_bands(args.bands), encoding=args.encoding,
    )
    verdict = "FLAGGED" if report.flagged else "not flagged"
    print(f"{verdict}: {report.reason}")
    written = [args.out / name for name in ("index.html", "audit.csv", "audit.json")]
    if report.counterfactual is not None:
        written.append(args.out / "counterfactual.csv")
    if report.subgroups is not None:
        written.append(args.out / "subgroups.csv")
    if report.encoding is not None:
        written.append(args.out / "encoding.csv")
    print(f"wrote {', '.join(map(str, written))}")
    return FLAGGED_EXIT_CODE if report.flagged else 0


def _bands(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(edge) for edge in text.split(",") if edge.strip())
    except ValueError as err:
        raise InvalidInputError(
            f"--bands: expected comma-separated numbers (40,60,80), got {text!r}") from err


COMMAND = Subcommand(
    name="audit",
    help="where the model looks across a data set, against the lungs; exit code 3 when "
    "flagged",
    add_arguments=_add_arguments, run=_run, order=60)
