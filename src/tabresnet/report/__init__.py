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

from pathlib import Path

from ..artifact import atomic_write_text
from ..errors import ModelFileError
from . import sections as S
from .html import page, section
from .rundir import RUN_FILES, RunDir

__all__ = ["build_html", "write_report"]


def build_html(run_dir: str | Path) -> str:
    """The report of ``run_dir`` as an HTML string (see :func:`write_report`)."""
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
    atomic_write_text(target, build_html(run.path))
    return target

