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
    """``mean(member(x_num, x_cat) for member in members)``, or a weighted sum.

    Parameters
    ----------
    members : sequence of nn.Module
        At least one; each maps ``x_num`` of shape ``(N, n_num)`` and ``x_cat``
        of shape ``(N, n_cat)`` to ``(N, n_out)``, the same ``n_out`` for all.
    weights : sequence of float, optional
        One non-negative weight per member, summing to 1 (the ensemble
        selection of ``tune --pack``); default: the plain mean.
    configs : sequence of dict, optional
        Each member's model options, when they differ (a population's members);
        the model file stores them to rebuild the members.

    Examples
    --------
    >>> import torch
    >>> from tabresnet.models import ModelConfig
    >>> nets = [ModelConfig(num_blocks=[1], c_hidden=[w], ensemble_size=1).build_tabular(2, [], 1)
    ...         for w in (8, 16)]
    >>> ens = MeanEnsemble(nets, weights=[0.25, 0.75]).eval()
    >>> x, c = torch.randn(3, 2), torch.zeros(3, 0, dtype=torch.long)
    >>> torch.allclose(ens(x, c), 0.25 * nets[0](x, c) + 0.75 * nets[1](x, c))
    True

    Attributes
    ----------
    members : nn.ModuleList
        State-dict keys are ``members.<i>.<member key>``.
    cardinalities : list of int
        The first member's (all members see the same columns).
    """

    def __init__(
        self,
        members: Sequence[nn.Module],
        weights: Sequence[float] | None = None,
        configs: Sequence[dict] | None = None,
    ):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.cardinalities = list(getattr(members[0], "cardinalities", []) or [])
        self.weighted = weights is not None
        w = [float(v) for v in weights] if weights is not None else [1.0 / len(members)] * len(members)
        if len(w) != len(members) or any(not v >= 0 for v in w) or abs(sum(w) - 1.0) > 1e-6:
            raise ValueError(
                f"weights must be one non-negative number per member summing to 1, however: {w}"
            )
        self.weights = w
        # Not in the state dict: the model file keeps the weights in its JSON.
        self.register_buffer("weight", torch.tensor(w).view(-1, 1, 1), persistent=False)
        self.configs = [dict(c) for c in configs] if configs is not None else None

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        out = torch.stack([member(x_num, x_cat) for member in self.members])
        if self.weighted:
            return (out * self.weight).sum(0)
        return out.mean(0)

    def extra_repr(self) -> str:
        weights = f", weights={[round(w, 4) for w in self.weights]}" if self.weighted else ""
        return f"n_members={len(self.members)}{weights}"
