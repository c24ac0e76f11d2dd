"""Print a network's module tree and parameter counts, and draw its autograd graph.

    tabresnet show                                    # the default network
    tabresnet show --config model.yaml                # a run config or bare model options
    tabresnet show -c model.yaml --graph net.png      # also draw the graph (PNG, SVG, PDF)
    tabresnet show -c model.yaml --input-dim 20 --output-dim 2

The graph is the chapter's picture: ``torchviz.make_dot`` on the output of one
forward pass, with the parameters named. Rendering needs the Graphviz ``dot``
program.

The CLI wires this module in with :func:`add_show_parser` and :func:`run_show`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch import nn

from .errors import ConfigError, TabResNetError
from .models import ModelConfig

__all__ = [
    "DEFAULT_INPUT_DIM",
    "GRAPH_FORMATS",
    "add_show_parser",
    "count_parameters",
    "describe",
    "draw_graph",
    "load_model_config",
    "run_show",
]

# A model config does not know the table it will see; the chapter's examples
# use 10 input features, so a tree drawn without --input-dim matches them.
DEFAULT_INPUT_DIM = 10
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
      embedding_dim=8
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
    total, trainable = count_parameters(model)
    outputs = "output" if output_dim == 1 else "outputs"
    options = " ".join(f"{k}={v}" for k, v in cfg.to_dict().items())
    lines = [
        f"{type(model).__name__} for {input_dim} input features and {output_dim} {outputs}",
        *_wrap("options: " + options, width=88, indent="  "),
        repr(model),
        f"parameters: {total:,} (trainable: {trainable:,})",
    ]
    return "\n".join(lines)


def _wrap(text: str, width: int, indent: str) -> list[str]:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = indent + word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line]


def draw_graph(model: nn.Module, input_dim: int, path: str | os.PathLike) -> Path:
    """Render the autograd graph of one forward pass to ``path``.

    The format follows the suffix (``.png``, ``.svg``, ``.pdf``). The file is
    written under a temporary name and renamed, so ``path`` is either the old
    file or the complete new one. The forward pass runs in eval mode on two
    rows (no BatchNorm statistics change) and the model's mode is restored.

    Parameters
    ----------
    model : nn.Module
        A network taking ``(N, input_dim)`` float tensors.
    input_dim : int
        Number of input features.
    path : str or PathLike
        Output file; missing parent directories are created.

    Returns
    -------
    Path
        ``path``.

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
    import graphviz  # lazily: only drawing needs it
    from torchviz import make_dot

    path = Path(path)
    fmt = _graph_format(path)
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        dtype = param.dtype if param is not None else torch.float32
        device = param.device if param is not None else None
        x = torch.randn(2, input_dim, generator=torch.Generator().manual_seed(0))
        with torch.enable_grad():
            output = model(x.to(device=device, dtype=dtype))
        dot = make_dot(output, params=dict(model.named_parameters()))
    finally:
        model.train(was_training)
    try:
        data = dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound as exc:
        raise TabResNetError(
            "Graphviz 'dot' was not found on PATH; install Graphviz "
            "(apt-get install graphviz, brew install graphviz) or leave out --graph"
        ) from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory (so the rename is atomic), a name unique to this process.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _graph_format(path: Path) -> str:
    fmt = GRAPH_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"cannot draw a graph to {path.name!r}; give a file ending in "
            f"{', '.join(GRAPH_FORMATS)}"
        )
    return fmt


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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_show_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``show`` command to a CLI's subparsers (its handler: :func:`run_show`).

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="tabresnet")
    >>> _ = add_show_parser(parser.add_subparsers())
    >>> args = parser.parse_args(["show", "--input-dim", "20", "--graph", "net.png"])
    >>> args.config, args.input_dim, args.output_dim, args.graph, args.func is run_show
    (None, 20, 1, 'net.png', True)
    """
    p = subparsers.add_parser(
        "show",
        help="print a network's module tree and parameter count; optionally draw its graph",
        description="Build the network a config describes, print its module tree and "
        "parameter counts, and optionally render its autograd graph (needs Graphviz).",
    )
    p.add_argument(
        "--config",
        "-c",
        help="YAML run config (its model: section) or bare model options; default: defaults",
    )
    p.add_argument("--graph", metavar="FILE", help="draw the graph to FILE (.png, .svg or .pdf)")
    p.add_argument(
        "--input-dim",
        type=_positive_int,
        default=DEFAULT_INPUT_DIM,
        metavar="N",
        help=f"number of input features (default: {DEFAULT_INPUT_DIM})",
    )
    p.add_argument(
        "--output-dim",
        type=_positive_int,
        default=1,
        metavar="M",
        help="number of regression targets (default: 1)",
    )
    p.set_defaults(func=run_show)
    return p


def run_show(args: argparse.Namespace) -> int:
    """Handle ``tabresnet show``: print the description, draw the graph if asked.

    Returns 0; user errors raise :class:`~tabresnet.errors.TabResNetError`,
    which the CLI prints as one ``error:`` line.

    Examples
    --------
    >>> run_show(argparse.Namespace(config=None, input_dim=4, output_dim=2, graph=None))
    ResNet for 4 input features and 2 outputs
    ...
    parameters: ... (trainable: ...)
    0
    """
    cfg = load_model_config(getattr(args, "config", None))
    input_dim = getattr(args, "input_dim", None) or DEFAULT_INPUT_DIM
    output_dim = getattr(args, "output_dim", None) or 1
    graph = getattr(args, "graph", None)
    if graph:
        _graph_format(Path(graph))  # a bad suffix fails before anything is printed
    print(describe(cfg, input_dim, output_dim))
    if graph:
        path = draw_graph(cfg.build(input_dim, output_dim), input_dim, graph)
        print(f"graph written to {path}")
    return 0
