"""``tabresnet show``: the description, the config loading and the graph."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tabresnet.cli import main
from tabresnet.errors import ConfigError, TabResNetError
from tabresnet.models import ModelConfig, ResNet
from tabresnet.show import count_parameters, describe, draw_graph, load_model_config

SMALL = ModelConfig(block="ResNetBlock", num_blocks=[1, 1], c_hidden=[8, 16], dropout=0.0)


# --- describe ---------------------------------------------------------------------------
def test_describe_prints_the_tree_and_the_counts():
    text = describe(SMALL, input_dim=7, output_dim=3)
    model = SMALL.build(7, 3)
    assert repr(model) in text
    total = sum(p.numel() for p in model.parameters())
    assert text.splitlines()[-1] == f"parameters: {total:,} (trainable: {total:,})"
    assert text.splitlines()[0] == "ResNet for 7 input features and 3 outputs"
    assert "in_features=7" in text and "out_features=3" in text


def test_describe_lists_every_option():
    text = describe(SMALL, 4)
    for key, value in SMALL.to_dict().items():
        assert f"{key}={value}" in text


def test_describe_counts_with_thousands_separators():
    cfg = ModelConfig(block="ResNetBlock", num_blocks=[3, 3, 3], c_hidden=[64, 64, 64])
    # The chapter's [3,3,3] x 64 network for 10 inputs (see ModelConfig's doctest).
    assert "parameters: 85,121 (trainable: 85,121)" in describe(cfg, 10, 1)


@pytest.mark.parametrize("arch", ["resnet_regression", "preact_resnet_regression"])
def test_describe_single_width_archs(arch):
    cfg = ModelConfig(arch=arch, num_blocks=[2], c_hidden=[8])
    text = describe(cfg, 5)
    assert text.startswith(f"{type(cfg.build(5)).__name__} for 5 input features and 1 output\n")
    assert "(0-1): 2 x PreActResNetBlock(" in text


def test_count_parameters_separates_frozen_ones():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 1))
    model[0].requires_grad_(False)
    assert count_parameters(model) == (15 + 4, 4)


# --- load_model_config ------------------------------------------------------------------
def test_load_without_a_file_gives_the_defaults():
    assert load_model_config(None) == ModelConfig()


def test_load_a_run_config(tmp_path):
    from tabresnet.defaults import RunConfig

    run = RunConfig()
    run.model.c_hidden = [32]
    path = tmp_path / "run.yaml"
    path.write_text(run.to_yaml())
    assert load_model_config(path) == run.model


def test_load_bare_model_options(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("block: ResNetBlock\nnum_blocks: [3, 3, 3]\nc_hidden: [32, 64, 128]\n")
    cfg = load_model_config(str(path))
    assert (cfg.block, cfg.c_hidden) == ("ResNetBlock", [32, 64, 128])


def test_load_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file '.*nope.yaml' not found; give a YAML file"):
        load_model_config(tmp_path / "nope.yaml")


def test_load_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("num_blocks: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML \(.*\); fix the file"):
        load_model_config(path)


@pytest.mark.parametrize(
    "text,message",
    [
        ("model:\n  block: Nope\n", r"unknown block 'Nope'; valid names are: "),
        ("lr: 0.1\n", r"unknown model option\(s\) lr"),
        ("- 1\n", r"a model config must be a YAML mapping"),
        ("num_blocks: [1, 1]\nc_hidden: [8]\n", r"need one entry per group"),
    ],
)
def test_load_invalid_options(tmp_path, text, message):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_model_config(path)


# --- the command --------------------------------------------------------------------------
def test_show_describes_the_default_network_for_ten_inputs(capsys):
    assert main(["show"]) == 0
    assert capsys.readouterr().out == describe(ModelConfig(), 10, 1) + "\n"


@pytest.mark.parametrize("flag", ["--input-dim", "--output-dim"])
@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_show_rejects_non_positive_dims(flag, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["show", flag, value])
    assert exc.value.code == 2
    assert f"expected a positive integer, got '{value}'" in capsys.readouterr().err


def test_show_prints_the_description(tmp_path, capsys):
    path = tmp_path / "model.yaml"
    path.write_text(SMALL.to_yaml())
    assert main(["show", "-c", str(path), "--input-dim", "6", "--output-dim", "2"]) == 0
    assert capsys.readouterr().out == describe(SMALL, 6, 2) + "\n"


def test_show_rejects_a_bad_graph_suffix_before_printing(tmp_path, capsys):
    assert main(["show", "--graph", str(tmp_path / "net.gif")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and list(tmp_path.iterdir()) == []
    assert err == "error: cannot draw a graph to 'net.gif'; give a file ending in .png, .svg, .pdf\n"


def test_cli_show_reports_config_errors(tmp_path, capsys):
    path = tmp_path / "cfg.yaml"
    path.write_text("model:\n  activation: wiggle\n")
    assert main(["show", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unknown activation 'wiggle'" in err
    assert len(err.strip().splitlines()) == 1


# --- the graph --------------------------------------------------------------------------------
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-", ".svg": b"<?xml"}


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf", ".PNG"])
def test_draw_graph_formats(dot_available, tmp_path, suffix):
    model = SMALL.build(4)
    path = draw_graph(model, 4, tmp_path / f"net{suffix}")
    assert path == tmp_path / f"net{suffix}"
    assert path.read_bytes().startswith(MAGIC[suffix.lower()])
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_draw_graph_names_the_parameters(dot_available, tmp_path):
    model = SMALL.build(4)
    svg = draw_graph(model, 4, tmp_path / "net.svg").read_text()
    for name, _ in model.named_parameters():
        assert name in svg, name
    assert "AddBackward0" in svg  # the residual additions are in the graph


def test_draw_graph_leaves_the_model_as_it_was(dot_available, tmp_path):
    model = SMALL.build(4)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    draw_graph(model, 4, tmp_path / "net.svg")
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # BatchNorm statistics untouched
    model.eval()
    draw_graph(model, 4, tmp_path / "net.svg")
    assert not model.training


def test_draw_graph_replaces_an_existing_file_and_creates_directories(dot_available, tmp_path):
    path = tmp_path / "deep" / "er" / "net.svg"
    path.parent.mkdir(parents=True)
    path.write_text("old")
    draw_graph(ResNet(3, 1, [1], [4]), 3, path)
    assert "<svg" in path.read_text()
    draw_graph(ResNet(3, 1, [1], [4]), 3, tmp_path / "new" / "net.png")
    assert (tmp_path / "new" / "net.png").exists()


def test_draw_graph_bad_suffix(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot draw a graph to 'net.jpg'"):
        draw_graph(ResNet(3, 1, [1], [4]), 3, tmp_path / "net.jpg")


def test_draw_graph_without_dot(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(
        TabResNetError, match=r"Graphviz 'dot' was not found on PATH; install Graphviz"
    ):
        draw_graph(ResNet(3, 1, [1], [4]), 3, tmp_path / "net.png")
    assert not (tmp_path / "net.png").exists()


def test_run_show_draws_the_graph(dot_available, tmp_path, capsys):
    out_file = tmp_path / "graph.png"
    assert main(["show", "--graph", str(out_file), "--input-dim", "3"]) == 0
    assert out_file.read_bytes().startswith(MAGIC[".png"])
    assert capsys.readouterr().out.endswith(f"graph written to {out_file}\n")


def test_show_a_saved_model_describes_its_trained_network(tmp_path, capsys):
    import numpy as np
    import pandas as pd

    import tabresnet

    frame = pd.DataFrame({"a": np.arange(40.0), "c": ["u", "v"] * 20, "y": np.arange(40.0)})
    run = tabresnet.fit(frame, "y", out=tmp_path / "run", max_epochs=1, num_blocks=[1],
                        c_hidden=[4], ensemble_size=1, progress="none", report=False)
    assert main(["show", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("TabularNetwork trained on 2 columns, predicting y\n")
    assert "categorical (1): c" in out and repr(run.model.network) in out
    total, _ = count_parameters(run.model.network)
    assert out.endswith(f"parameters: {total:,} (trainable: {total:,})\n")
    # the options that build a network from a config do not apply to a saved one
    assert main(["show", str(tmp_path / "run"), "--input-dim", "3"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --input-dim: for a network built from a config, not a saved MODEL; " \
                  "drop it or MODEL\n"
