"""The command's one error path, its help, and predict's output (issue 13, deliveries 3, 7, 8).

Every command turns bad values and OS errors into one ``error:`` line and exit
status 2, writing nothing half-way; a usage error is one line too, names the
option and points at the command's ``--help``. The help text of each config
option comes from the option's docstring and lists its valid names.

The OS errors are real where a test can make them without privileges (a file
where a folder should be, a folder where a file should be) and injected where
it cannot (a full disk; permissions, since the tests may run as root).
"""

from __future__ import annotations

import errno
import importlib
import io
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tabresnet
from tabresnet.cli import _field_docs, main
from tabresnet.data import read_table
from tabresnet.defaults import flat_fields

TINY = ["--num-blocks", "1", "--c-hidden", "8", "--max-epochs", "2", "--progress", "none",
        "--ensemble-size", "1", "--num-embedding", "none"]


def error_line(capsys, *args) -> str:
    """Run the command in this process; it must fail with one ``error:`` line and status 2."""
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def usage_error(capsys, *args) -> str:
    """A usage error: exit 2 from argparse with one ``error:`` line, no usage dump."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    """Hidden (staging, temporary) entries left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(120)], "a": rng.normal(size=120),
                          "b": rng.normal(size=120)})
    frame["y"] = 2 * frame.a - frame.b
    path = tmp_path_factory.mktemp("data") / "data.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model_dir(data_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "run"
    assert main(["fit", str(data_csv), "-t", "y", "--ignore", "id", "--out", str(out),
                 "--no-report", *TINY]) == 0
    return out


# -- config values and files ------------------------------------------------------
@pytest.mark.parametrize(("flags", "named"), [
    (["--quantiles", "0.1", "0.9"], "quantiles (it needs loss quantile; loss is 'mse')"),
    (["--huber-delta", "2", "--loss", "mae"], "huber_delta (it needs loss huber"),
    (["--n-bins", "8", "--num-embedding", "plr"], "n_bins (it needs num_embedding ple;"),
    (["--frequency-scale", "0.5"], "frequency_scale (it needs num_embedding plr;"),
    (["--n-quantiles", "50", "--numeric-transform", "standard"], "n_quantiles (it needs"),
])
def test_a_flag_the_run_would_ignore_is_refused(data_csv, tmp_path, capsys, flags, named):
    out = tmp_path / "run"
    line = error_line(capsys, "fit", data_csv, "-t", "y", "--ignore", "id", "--out", out,
                      *flags, *TINY)
    assert named in line and "drop it" in line
    assert not out.exists()


def test_a_bag_prints_each_column_note_once(tmp_path, capsys):
    # The folds read the columns from two places; each note was printed twice.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=90), "y": rng.normal(size=90),
                          "sold": pd.date_range("2020-01-01", periods=90).strftime("%Y-%m-%d")})
    path = tmp_path / "dated.csv"
    frame.to_csv(path, index=False)
    assert main(["fit", str(path), "-t", "y", "--bag", "3", "--test-size", "0.2", "--out",
                 str(tmp_path / "run"), "--no-report", *TINY]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: column 'sold' holds dates") == 1, err


def test_a_flag_is_used_when_the_config_file_gives_what_it_needs(data_csv, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("train:\n  loss: quantile\n")
    out = tmp_path / "run"
    assert main(["fit", str(data_csv), "-t", "y", "--ignore", "id", "--out", str(out),
                 "--config", str(config), "--quantiles", "0.2", "0.8", "--no-report",
                 *TINY]) == 0
    assert tabresnet.load(out).quantiles == [0.2, 0.8]
    err = capsys.readouterr().err  # no 0.5: which level is the point, said once
    assert err.count("warning: quantiles 0.2, 0.8 hold no 0.5: the point prediction") == 1, err


@pytest.mark.parametrize(
    "args, expected",
    [
        (["config", "--norm", "foo"], "unknown norm 'foo'"),
        (["config", "--lr", "-1"], "lr must be positive"),
        (["config", "--block", "Nope"], "unknown block"),
        (["config", "--val-size", "2"], "val_size"),
        (["config", "--cv-folds", "-1"], "cv_folds must be 0 or 1 (none) or a fold count >= 2"),
        (["config", "--bag", "-2"], "bag must be 0 or 1 (none) or a fold count >= 2"),
    ],
)
def test_config_bad_values_one_line(args, expected, capsys):
    assert expected in error_line(capsys, *args)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("model: [1, 2\n", "bad.yaml: config is not valid YAML (line 2, column 1): expected"),
        ("model:\n  nope: 1\n", "unknown model option(s) nope"),
        ("- 1\n- 2\n", "YAML mapping"),
        ("train:\n  lr: -3\n", "lr must be positive"),
        ("train:\n  lr: 0.1\n  lr: 0.01\n", "key 'lr' is given twice"),
    ],
)
def test_config_bad_file_one_line(text, expected, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    line = error_line(capsys, "config", "--config", path)
    assert expected in line and line.startswith(f"error: {path}: ")  # names the file


# -- usage errors: short, and no abbreviations ---------------------------------------
def test_missing_required_option_is_one_line(capsys):
    line = usage_error(capsys, "fit", "data.csv")
    assert "required: --target" in line and "tabresnet fit --help" in line


def test_abbreviated_options_are_refused(capsys):
    # Read as --weight-decay before: a puzzling "invalid float value: 'w'".
    line = usage_error(capsys, "fit", "data.csv", "-t", "y", "--weight-dec", "w")
    assert "unrecognized arguments: --weight-dec w" in line and "tabresnet fit --help" in line
    # With a value that parses, an abbreviation silently set another option.
    assert "--weight-dec 0.1" in usage_error(capsys, "config", "--weight-dec", "0.1")
    assert "--max-epoch" in usage_error(capsys, "config", "--max-epoch", "3")
    assert "--out" in usage_error(capsys, "predict", "m", "d.csv", "--out", "x.csv")


def test_bad_choice_is_one_line(capsys):
    line = usage_error(capsys, "config", "--optimizer", "lbfgs")
    assert "invalid choice: 'lbfgs'" in line and "adamw" in line


# -- OS errors ---------------------------------------------------------------------
def test_fit_out_under_a_file_one_line(data_csv, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = error_line(capsys, "fit", data_csv, "-t", "y", "--ignore", "id", "--out",
                      blocker / "run", *TINY)
    assert str(blocker) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_fit_full_disk_leaves_nothing(data_csv, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # every atomic write of the run fails
    line = error_line(capsys, "fit", data_csv, "-t", "y", "--ignore", "id", "--out", out,
                      "--no-report", *TINY)
    assert "no space left on device" in line and "free some space" in line
    assert not out.exists() and leftovers(tmp_path) == []


def test_fit_out_not_writable_one_line(data_csv, tmp_path, capsys, monkeypatch):
    fit_module = importlib.import_module("tabresnet.training.fit")  # the package exports fit()

    out = tmp_path / "ro" / "run"

    def refuse(path, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(Path(path).parent))

    monkeypatch.setattr(fit_module, "open_run", refuse)
    line = error_line(capsys, "fit", data_csv, "-t", "y", "--ignore", "id", "--out", out,
                      "--no-report", *TINY)
    assert "permission denied" in line and str(out.parent) in line and "permissions" in line
    assert not out.exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_fit_and_predict_under_read_only_folder(data_csv, model_dir, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        line = error_line(capsys, "fit", data_csv, "-t", "y", "--ignore", "id", "--out", ro / "run",
                          *TINY)
        assert "permission denied" in line
        line = error_line(capsys, "predict", model_dir, data_csv, "-o", ro / "p.csv")
        assert "permission denied" in line
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_predict_output_errors_one_line(model_dir, data_csv, tmp_path, capsys, monkeypatch):
    # A folder where the file should be (a real OS error).
    folder = tmp_path / "folder"
    folder.mkdir()
    line = error_line(capsys, "predict", model_dir, data_csv, "-o", folder)
    assert str(folder) in line or "folder" in line
    # A full disk while writing: no file, no temporary file left.
    out = tmp_path / "p.csv"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert "no space left" in error_line(capsys, "predict", model_dir, data_csv, "-o", out)
    out_pq = tmp_path / "p.parquet"
    assert "no space left" in error_line(capsys, "predict", model_dir, data_csv, "-o", out_pq)
    monkeypatch.undo()
    assert not out.exists() and not out_pq.exists() and leftovers(tmp_path) == []
    # A folder it may not write to.
    import tabresnet.artifact as artifact

    def refuse(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(artifact, "_create_temp", refuse)
    line = error_line(capsys, "predict", model_dir, data_csv, "-o", out)
    assert "permission denied" in line and str(out) in line


def test_unreadable_model_file_one_line(model_dir, data_csv, capsys, monkeypatch):
    real = Path.read_text

    def read_text(self, *args, **kwargs):
        if self.name == "model.json":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    for command in ("predict", "evaluate"):
        line = error_line(capsys, command, model_dir, data_csv)
        assert "permission denied" in line.lower() and "model.json" in line


def test_report_and_show_write_errors_one_line(model_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = error_line(capsys, "report", model_dir, "-o", blocker / "report.html")
    assert str(blocker) in line
    assert blocker.read_text() == "x"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["tune", "{csv}", "-t", "y", "--lr", "-1"], "lr must be positive"),
        (["tune", "{csv}", "-t", "y", "--ignore", "id", "--out", "{blocker}/run"],
         "not a directory"),
        (["demo", "--norm", "foo", "--out", "{tmp}/demo"], "unknown norm 'foo'"),
        (["show", "--config", "{blocker}"], "not valid"),
        (["report", "{blocker}"], "run directory not found"),
    ],
)
def test_other_commands_one_line(args, expected, data_csv, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x: [\n")
    args = [a.format(csv=data_csv, blocker=blocker, tmp=tmp_path) for a in args]
    assert expected in error_line(capsys, *args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing written


# -- help ---------------------------------------------------------------------------
def test_every_option_has_a_docstring_sentence():
    docs = _field_docs()
    missing = [name for name in flat_fields() if name != "seed" and not docs.get(name)]
    assert missing == []
    assert docs["lr"] == "Learning rate."
    # One short sentence each, no reST markup.
    assert all(len(text) < 200 and "``" not in text and ":class:" not in text
               for text in docs.values())


def test_help_lists_names_and_plain_metavars(capsys):
    from tabresnet.models import BLOCKS
    from tabresnet.models.names import NAMES

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "OPT_" not in text
    assert "--lr LR" in text and "--max-epochs N" in text and "--block NAME" in text
    assert "--weight COL" in text  # a column of the data, named as one
    assert "Learning rate." in text and "Default: 0.002" in text
    for names in [list(BLOCKS), *NAMES.values(), ["adamw", "adam", "sgd"],
                  ["mse", "mae", "huber", "quantile"], ["none", "cosine", "plateau"]]:
        assert f"One of: {', '.join(names)}." in text, names


# -- predict's output -----------------------------------------------------------------
def test_predict_keeps_identifier_columns(model_dir, data_csv, tmp_path, capsys):
    out = tmp_path / "p.csv"
    assert main(["predict", str(model_dir), str(data_csv), "-o", str(out),
                 "--keep", "id", "b"]) == 0
    frame = pd.read_csv(out)
    source = pd.read_csv(data_csv)
    assert list(frame.columns) == ["id", "b", "y_pred"]
    assert frame["id"].tolist() == source["id"].tolist()
    assert np.allclose(frame["b"], source["b"])
    # On stdout too, and the predictions are those without --keep.
    capsys.readouterr()
    assert main(["predict", str(model_dir), str(data_csv), "--keep", "id"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "id,y_pred" and printed[1].startswith("r0,")
    assert main(["predict", str(model_dir), str(data_csv)]) == 0
    plain = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert np.allclose(plain["y_pred"], frame["y_pred"])


def test_predict_parquet_with_keep(model_dir, data_csv, tmp_path):
    out = tmp_path / "p.parquet"
    assert main(["predict", str(model_dir), str(data_csv), "-o", str(out), "--keep", "id"]) == 0
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["id", "y_pred"] and len(frame) == 120
    assert frame["id"].iloc[5] == "r5" and frame["y_pred"].notna().all()


@pytest.mark.parametrize("name", ["p.csv.gz", "p.tsv", "p.tsv.bz2", "p.csv.xz", "p.csv.zip"])
def test_predict_writes_the_format_its_output_name_says(model_dir, data_csv, tmp_path, name):
    """A compressed or tab-separated output is what its name says, and reads back."""
    plain, out = tmp_path / "p.csv", tmp_path / name
    assert main(["predict", str(model_dir), str(data_csv), "-o", str(plain)]) == 0
    assert main(["predict", str(model_dir), str(data_csv), "-o", str(out), "--keep", "id"]) == 0
    sep = "\t" if ".tsv" in name else ","
    frame = pd.read_csv(out, sep=sep)  # pandas decompresses by the name's suffix
    assert list(frame.columns) == ["id", "y_pred"]
    assert np.allclose(frame["y_pred"], pd.read_csv(plain)["y_pred"])
    assert read_table(out).equals(frame)  # and tabresnet reads it back as a table


def test_predict_keep_errors_one_line(model_dir, data_csv, tmp_path, capsys):
    out = tmp_path / "p.csv"
    line = error_line(capsys, "predict", model_dir, data_csv, "-o", out, "--keep", "id", "nope")
    assert "--keep column(s) nope not in" in line and "id, a, b, y" in line
    assert not out.exists()
    named = tmp_path / "named.csv"
    pd.read_csv(data_csv).rename(columns={"id": "y_pred"}).to_csv(named, index=False)
    assert "y_pred" in error_line(capsys, "predict", model_dir, named, "--keep", "y_pred")


def test_a_diverging_fit_is_one_line_and_exit_2(data_csv, tmp_path, capsys):
    line = error_line(capsys, "fit", data_csv, "-t", "y", "--ignore", "id", "--out",
                      tmp_path / "run", "--lr", "1e10", "--optimizer", "sgd", "--no-report",
                      *TINY)
    assert line.startswith("error: training diverged") and "lower lr" in line


def test_demo_replaces_only_its_own_earlier_run(model_dir, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(model_dir, other)  # a model of another table
    before = (other / "model.safetensors").read_bytes()
    line = error_line(capsys, "demo", "--out", other, "--max-epochs", "1")
    assert "exists and is not empty; pass --overwrite" in line
    assert (other / "model.safetensors").read_bytes() == before


def test_outputs_never_replace_the_input_table_or_the_model(model_dir, data_csv, tmp_path,
                                                            capsys):
    table = tmp_path / "data.csv"
    shutil.copy(data_csv, table)
    run = tmp_path / "run"
    shutil.copytree(model_dir, run)
    files = {p: p.read_bytes() for p in (table, run / "model.json", run / "model.safetensors")}
    for args, named in [
        (["predict", run, table, "-o", table], "--output"),
        (["importance", run, table, "-o", table, "--repeats", "1"], "--output"),
        (["predict", run, table, "-o", run / "model.json"], "--output"),
        (["export", run, "--onnx", run / "model.safetensors"], "--onnx"),
        (["export", run, "--torchscript", run / "model"], "--torchscript"),  # its sidecar
    ]:
        line = error_line(capsys, *args)
        assert line.startswith(f"error: {named} ") and "would destroy it" in line, line
    assert all(p.read_bytes() == data for p, data in files.items())


@pytest.mark.parametrize("name", ["p.xlsx", "p"])
def test_an_output_of_unknown_type_is_refused(model_dir, data_csv, tmp_path, capsys, name):
    line = error_line(capsys, "predict", model_dir, data_csv, "-o", tmp_path / name)
    assert "unknown file type" in line and ".parquet" in line
    assert not (tmp_path / name).exists()


def test_a_reader_that_stops_early_gets_no_error(model_dir, data_csv, capsys, monkeypatch):
    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["predict", str(model_dir), str(data_csv)]) == 141
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_an_output_that_is_a_pipe_is_written_not_replaced(model_dir, data_csv, tmp_path):
    import stat
    import threading

    pipe = tmp_path / "pipe"  # as /dev/null or /dev/stdout: a rename would replace the node
    os.mkfifo(pipe)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_bytes()))
    reader.start()
    assert main(["predict", str(model_dir), str(data_csv), "-o", str(pipe)]) == 0
    reader.join(timeout=60)
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert got and got[0].decode().splitlines()[0] == "y_pred"


def test_an_output_through_a_symlink_replaces_the_file_it_points_to(model_dir, data_csv,
                                                                  tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    assert main(["predict", str(model_dir), str(data_csv), "-o", str(link)]) == 0
    assert link.is_symlink() and real.read_text().startswith("y_pred")


def test_several_targets_print_one_line_each(data_csv, tmp_path, capsys):
    frame = pd.read_csv(data_csv).assign(y2=lambda d: d.y * 3)
    path = tmp_path / "two.csv"
    frame.to_csv(path, index=False)
    assert main(["fit", str(path), "-t", "y", "y2", "--ignore", "id", "--out",
                 str(tmp_path / "run"), "--no-report", *TINY]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    val = next(i for i, line in enumerate(lines) if line.startswith("val "))
    assert lines[val + 1].startswith("  y ") and lines[val + 2].startswith("  y2 ")
    assert "the mean over its 2 targets" in out
