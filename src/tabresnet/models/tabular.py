"""Put categorical embeddings in front of a residual network.

Preprocessing turns a table into two tensors: ``x_num`` (float features:
scaled numerics, missing-value indicators, one-hot codes of low-cardinality
categoricals) and ``x_cat`` (integer codes of high-cardinality categoricals,
with 0 reserved for missing and unseen values). :class:`TabularNetwork`
embeds ``x_cat``, concatenates it to ``x_num`` (itself optionally embedded
column by column, :mod:`tabresnet.models.embeddings`) and runs the backbone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["CategoricalEmbeddings", "TabularNetwork"]


class CategoricalEmbeddings(nn.Module):
    """One ``nn.Embedding`` per categorical column, outputs concatenated.

    Parameters
    ----------
    cardinalities : sequence of int
        Number of codes of each column, the reserved code 0 included.
    dim : int
        Embedding width of every column.

    Shape
    -----
    - Input: ``(..., len(cardinalities))`` int64 codes
    - Output: ``(..., len(cardinalities) * dim)``

    Examples
    --------
    >>> emb = CategoricalEmbeddings([5, 3], dim=4)
    >>> emb(torch.tensor([[0, 2], [4, 1]])).shape
    torch.Size([2, 8])
    """

    def __init__(self, cardinalities: Sequence[int], dim: int):
        super().__init__()
        if dim <= 0:
            raise ValueError(f"embedding dim must be positive, however: {dim=}")
        self.embeddings = nn.ModuleList([nn.Embedding(int(c), dim) for c in cardinalities])
        self.out_features = len(cardinalities) * dim

    def forward(self, x_cat: torch.Tensor) -> torch.Tensor:
        parts = [emb(x_cat[..., i]) for i, emb in enumerate(self.embeddings)]
        return torch.cat(parts, dim=-1)


class TabularNetwork(nn.Module):
    """``backbone(concat(numeric(x_num), embeddings(x_cat)))``.

    Parameters
    ----------
    backbone : nn.Module
        Any network from :mod:`tabresnet.models.networks`, built with
        ``input_dim = n_num + len(cardinalities) * embedding_dim``.
    cardinalities : sequence of int
        Code counts of the embedded columns (may be empty).
    embedding_dim : int
        Embedding width.
    numeric : nn.Module, optional
        Applied to ``x_num`` first, e.g.
        :class:`~tabresnet.models.embeddings.NumericEmbeddings`; default
        ``nn.Identity()`` (no parameters: the state dict is the chapter-era one).

    Shape
    -----
    - Input: ``x_num`` ``(N, n_num)`` float32 and ``x_cat`` ``(N, n_cat)`` int64
    - Output: ``(N, output_dim)``

    Examples
    --------
    >>> from tabresnet.models import ResNet
    >>> net = TabularNetwork(ResNet(3 + 2 * 4, 1, [1], [16]), [10, 7], embedding_dim=4)
    >>> net(torch.randn(6, 3), torch.randint(0, 7, (6, 2))).shape
    torch.Size([6, 1])
    """

    def __init__(
        self,
        backbone: nn.Module,
        cardinalities: Sequence[int] = (),
        embedding_dim: int = 8,
        numeric: nn.Module | None = None,
    ):
        super().__init__()
        self.cardinalities = [int(c) for c in cardinalities]
        self.n_cat: int = len(self.cardinalities)  # an int: TorchScript cannot type an empty list
        self.embeddings = CategoricalEmbeddings(self.cardinalities, max(embedding_dim, 1))
        self.numeric = numeric if numeric is not None else nn.Identity()
        self.backbone = backbone

    def features(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """The backbone's input: ``(..., n_num) -> (..., input_dim)``."""
        x = self.numeric(x_num)
        if self.n_cat > 0:
            x = torch.cat([x, self.embeddings(x_cat)], dim=-1)
        return x

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.features(x_num, x_cat))
