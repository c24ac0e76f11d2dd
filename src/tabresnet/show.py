"""Print a network's module tree and parameter counts, and draw its autograd graph.

    tabresnet show                                    # the default network
    tabresnet show --config model.yaml                # a run config or bare model options
    tabresnet show -c model.yaml --graph net.png      # also draw the graph (PNG, SVG, PDF)
    tabresnet show -c model.yaml --input-dim 20 --output-dim 2

The graph is the chapter's picture: ``torchviz.make_dot`` on the output of one
forward pass, with the parameters named. Rendering needs the Graphviz ``dot``
program.

:func:`render_graph` is the one autograd drawing of the package; the report
draws its model graph with it too.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .artifact import atomic_write_bytes
from .errors import ConfigError, TabResNetError
from .models import ModelConfig

__all__ = [
    "GRAPH_FORMATS",
    "check_graph_path",
    "count_parameters",
    "describe",
    "draw_graph",
    "load_model_config",
    "render_graph",
]

DEFAULT_INPUT_DIM = 10  # the chapter's examples use 10 input features
GRAPH_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Number of parameters, all and trainable (``requires_grad``).

    Examples
    --------
    >>> lin = nn.Linear(3, 2)
    >>> count_parameters(lin)
    (8, 8)
    >>> _ = lin.bias.requires_grad_(False)
    >>> count_parameters(lin)
    (8, 6)
    """
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def describe(cfg: ModelConfig, input_dim: int = DEFAULT_INPUT_DIM, output_dim: int = 1) -> str:
    """The network a config builds: its options, module tree and parameter counts.

    Parameters
    ----------
    cfg : ModelConfig
        Architecture options.
    input_dim : int, default 10
        Number of input features the network is built for.
    output_dim : int, default 1
        Number of regression targets.

    Returns
    -------
    str
        Several lines, ready to print.

    Examples
    --------
    >>> cfg = ModelConfig(block="ResNetBlock", num_blocks=[1], c_hidden=[4], dropout=0.0)
    >>> print(describe(cfg, input_dim=3))
    ResNet for 3 input features and 1 output
    options: arch=resnet block=ResNetBlock num_blocks=[1] c_hidden=[4] activation=relu
      norm=None dropout=0.0 shortcut=projection zero_init=False init=zero_residual
      embedding_dim=8 num_embedding=ple num_embedding_dim=8 n_bins=48 n_frequencies=48
      frequency_scale=0.1 ensemble_size=4 ensemble=mini
    ResNet(
      (input_net): Sequential(
        (0): Linear(in_features=3, out_features=4, bias=True)
        (1): ReLU()
      )
      (blocks): Sequential(
        (0): ResNetBlock(
          (net): Sequential(
            (0): Linear(in_features=4, out_features=4, bias=False)
            (1): BatchNorm1d(4, eps=1e-05, momentum=0.1, affine=True, ...track_running_stats=True)
            (2): ReLU()
            (3): Linear(in_features=4, out_features=4, bias=False)
            (4): BatchNorm1d(4, eps=1e-05, momentum=0.1, affine=True, ...track_running_stats=True)
          )
          (act_fn): ReLU()
        )
      )
      (output_net): Linear(in_features=4, out_features=1, bias=True)
    )
    parameters: 69 (trainable: 69)
    """
    model = cfg.build(input_dim, output_dim)
    outputs = "output" if output_dim == 1 else "outputs"
    head = f"{type(model).__name__} for {input_dim} input features and {output_dim} {outputs}"
    return _tree(model, [head], cfg)


def _tree(net: nn.Module, head: list[str], cfg: ModelConfig) -> str:
    """``head``, the options wrapped, the module tree and the parameter counts."""
    total, trainable = count_parameters(net)
    options = " ".join(f"{k}={v}" for k, v in cfg.to_dict().items())
    lines = [
        *head,
        *textwrap.wrap("options: " + options, 88, subsequent_indent="  ",
                       break_long_words=False, break_on_hyphens=False),
        repr(net),
        f"parameters: {total:,} (trainable: {trainable:,})",
    ]
    return "\n".join(lines)


def render_graph(model: nn.Module, inputs: Sequence[torch.Tensor], fmt: str = "png") -> bytes:
    """The autograd graph of one forward pass on ``inputs``, rendered by Graphviz.

    torchviz walks the graph from the output back to the parameters (blue
    boxes, named as in the module tree). The pass runs in eval mode (dropout
    is the identity, no BatchNorm statistics change) and the model's mode is
    restored. The drawing keeps its natural size (torchviz's size cap is
    dropped), at screen resolution.

    Raises
    ------
    TabResNetError
        When the Graphviz ``dot`` program is not installed.
    """
    import graphviz  # lazily: only drawing needs it
    from torchviz import make_dot

    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            output = model(*inputs)
        dot = make_dot(output, params=dict(model.named_parameters()))
    finally:
        model.train(was_training)
    dot.graph_attr.pop("size", None)
    dot.graph_attr.update(dpi="72")
    try:
        return dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound as exc:
        raise TabResNetError(
            "Graphviz 'dot' was not found on PATH; install Graphviz "
            "(apt-get install graphviz, brew install graphviz) or leave out --graph"
        ) from exc


def draw_graph(model: nn.Module, input_dim: int, path: str | os.PathLike) -> Path:
    """Render the autograd graph of one forward pass on two rows to ``path``.

    The format follows the suffix (``.png``, ``.svg``, ``.pdf``); the file is
    written under a temporary name and renamed, and missing parent directories
    are created.

    Raises
    ------
    ConfigError
        For a suffix other than ``.png``, ``.svg``, ``.pdf``.
    TabResNetError
        When the Graphviz ``dot`` program is not installed.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from tabresnet.models import ResNet
    >>> model = ResNet(3, 1, num_blocks=[1], c_hidden=[4])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     if shutil.which("dot"):
    ...         out = draw_graph(model, 3, Path(tmp) / "net.svg")
    ...         assert "<svg" in out.read_text()
    """
    path = Path(path)
    fmt = check_graph_path(path)
    param = next(model.parameters(), None)
    x = torch.randn(2, input_dim, generator=torch.Generator().manual_seed(0))
    if param is not None:
        x = x.to(device=param.device, dtype=param.dtype)
    atomic_write_bytes(path, render_graph(model, [x], fmt))
    return path


def check_graph_path(path: str | os.PathLike) -> str:
    """The Graphviz format for ``path``'s suffix; :class:`ConfigError` for an unknown one."""
    path = Path(path)
    fmt = GRAPH_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"cannot draw a graph to {path.name!r}; give a file ending in "
            f"{', '.join(GRAPH_FORMATS)}"
        )
    return fmt


def describe_trained(model: Any) -> str:
    """A saved model's network as trained: the columns it reads, its tree and parameter counts.

    Parameters
    ----------
    model : TabularModel
        A loaded model (:func:`tabresnet.load`).

    Returns
    -------
    str
        Several lines, ready to print.

    Examples
    --------
    >>> import numpy as np, pandas as pd, tabresnet
    >>> df = pd.DataFrame({"a": np.arange(40.0), "c": ["u", "v"] * 20, "y": np.arange(40.0)})
    >>> run = tabresnet.fit(df, "y", max_epochs=1, num_blocks=[1], c_hidden=[4],
    ...                     ensemble_size=1, progress="none", report=False)
    >>> text = describe_trained(run.model)
    >>> print(text.splitlines()[0])
    TabularNetwork trained on 2 columns, predicting y
    >>> text.splitlines()[1:3]
    ['  target (1): y', '  numeric (1): a']
    >>> text.splitlines()[-1].startswith("parameters: ")
    True
    """
    schema = model.schema
    head = [f"{type(model.network).__name__} trained on {len(schema.feature_columns)} columns, "
            f"predicting {', '.join(schema.targets)}",
            *(f"  {line}" for line in schema.describe(max_names=None))]  # every column
    return _tree(model.network, head, model.config.model)


def load_model_config(path: str | os.PathLike | None) -> ModelConfig:
    """Read model options from a YAML file; ``None`` gives the defaults.

    The file may be a whole run config (its ``model:`` section is read) or
    hold the model options alone. Problems raise :class:`ConfigError`.

    Examples
    --------
    >>> load_model_config(None) == ModelConfig()
    True
    >>> load_model_config("missing.yaml")
    Traceback (most recent call last):
    ...
    tabresnet.errors.ConfigError: config file 'missing.yaml' not found; ...
    """
    if path is None:
        return ModelConfig()
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found; give a YAML file with --config")
    try:
        return ModelConfig.from_yaml(path.read_text())
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path} is not valid YAML ({first}); fix the file") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
