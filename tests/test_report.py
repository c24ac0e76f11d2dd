"""The HTML report: sections, images, graceful gaps, the CLI hooks, and a real browser.

The run directories are written here by hand, following the layout in
docs/architecture.md ("Run directory"), with the weights of a real (tiny,
briefly trained) network, so these tests do not depend on the training code.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tabresnet
from tabresnet.cli import main
from tabresnet.defaults import RunConfig
from tabresnet.errors import ModelFileError
from tabresnet.report import write_report
from tabresnet.report.plots import PNG_SIGNATURE

REPO = Path(__file__).resolve().parents[1]
# Tests on the real fitted run share one worker under xdist, so the fit runs once.
ON_FITTED_RUN = pytest.mark.xdist_group("report-fitted-run")
IMG_RE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


# -- a run directory, written by hand ---------------------------------------------------
def make_run(path: Path, *, targets: tuple[str, ...] = ("price",), tuning: bool = False,
             n_trials: int = 12) -> Path:
    """A small run directory written by ``fit`` (a tuning run when ``tuning``)."""
    from tabresnet.training import fit

    frame = price_frame(240).assign(id=np.arange(240))
    for k, name in enumerate(targets[1:], 1):
        frame[name] = frame["price"] * 0.5 + k
    # Three colours, one-hot only up to two: the colour gets an embedding.
    fit(frame, list(targets), out=path, max_epochs=8, lr=1e-2, num_blocks=[1], c_hidden=[16],
        embedding_dim=4, onehot_max_cardinality=2, ignore=["id"], dropout=0.0, progress="none",
        test_size=0.2)
    if tuning:
        make_study(path / "tuning", n_trials)
    return path


def make_study(tdir: Path, n_trials: int, name: str = "price-search", extra: int = 0) -> None:
    """An Optuna study in ``tdir/study.db`` with 4 (+ ``extra``) parameters, as tune leaves it."""
    import optuna

    tdir.mkdir()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{tdir / 'study.db'}",
                                sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        width = trial.suggest_categorical("c_hidden", [32, 64, 128])
        dropout = trial.suggest_float("dropout", 0.0, 0.5)
        block = trial.suggest_categorical("block", ["ResNetBlock", "PreActResNetBlock"])
        noise = sum(trial.suggest_float(f"x{i}", 0, 0.1) for i in range(extra))
        return ((np.log10(lr) + 2.5) ** 2 + dropout + 64 / width + (block == "ResNetBlock") * 0.3
                + noise)

    study.optimize(objective, n_trials=n_trials)
    study.trials_dataframe().to_csv(tdir / "trials.csv", index=False)
    (tdir / "best_params.json").write_text(json.dumps(
        {"study_name": name, "value": study.best_value, "params": study.best_params,
         "n_trials": n_trials}))


def price_frame(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n), rng.uniform(-2, 2, size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    price = 3 * a - 2 * b + np.where(color == "red", 2.0, 0.0) + rng.normal(scale=0.3, size=n)
    b[rng.choice(n, 20, replace=False)] = np.nan
    return pd.DataFrame({"a": a, "b": b, "color": color, "price": price})


@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run from ``tabresnet.fit`` (which writes its report itself), else a hand-made one."""
    out = tmp_path_factory.mktemp("report") / "run"
    try:
        from tabresnet import fit
    except ImportError:
        return make_run(out)
    fit(price_frame(), target="price", out=out, max_epochs=8, lr=1e-2, num_blocks=[1],
        c_hidden=[16], progress="none", test_size=0.2)
    return out


@pytest.fixture(scope="module")
def tuning_run(fitted_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fitted run with a tuning/ folder (an Optuna study written here)."""
    run = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(fitted_run, run)
    (run / "report.html").unlink(missing_ok=True)
    make_study(run / "tuning", 12)
    return run


@pytest.fixture(scope="module")
def tuning_report(tuning_run: Path) -> str:
    return write_report(tuning_run).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def hand_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture
def copy_run(hand_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(hand_run, run)
    return run


@pytest.fixture
def quick_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace the slow pictures by a tiny PNG, for tests about the page's logic."""
    from matplotlib.figure import Figure

    from tabresnet.report import plots

    png = plots.figure_png(Figure(figsize=(1, 1)), dpi=10)
    for name in ("learning_curves", "predictions", "autograd_graph"):
        monkeypatch.setattr(plots, name, lambda *a, **k: png)


def images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in IMG_RE.findall(html)]


def section_of(html: str, anchor: str) -> str:
    m = re.search(rf'<section id="{anchor}">(.*?)</section>', html, re.S)
    assert m, f"no section {anchor!r}"
    return m.group(1)


# -- the complete report ---------------------------------------------------------------
@ON_FITTED_RUN
def test_fit_writes_the_report(fitted_run: Path) -> None:
    html = (fitted_run / "report.html").read_text(encoding="utf-8")
    for anchor in ("data", "model", "training", "predictions", "metrics", "config"):
        assert "Not available" not in section_of(html, anchor), anchor
    assert '<section id="tuning">' not in html
    # The config section ends with the commands that use this run, path quoted.
    use = section_of(html, "config")
    assert "Using this model" in use
    for command in ("predict", "importance", "export"):
        assert f"tabresnet {command} {fitted_run}" in use, command
    assert "--onnx model.onnx" in use and "--interval 0.9" in use


@ON_FITTED_RUN
def test_report_has_every_section(tuning_run: Path, tuning_report: str) -> None:
    html = tuning_report
    assert (tuning_run / "report.html").is_file()
    for anchor in ("data", "model", "training", "predictions", "metrics", "tuning", "config"):
        assert f'<section id="{anchor}">' in html
        assert f'href="#{anchor}"' in html
    assert "Not available" not in html
    data = section_of(html, "data")
    assert "<td>color</td><td>categorical</td>" in data and "<td>price</td><td>target</td>" in data
    assert '<td class="num">20</td><td>6.7 %</td>' in data  # b's missing values
    model = section_of(html, "model")
    assert re.search(r"<h3>Parameters: [\d,]+</h3>", model)
    assert re.search(r"Tabular(Network|Ensemble)\(", model) and "Autograd graph" in model
    assert "<h3>Training</h3>" in section_of(html, "metrics")
    metrics = section_of(html, "metrics")
    assert "<td>RMSE</td>" in metrics and "<th>val</th><th>test</th>" in metrics
    assert "price units" in metrics
    tuning = section_of(html, "tuning")
    for title in ("Optimisation history", "Parameter importances", "Parallel coordinates",
                  "Best configuration", "Best trials"):
        assert title in tuning
    assert "price-search" in tuning
    assert "test RMSE" in html.split('<section id="data">')[0]  # the key numbers


@ON_FITTED_RUN
def test_every_image_is_a_decodable_png(tuning_report: str) -> None:
    import matplotlib.image as mpimg

    pngs = images(tuning_report)
    # autograd graph, learning curves, predictions, prediction intervals, feature
    # importance, three Optuna plots
    assert len(pngs) == 8
    assert tuning_report.count("<img ") == 8
    for png in pngs:
        assert png.startswith(PNG_SIGNATURE)
        pixels = mpimg.imread(io.BytesIO(png), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert pixels.std() > 0.01  # not a blank picture


@ON_FITTED_RUN
def test_report_is_self_contained(tuning_report: str) -> None:
    assert "<script" not in tuning_report
    for attr in re.findall(r'(?:src|href)="([^"]*)"', tuning_report):
        assert attr.startswith(("data:image/png;base64,", "#")), attr
    assert "@import" not in tuning_report and "url(" not in tuning_report


@ON_FITTED_RUN
def test_plots_leave_pyplot_style_alone(tuning_run: Path, tmp_path: Path) -> None:
    import matplotlib

    before = dict(matplotlib.rcParams)
    write_report(tuning_run, tmp_path / "again.html")
    changed = {k for k, v in matplotlib.rcParams.items() if before.get(k) != v}
    assert not changed - {"backend"}


def test_several_targets_get_one_figure_each(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", targets=("price", "rent"))
    html = write_report(run).read_text()
    preds = section_of(html, "predictions")
    assert "<h3>price</h3>" in preds and "<h3>rent</h3>" in preds
    assert len(images(preds)) == 2
    assert "Not available" not in html


# -- graceful gaps ---------------------------------------------------------------------
@pytest.mark.usefixtures("quick_plots")
def test_hand_made_run_has_every_section(copy_run: Path) -> None:
    html = write_report(copy_run).read_text()
    assert "Not available" not in html
    model_file = tabresnet.load(copy_run)
    n_params = sum(p.numel() for p in model_file.network.parameters())
    model = section_of(html, "model")
    assert f"Parameters: {n_params:,}" in model
    n_num = model_file.preprocessor.n_num  # a, b and b's missing-value indicator
    assert f"{n_num} numeric feature(s) after preprocessing, 1 embedded categorical" in model
    assert "<td>MAPE</td>" in section_of(html, "metrics")


@pytest.mark.usefixtures("quick_plots")
@pytest.mark.parametrize(
    ("missing", "anchor"),
    [
        ("data_summary.json", "data"),
        ("model.safetensors", "model"),
        ("history.csv", "training"),
        ("predictions_test.csv", "predictions"),
        ("metrics.json", "metrics"),
    ],
)
def test_missing_file_marks_only_its_section(copy_run: Path, missing: str, anchor: str) -> None:
    (copy_run / missing).unlink()
    html = write_report(copy_run).read_text()
    assert "Not available" in section_of(html, anchor)
    assert missing in section_of(html, anchor)
    assert html.count("Not available") == (2 if missing == "model.safetensors" else 1)
    assert '<section id="tuning">' not in html  # not a tuning run


@pytest.mark.usefixtures("quick_plots")
def test_corrupt_files_are_reported_not_raised(copy_run: Path) -> None:
    run = copy_run
    (run / "metrics.json").write_text("{not json")
    weights = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    (run / "history.csv").write_text("epoch,loss\n")
    html = write_report(run).read_text()
    assert "metrics.json is not valid JSON" in section_of(html, "metrics")
    assert "model.safetensors is corrupted or truncated" in section_of(html, "model")
    assert "Not available" in section_of(html, "training")
    assert "Not available" not in section_of(html, "predictions")


@pytest.mark.usefixtures("quick_plots")
def test_weights_of_another_architecture(copy_run: Path) -> None:
    meta = json.loads((copy_run / "model.json").read_text())
    meta["config"] = RunConfig.from_dict(meta["config"]).replace(c_hidden=[32]).to_dict()
    (copy_run / "model.json").write_text(json.dumps(meta))
    html = write_report(copy_run).read_text()
    assert "in the weights, the config builds" in section_of(html, "model")  # key and both shapes


def test_a_nearly_empty_run_still_gives_a_report(tmp_path: Path) -> None:
    (tmp_path / "history.csv").write_text("epoch,train_loss\n0,1.0\n1,0.5\n")
    html = write_report(tmp_path).read_text()
    assert len(images(html)) == 1  # the learning curve alone
    # data, model (tree and graph), predictions, intervals, metrics, feature importance, config
    assert html.count("Not available") == 8
    assert "config.yaml is missing" in section_of(html, "config")


@pytest.mark.usefixtures("quick_plots")
def test_text_from_the_run_is_escaped(copy_run: Path) -> None:
    summary = json.loads((copy_run / "data_summary.json").read_text())
    summary["columns"][0]["name"] = "<script>alert('x')</script> & co"
    (copy_run / "data_summary.json").write_text(json.dumps(summary))
    html = write_report(copy_run).read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in html


@pytest.mark.usefixtures("quick_plots")
def test_too_few_trials_for_importances(copy_run: Path) -> None:
    make_study(copy_run / "tuning", n_trials=1)
    tuning = section_of(write_report(copy_run).read_text(), "tuning")
    assert "Not available:</strong> needs at least 3 complete trials; the study has 1" in tuning
    assert "needs at least 2 complete trials" in tuning  # parallel coordinates
    assert "Optimisation history" in tuning and len(images(tuning)) == 1


@pytest.mark.usefixtures("quick_plots")
def test_parallel_coordinates_keep_the_most_important_parameters(copy_run: Path) -> None:
    make_study(copy_run / "tuning", n_trials=8, extra=4)
    tuning = section_of(write_report(copy_run).read_text(), "tuning")
    assert "Parallel coordinates (the 6 most important of 8 parameters)" in tuning
    assert "Not available" not in tuning
    assert '<div class="wide"><table>' in tuning  # the wide trials table scrolls on its own


@pytest.mark.usefixtures("quick_plots")
def test_saved_plots_stand_in_for_an_unreachable_study(copy_run: Path) -> None:
    from matplotlib.figure import Figure

    from tabresnet.report.plots import figure_png

    tdir = copy_run / "tuning"
    tdir.mkdir()
    (tdir / "best_params.json").write_text(json.dumps(
        {"study_name": "s", "storage": "postgresql://db/x", "params": {"lr": 0.01}}))
    (tdir / "optimization_history.png").write_bytes(figure_png(Figure(figsize=(2, 1))))
    (tdir / "param_importances.png").write_bytes(b"not a png")
    tuning = section_of(write_report(copy_run).read_text(), "tuning")
    assert "these are the plots saved when tuning ended" in tuning
    assert len(images(tuning)) == 1 and "tuning/optimization_history.png" in tuning


@pytest.mark.usefixtures("quick_plots")
def test_tuning_without_study_db(copy_run: Path) -> None:
    (copy_run / "tuning").mkdir()
    (copy_run / "tuning" / "best_params.json").write_text(json.dumps({"params": {"lr": 0.01}}))
    tuning = section_of(write_report(copy_run).read_text(), "tuning")
    assert "tuning/study.db is missing" in tuning
    assert "<td>lr</td>" in tuning
    assert not (copy_run / "tuning" / "study.db").exists()  # not created by looking for it


# -- the file and the command ----------------------------------------------------------
def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="run directory not found"):
        write_report(tmp_path / "nowhere")
    with pytest.raises(ModelFileError, match="not a run directory"):
        write_report(tmp_path)


@pytest.mark.usefixtures("quick_plots")
def test_write_is_atomic(copy_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = copy_run
    (run / "report.html").write_text("old report")

    def interrupted(_: object) -> str:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr("tabresnet.report.build_html", interrupted)
        with pytest.raises(KeyboardInterrupt):
            write_report(run)
    assert (run / "report.html").read_text() == "old report"

    import tabresnet.artifact as artifact

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(artifact.os, "replace", disk_full)
    with pytest.raises(OSError, match="disk full"):
        write_report(run)
    assert (run / "report.html").read_text() == "old report"
    assert [p.name for p in run.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.usefixtures("quick_plots")
def test_model_json_path_and_out_dir(hand_run: Path, tmp_path: Path) -> None:
    out = write_report(hand_run / "model.json", tmp_path)
    assert out == tmp_path / "report.html" and out.stat().st_size > 5_000
    assert "<title>tabresnet report: run</title>" in out.read_text()
    assert "target: price" in out.read_text()


@pytest.mark.usefixtures("quick_plots")
def test_the_report_command(hand_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sub" / "r.html"
    assert main(["report", str(hand_run), "-o", str(out)]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("error: run directory not found")
    with pytest.raises(SystemExit):
        main(["report"])


# -- in a real browser -------------------------------------------------------------------
@ON_FITTED_RUN
@pytest.mark.browser
def test_report_in_headless_chromium(chromium_path: str, tuning_run: Path,
                                     tuning_report: str, tmp_path: Path) -> None:
    from browser import open_page

    page = (tuning_run / "report.html").resolve()
    shot = REPO / "test-artifacts" / "report-screenshot.png"
    result = open_page(chromium_path, page.as_uri(), screenshot=shot, profile=tmp_path / "p")
    assert result.errors == []
    assert result.images["total"] == 8  # with the interval picture and the importance chart
    assert result.images["broken"] == [], result.images
    assert result.title == "tabresnet report: run"
    assert shot.read_bytes().startswith(PNG_SIGNATURE)


def test_a_run_without_test_rows_says_so(tmp_path):
    from tabresnet import fit

    out = tmp_path / "run"
    fit(price_frame(), target="price", out=out, max_epochs=2, num_blocks=[1], c_hidden=[8],
        progress="none", report=False)
    html = write_report(out).read_text(encoding="utf-8")
    assert "kept no test rows" in html and "predictions_test.csv is missing" not in html


def test_a_bag_without_test_rows_draws_its_out_of_fold_predictions(tmp_path, capsys):
    data = tmp_path / "prices.csv"
    price_frame().to_csv(data, index=False)
    out = tmp_path / "run"
    assert main(["fit", str(data), "--target", "price", "--bag", "2", "--out", str(out),
                 "--max-epochs", "2", "--num-blocks", "1", "--c-hidden", "8",
                 "--progress", "none"]) == 0
    assert f"out-of-fold predictions: {out / 'predictions_oof.csv'}" in capsys.readouterr().out
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "out-of-fold RMSE" in html  # the headline's score, with no test rows
    assert "300 out-of-fold rows (each by the member that did not train on it)" in html
    assert "kept no test rows (fit --test-size" not in html
    # Where the score comes from, with its caveat, under the metrics table.
    assert "<b>out-of-fold</b>: each row predicted by the bag member that did not train on " \
           "it (but was early-stopped on it: slightly optimistic)" in html
