"""Reports a person can look at: one self-contained HTML page per run directory.

Run it::

    tabresnet report runs/price                 # writes runs/price/report.html
    tabresnet report runs/price -o price.html

or from Python, as ``fit`` and ``tune`` do when they finish::

    from tabresnet.report import write_report
    write_report("runs/price")

The page holds a data summary (rows per split, columns with their roles and
missing values), the model (architecture, parameter count, module tree, the
autograd graph), the learning curves, predicted-vs-actual and residual plots
on the test split, the metrics table, and, for tuning runs, Optuna's
optimisation history, parameter importances, parallel coordinates and the best
configuration. Images are embedded PNGs; the page needs no network and no
JavaScript. A section whose files are missing or unreadable says "Not
available" and why; the rest of the report is still written.

Examples
--------
>>> import tempfile, pathlib
>>> run = pathlib.Path(tempfile.mkdtemp())
>>> _ = (run / "metrics.json").write_text('{"test": {"rmse": 0.5, "r2": 0.9}}')
>>> out = write_report(run)
>>> out.name, "0.5" in out.read_text()
('report.html', True)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_report_parser", "build_html", "run_report", "write_report"]


def build_html(run_dir: str | Path) -> str:
    """The report of ``run_dir`` as an HTML string (see :func:`write_report`)."""
    from . import sections as S
    from .html import page, section
    from .rundir import RunDir

    run = RunDir(run_dir)
    anchors = [
        (a, t) for a, t in S.SECTIONS if a != "tuning" or S.is_tuning_run(run)
    ]
    body = [section(a, t, lambda a=a: S.BUILDERS[a](run)) for a, t in anchors]
    name = run.path.resolve().name
    targets = ", ".join(run.targets())
    kind = "tuning run" if S.is_tuning_run(run) else "training run"
    return page(
        title=f"tabresnet report: {name}",
        subtitle=f"{kind} in {run.path.resolve()}; target: {targets}",
        nav=anchors,
        cards=S.key_numbers(run),
        sections=body,
    )


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the HTML report of a run directory.

    Parameters
    ----------
    run_dir : str or Path
        A run directory written by ``fit`` or ``tune`` (or its ``model.json``).
    out : str or Path, optional
        Output file (or a directory to put ``report.html`` in); default
        ``RUN_DIR/report.html``.

    Returns
    -------
    Path
        The file written. It is written to a temporary name and renamed, so it
        is never seen half-written.

    Raises
    ------
    ModelFileError
        When ``run_dir`` is not a directory or holds none of the run files.
        Missing or broken individual files only mark their sections "not
        available".
    """
    from tabresnet.errors import ModelFileError

    from .html import write_atomic
    from .rundir import RUN_FILES, RunDir

    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise ModelFileError(
            f"run directory not found: {run_dir}; pass the folder that `tabresnet fit` wrote"
        )
    if not run.has_any():
        raise ModelFileError(
            f"{run_dir} is not a run directory: it has none of {', '.join(RUN_FILES)}"
        )
    target = run.path / "report.html" if out is None else Path(out)
    if target.is_dir():
        target = target / "report.html"
    write_atomic(target, build_html(run.path))
    return target


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``report RUN_DIR [-o OUT]`` to an ``argparse`` sub-parser set.

    The parser's default ``func`` is :func:`run_report`.

    >>> parser = argparse.ArgumentParser(prog="tabresnet")
    >>> _ = add_report_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["report", "runs/a", "-o", "a.html"])
    >>> args.run_dir, args.out, args.func is run_report
    ('runs/a', 'a.html', True)
    """
    p = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report of a run directory",
        description=(
            "Write one HTML file (images embedded, no network needed) with the data summary, "
            "the model, learning curves, test-set plots, metrics and, for tuning runs, "
            "the optimisation plots."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by fit or tune")
    p.add_argument(
        "-o", "--out", metavar="OUT.html", default=None,
        help="where to write the report (default: RUN_DIR/report.html)",
    )
    p.set_defaults(func=run_report)
    return p


def run_report(args: argparse.Namespace) -> int:
    """Carry out ``tabresnet report``: write the report and print its path.

    Returns 0, or 2 after printing ``error: <message>`` for a run directory
    that cannot be used.
    """
    import matplotlib

    from tabresnet.errors import TabResNetError

    matplotlib.use("Agg")  # a command-line tool never needs a window
    try:
        path = write_report(args.run_dir, getattr(args, "out", None))
    except TabResNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0
