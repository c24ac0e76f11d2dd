"""An ensemble inside one network: k members trained together in one forward pass.

TabM (Gorishniy, Kotelnikov & Babenko, "TabM: Advancing Tabular Deep Learning
with Parameter-Efficient Ensembling", ICLR 2025) trains k MLPs as one network
whose activations carry a member dimension, ``(N, k, d)``, and averages the
members' predictions. Here the members are the chapter's networks, in two
flavours (:func:`pack`):

* ``"batch"`` -- the members share every weight matrix of the chapter's
  blocks; each has rank-1 multiplicative adapters ``r``, ``s`` around the shared
  weight and its own bias (BatchEnsemble, Wen, Tran & Ba, ICLR 2020), its own
  BatchNorm statistics, and its own output head. As in TabM, only the first
  layer's input adapter starts from random signs; the others start at one.
* ``"mini"`` -- TabM-mini: the members share every layer, the first Linear's
  input adapter ``r`` (random signs) and the output heads aside; BatchNorm
  statistics stay per member. The cheapest kind: the blocks run as plain
  shared layers on ``(N, k, d)``.
* ``"packed"`` -- fully independent members: every Linear becomes k stacked
  weight matrices applied with one batched matrix product, every norm has
  per-member statistics and affine parameters.

Either way the module tree keeps the chapter's shape (blocks, ``net``,
``downsample``): :func:`pack` replaces the layers of k identically built copies
and leaves activations, dropout and the blocks' ``forward`` as they are, since
those act on the last dimension only. ``k = 1`` is not packed at all: it is the
chapter's network.

>>> import torch
>>> from tabresnet.models import ResNet
>>> copies = [ResNet(4, 1, num_blocks=[1], c_hidden=[8]) for _ in range(3)]
>>> net = pack(copies, "packed")
>>> out = net(torch.randn(5, 3, 4))              # (N, k, features) in
>>> out.shape                                     # (N, k, outputs) out
torch.Size([5, 3, 1])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .names import ENSEMBLE_KINDS
from .tabular import TabularNetwork

__all__ = [
    "ENSEMBLE_KINDS",
    "BatchEnsembleLinear",
    "EnsembleBatchNorm",
    "EnsembleLayerNorm",
    "PackedLinear",
    "TabularEnsemble",
    "pack",
]


class PackedLinear(nn.Module):
    """k independent ``Linear(in_features, out_features)`` as one batched product.

    Parameters
    ----------
    k, in_features, out_features : int
    bias : bool

    Shape
    -----
    - Input: ``(N, k, in_features)``
    - Output: ``(N, k, out_features)``

    Examples
    --------
    >>> layers = [nn.Linear(3, 2) for _ in range(4)]
    >>> packed = PackedLinear.from_linears(layers)
    >>> x = torch.randn(5, 4, 3)
    >>> torch.allclose(packed(x)[:, 1], layers[1](x[:, 1]), atol=1e-6)
    True
    """

    def __init__(self, k: int, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(k, out_features)) if bias else None
        for i in range(k):  # nn.Linear's init, member by member
            layer = nn.Linear(in_features, out_features, bias=bias)
            with torch.no_grad():
                self.weight[i].copy_(layer.weight.T)
                if self.bias is not None:
                    self.bias[i].copy_(layer.bias)

    @classmethod
    def from_linears(cls, layers: Sequence[nn.Linear]) -> PackedLinear:
        """Stack the weights of k equally shaped Linears (member i = ``layers[i]``)."""
        first = layers[0]
        out = cls(len(layers), first.in_features, first.out_features, first.bias is not None)
        with torch.no_grad():
            out.weight.copy_(torch.stack([m.weight.T for m in layers]))
            if out.bias is not None:
                out.bias.copy_(torch.stack([m.bias for m in layers]))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (k, N, in) @ (k, in, out): one batched matmul over the members.
        y = torch.matmul(x.transpose(0, 1), self.weight).transpose(0, 1)
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        k, i, o = self.weight.shape
        return f"k={k}, in_features={i}, out_features={o}, bias={self.bias is not None}"


class BatchEnsembleLinear(nn.Module):
    """A Linear shared by k members with rank-1 adapters: ``((x * r) @ W.T) * s + b_i``.

    Wen, Tran & Ba, "BatchEnsemble" (ICLR 2020). ``weight`` keeps
    ``nn.Linear``'s ``(out, in)`` layout; ``r`` ``(k, in)``, ``s`` ``(k, out)``
    and the bias ``(k, out)`` belong to the members.

    Parameters
    ----------
    linear : nn.Linear
        Gives the shared weight (copied).
    k : int
    random_signs : bool
        Start ``r`` at random +-1 (TabM does this for the first layer only, so
        that members differ from the first step); otherwise at one.
    biases : sequence of Tensor, optional
        Per-member starting biases; default: ``linear``'s bias for every member.

    Shape
    -----
    - Input: ``(N, k, in)``
    - Output: ``(N, k, out)``

    Examples
    --------
    >>> be = BatchEnsembleLinear(nn.Linear(3, 2), k=4)
    >>> be(torch.randn(5, 4, 3)).shape
    torch.Size([5, 4, 2])
    """

    def __init__(
        self,
        linear: nn.Linear,
        k: int,
        random_signs: bool = False,
        biases: Sequence[torch.Tensor | None] | None = None,
    ):
        super().__init__()
        out_f, in_f = linear.weight.shape
        self.weight = nn.Parameter(linear.weight.detach().clone())
        r = torch.ones(k, in_f)
        if random_signs:
            r = torch.where(torch.rand(k, in_f) < 0.5, -r, r)
        self.r = nn.Parameter(r)
        self.s = nn.Parameter(torch.ones(k, out_f))
        if linear.bias is None:
            self.bias = None
        else:
            rows = biases if biases is not None else [linear.bias] * k
            self.bias = nn.Parameter(torch.stack([b.detach().clone() for b in rows]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x * self.r, self.weight) * self.s
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        return f"k={self.r.shape[0]}, in_features={self.r.shape[1]}, out_features={self.s.shape[1]}"


class EnsembleBatchNorm(nn.Module):
    """BatchNorm with per-member statistics and affine parameters.

    The member dimension is folded into the channels: ``(N, k, d)`` is
    normalised as ``BatchNorm1d(k * d)`` on ``(N, k * d)``, so each member's
    channels see only its own rows.

    Shape
    -----
    - Input: ``(N, k, d)``; Output: the same.

    Examples
    --------
    >>> bn = EnsembleBatchNorm.from_norms([nn.BatchNorm1d(3) for _ in range(2)])
    >>> bn(torch.randn(8, 2, 3)).shape
    torch.Size([8, 2, 3])
    """

    def __init__(self, k: int, d: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True):
        super().__init__()
        self.k, self.d = int(k), int(d)
        self.norm = nn.BatchNorm1d(k * d, eps=eps, momentum=momentum, affine=affine)

    @classmethod
    def from_norms(cls, norms: Sequence[nn.BatchNorm1d]) -> EnsembleBatchNorm:
        first = norms[0]
        out = cls(len(norms), first.num_features, first.eps, first.momentum or 0.1, first.affine)
        with torch.no_grad():
            if first.affine:
                out.norm.weight.copy_(torch.cat([n.weight for n in norms]))
                out.norm.bias.copy_(torch.cat([n.bias for n in norms]))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        return self.norm(x.reshape(n, self.k * self.d)).reshape(n, self.k, self.d)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last dimension with a per-member scale and shift ``(k, d)``.

    Shape
    -----
    - Input: ``(N, k, d)``; Output: the same.

    Examples
    --------
    >>> ln = EnsembleLayerNorm.from_norms([nn.LayerNorm(3) for _ in range(2)])
    >>> ln(torch.randn(4, 2, 3)).shape
    torch.Size([4, 2, 3])
    """

    def __init__(self, k: int, d: int, eps: float = 1e-5):
        super().__init__()
        self.d, self.eps = int(d), float(eps)
        self.weight = nn.Parameter(torch.ones(k, d))
        self.bias = nn.Parameter(torch.zeros(k, d))

    @classmethod
    def from_norms(cls, norms: Sequence[nn.LayerNorm]) -> EnsembleLayerNorm:
        first = norms[0]
        out = cls(len(norms), first.normalized_shape[-1], first.eps)
        with torch.no_grad():
            if first.elementwise_affine:
                out.weight.copy_(torch.stack([n.weight for n in norms]))
                if first.bias is not None:
                    out.bias.copy_(torch.stack([n.bias for n in norms]))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, [self.d], None, None, self.eps) * self.weight + self.bias


def pack(copies: Sequence[nn.Module], kind: str = "batch", head: nn.Module | None = None) -> nn.Module:
    """One network that runs ``len(copies)`` members of the same architecture at once.

    Parameters
    ----------
    copies : sequence of nn.Module
        k >= 2 networks built identically (each with its own random init);
        ``copies[0]`` is the template whose module tree is kept.
    kind : {"batch", "mini", "packed"}
        Shared weights with BatchEnsemble adapters in every Linear, or only
        on the first (TabM-mini), or independent members.
    head : nn.Module, optional
        The template's output layer; with ``"batch"`` it becomes a per-member
        head (:class:`PackedLinear`). Default: ``copies[0].output_head()``.

    Returns
    -------
    nn.Module
        ``copies[0]``, its layers replaced in place: maps ``(N, k, d_in)`` to
        ``(N, k, d_out)``.
    """
    if kind not in ENSEMBLE_KINDS:
        raise ValueError(
            f"unknown ensemble kind {kind!r}; valid names are: {', '.join(ENSEMBLE_KINDS)}"
        )
    if len(copies) < 2:
        raise ValueError(f"pack needs at least 2 members, however: {len(copies)}")
    template = copies[0]
    if head is None and hasattr(template, "output_head"):
        head = template.output_head()
    state = {"first": True}
    _pack_children(template, list(copies), kind, head, state)
    return template


def _pack_children(parent: nn.Module, twins: list[nn.Module], kind: str, head, state) -> None:
    for name, child in list(parent.named_children()):
        same = [getattr(t, name) for t in twins]
        if isinstance(child, nn.Linear):
            if kind == "packed" or child is head:
                new: nn.Module = PackedLinear.from_linears(same)
            elif kind == "mini" and not state["first"]:
                continue  # a plain Linear shared by every member
            else:
                new = BatchEnsembleLinear(
                    child, len(same), random_signs=state["first"], biases=[m.bias for m in same]
                )
            state["first"] = False
        elif isinstance(child, nn.BatchNorm1d):
            new = EnsembleBatchNorm.from_norms(same)
        elif isinstance(child, nn.LayerNorm) and kind == "packed":
            new = EnsembleLayerNorm.from_norms(same)
        else:
            # Containers are walked; activations, dropout, Identity, a shared
            # LayerNorm and the zero-pad shortcut act on the last dimension.
            _pack_children(child, same, kind, head, state)
            continue
        setattr(parent, name, new)


class TabularEnsemble(TabularNetwork):
    """k members behind one set of input embeddings; predicts the members' mean.

    The numeric and categorical embeddings are shared (as in TabM); the backbone
    is a :func:`pack`-ed network. Inputs may carry the member dimension (each
    member its own rows, as in training) or not (every member sees the same
    rows, as in prediction).

    Parameters
    ----------
    backbone : nn.Module
        From :func:`pack`: ``(N, k, d_in) -> (N, k, d_out)``.
    k : int
        Number of members.
    cardinalities, embedding_dim, numeric
        As in :class:`~tabresnet.models.TabularNetwork`.

    Shape
    -----
    - Input: ``x_num`` ``(N, n_num)`` or ``(N, k, n_num)``; ``x_cat`` likewise, int64
    - Output of ``forward``: ``(N, d_out)``, the members' mean
    - Output of ``members``: ``(N, k, d_out)``

    Examples
    --------
    >>> from tabresnet.models import ModelConfig
    >>> net = ModelConfig(num_blocks=[1], c_hidden=[8], ensemble_size=4).build_tabular(3, [5], 1)
    >>> x_num, x_cat = torch.randn(6, 3), torch.randint(0, 5, (6, 1))
    >>> net.members(x_num, x_cat).shape, net(x_num, x_cat).shape
    (torch.Size([6, 4, 1]), torch.Size([6, 1]))
    """

    def __init__(
        self,
        backbone: nn.Module,
        k: int,
        cardinalities: Sequence[int] = (),
        embedding_dim: int = 8,
        numeric: nn.Module | None = None,
    ):
        super().__init__(backbone, cardinalities, embedding_dim, numeric)
        self.k = int(k)

    @torch.jit.export
    def members(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """Each member's prediction, ``(N, k, d_out)``."""
        x = self.features(x_num, x_cat)
        if x.dim() == 2:
            x = x.unsqueeze(1).expand(x.shape[0], self.k, x.shape[1])
        return self.backbone(x)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.members(x_num, x_cat).mean(dim=1)

    def extra_repr(self) -> str:
        return f"k={self.k}"
