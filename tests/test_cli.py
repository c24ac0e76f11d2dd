"""The `tabresnet` command: happy paths and one-line errors with exit code 2.

The commands run in this process (``main([...])``); only the DDP test starts
processes of its own.
"""

from __future__ import annotations

import gc
import importlib.metadata
import subprocess
import sys

import pandas as pd
import pytest

from tabresnet.cli import entry, main

TINY = ["--num-blocks", "1", "--c-hidden", "8", "--max-epochs", "2", "--progress", "none"]


@pytest.fixture
def csv(regression_frame, tmp_path):
    path = tmp_path / "data.csv"
    regression_frame.to_csv(path, index=False)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tabresnet.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def error_line(capsys, *args) -> str:
    """Run the command in this process; it must fail with one ``error:`` line and status 2."""
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def test_fit_predict_evaluate(csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", str(csv), "--target", "y", "--out", str(out), "--no-report", *TINY]) == 0
    text = capsys.readouterr().out
    assert "rmse" in text and str(out) in text
    # Each score names its rows; no test rows unless asked, and the output says so.
    assert "val: validation rows" in text and "no test rows were kept" in text
    assert "columns:" in text and "numeric (" in text and "target (1): y" in text
    preds = tmp_path / "p.csv"
    assert main(["predict", str(out), str(csv), "-o", str(preds)]) == 0
    frame = pd.read_csv(preds)
    assert list(frame.columns) == ["y_pred"] and len(frame) == 300
    assert main(["evaluate", str(out), str(csv)]) == 0
    assert "rmse" in capsys.readouterr().out


def test_flags_are_generated_from_defaults(capsys):
    assert main(["config", "--lr", "0.01", "--c-hidden", "32", "32", "--num-blocks", "1", "1"]) == 0
    text = capsys.readouterr().out
    assert "lr: 0.01" in text and "- 32" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "missing.csv", "--target", "y"], "file not found"),
        (["fit", "{csv}", "--target", "nope"], "nope"),
        (["predict", "{tmp}/no-model", "{csv}"], "model file not found"),
        (["fit", "{csv}", "--target", "y", "--config", "{tmp}/none.yaml"], "config file not found"),
    ],
)
def test_bad_input_one_line_exit_2(args, message, csv, tmp_path, capsys):
    assert message in error_line(capsys, *[a.format(csv=csv, tmp=tmp_path) for a in args])


def test_non_numeric_target_and_empty_table(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"a": [1, 2, 3] * 10, "y": ["x", "y", "z"] * 10}).to_csv(bad, index=False)
    assert "numeric" in error_line(capsys, "fit", bad, "--target", "y")
    empty = tmp_path / "empty.csv"
    empty.write_text("a,y\n")
    assert "empty" in error_line(capsys, "fit", empty, "--target", "y").lower()


def test_corrupted_model_cli(csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", str(csv), "--target", "y", "--out", str(out), "--no-report", *TINY]) == 0
    w = out / "model.safetensors"
    w.write_bytes(w.read_bytes()[: len(w.read_bytes()) // 2])
    capsys.readouterr()
    assert "corrupted or truncated" in error_line(capsys, "predict", out, csv)


def test_bad_flag_value_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "x.csv", "--target", "y", "--optimizer", "lbfgs"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_the_command_is_main_with_a_quick_exit(tmp_path, capsys):
    """`tabresnet` runs entry(): main's exit code, then the collector frozen for exit."""
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="tabresnet")
    assert script.value == "tabresnet.cli:entry"
    gc.unfreeze()
    try:
        assert entry(["predict", str(tmp_path / "no-model"), str(tmp_path / "x.csv")]) == 2
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # this test process goes on collecting
    assert capsys.readouterr().err.startswith("error:")


@pytest.mark.slow
def test_ddp_on_cpu_two_processes(csv, tmp_path):
    """`--devices 2 --strategy ddp` trains with two gloo processes; rank 0 writes the run."""
    out = tmp_path / "ddp"
    proc = run_cli(
        "fit",
        csv,
        "--target",
        "y",
        "--out",
        out,
        "--no-report",
        "--accelerator",
        "cpu",
        "--devices",
        "2",
        "--strategy",
        "ddp",
        *TINY,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("run directory:") == 1  # printed by rank 0 only
    assert (out / "model.safetensors").is_file()
    history = pd.read_csv(out / "history.csv")
    assert len(history) == 2 and history["val_rmse"].notna().all()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_fit_with_a_test_split_scores_it(csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", str(csv), "--target", "y", "--out", str(out), "--no-report",
                 "--test-size", "0.2", *TINY]) == 0
    text = capsys.readouterr().out
    assert "test: test rows (held out" in text and "no test rows" not in text


def test_fit_with_cross_validation_prints_the_folds_rmse(csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", str(csv), "--target", "y", "--out", str(out), "--no-report",
                 "--cv-folds", "3", *TINY]) == 0
    text = capsys.readouterr().out
    assert "cv: 3-fold RMSE" in text
    assert not [line for line in text.splitlines() if line.startswith("cv ")]  # not a row


def test_strict_predict_refuses_unusable_cells(csv, tmp_path, capsys, regression_frame):
    out = tmp_path / "run"
    assert main(["fit", str(csv), "--target", "y", "--out", str(out), "--no-report", *TINY]) == 0
    bad = regression_frame.head(5).astype({"a": object})
    bad.loc[0, "a"] = "oops"
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    capsys.readouterr()
    assert "oops" in error_line(capsys, "predict", out, path, "--strict")
    # Without --strict: predictions, and one clean warning line (no source path).
    assert main(["predict", str(out), str(path)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning:") and "oops" in err[0], err
