"""An average of networks that take the same inputs: the k-fold bag ``tune`` saves.

Training one configuration on each of k cross-validation folds and averaging
the k networks (bagging) lowers the variance of the prediction; on small
tables it is worth more than a finer search. The members share their inputs
(one preprocessing) and their output space, so the mean of their outputs is
the prediction.

>>> import torch
>>> from tabresnet.models import ModelConfig
>>> cfg = ModelConfig(num_blocks=[1], c_hidden=[8])
>>> members = [cfg.build_tabular(3, [], 1) for _ in range(4)]
>>> bag = MeanEnsemble(members)
>>> x_num, x_cat = torch.randn(5, 3), torch.zeros(5, 0, dtype=torch.long)
>>> out = bag.eval()(x_num, x_cat)
>>> out.shape
torch.Size([5, 1])
>>> torch.allclose(out, torch.stack([m(x_num, x_cat) for m in members]).mean(0))
True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MeanEnsemble"]


class MeanEnsemble(nn.Module):
    """``mean(member(x_num, x_cat) for member in members)``.

    Parameters
    ----------
    members : sequence of nn.Module
        At least one; each maps ``x_num`` of shape ``(N, n_num)`` and ``x_cat``
        of shape ``(N, n_cat)`` to ``(N, n_out)``, the same ``n_out`` for all.

    Attributes
    ----------
    members : nn.ModuleList
        State-dict keys are ``members.<i>.<member key>``.
    cardinalities : list of int
        The first member's (all members see the same columns).
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.cardinalities = list(getattr(members[0], "cardinalities", []) or [])

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x_num, x_cat) for member in self.members]).mean(0)

    def extra_repr(self) -> str:
        return f"n_members={len(self.members)}"
