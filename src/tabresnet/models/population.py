"""A population: k networks of *different* configurations trained as one packed network.

``tabresnet tune --pack K`` trains K configurations of the search space side
by side (TabPack, Gorishniy et al.; the packed members of
:mod:`tabresnet.models.packed`): every Linear of the k members is one stacked
weight ``(k, in, out)`` applied with one batched matrix product, every norm has
per-member parameters, and each member has its own dropout rate, width and
depth:

* **width** -- the pack is as wide as its widest member; a narrower member
  holds zeros in the extra rows and columns of its weights (and norm scales),
  so those units stay exactly zero and the member computes exactly its own
  narrower network. LayerNorm normalises over the member's own width
  (:class:`MemberLayerNorm`); BatchNorm is per unit anyway.
* **depth** -- the pack has the most blocks any member has; a member's unused
  blocks are skipped (``where(gate, block(x), x)``), so they are identity.
* **dropout** -- one rate per member (:class:`MemberDropout`).

What a pack shares (one value for all members): the block kind, norm and
activation, the number of groups, the shortcut, the numeric-embedding kind
and sizes and the categorical embedding width -- the module tree is one
template's. The population tuner fixes them for the whole study (see
:mod:`tabresnet.tuning.population`).

A member goes in and out as a plain network of its own configuration
(:meth:`PopulationNetwork.load_member`, :meth:`PopulationNetwork.member_network`),
so a member initialised here is bit for bit the network ``fit`` builds with
the same seed, and a finished member is saved like any other network.

>>> import torch
>>> from tabresnet.models import ModelConfig
>>> cfgs = [ModelConfig(num_blocks=[b], c_hidden=[w], dropout=0.0, ensemble_size=1,
...                     num_embedding="none") for b, w in ((1, 8), (2, 16))]
>>> nets = [c.build_tabular(3, [], 1) for c in cfgs]
>>> pop = PopulationNetwork(cfgs, n_num=3, cardinalities=[], output_dim=1)
>>> for i, net in enumerate(nets):
...     pop.load_member(i, net, cfgs[i])
>>> x = torch.randn(5, 3)
>>> out = pop.eval()(x, torch.zeros(5, 0, dtype=torch.long))    # (N, k, out)
>>> torch.allclose(out[:, 1], nets[1].eval()(x, torch.zeros(5, 0, dtype=torch.long)), atol=1e-6)
True
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .embeddings import PeriodicEmbeddings, _PerColumnLinear
from .packed import PackedLinear
from .tabular import TabularNetwork

__all__ = [
    "MemberBatchNorm",
    "MemberDropout",
    "MemberLayerNorm",
    "PackedEmbedding",
    "PopulationNetwork",
    "SHARED_OPTIONS",
    "block_key",
    "pack_layout",
]

# Model options every member of one pack has in common (the module tree's template).
SHARED_OPTIONS = (
    "arch", "block", "norm", "activation", "shortcut", "embedding_dim", "num_embedding",
    "num_embedding_dim", "n_bins", "n_frequencies",
)


class MemberLayerNorm(nn.Module):
    """LayerNorm over each member's own first ``width[i]`` features.

    Shape
    -----
    - Input: ``(N, k, d)``, zero beyond each member's width; Output: the same.
    """

    def __init__(self, k: int, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.zeros(k, d))
        self.bias = nn.Parameter(torch.zeros(k, d))
        self.register_buffer("mask", torch.ones(k, d), persistent=False)
        self.register_buffer("count", torch.full((k, 1), float(d)), persistent=False)
        self.full = True  # every member as wide as the pack: plain LayerNorm, no masks

    def set_width(self, i: int, width: int) -> None:
        self.mask[i].zero_()
        self.mask[i, :width] = 1.0
        self.count[i] = float(max(width, 1))
        self.full = bool(self.mask.all())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.full:  # the common case (the trainer packs members of one width)
            return F.layer_norm(x, x.shape[-1:], None, None, self.eps) * self.weight + self.bias
        # Masked before the mean too: otherwise the mean's gradient reaches the
        # padded units and training would fill them.
        x = x * self.mask
        mean = x.sum(-1, keepdim=True) / self.count
        centred = (x - mean) * self.mask
        var = (centred * centred).sum(-1, keepdim=True) / self.count
        return centred * torch.rsqrt(var + self.eps) * self.weight + self.bias


class MemberBatchNorm(nn.Module):
    """BatchNorm with per-member statistics and affine parameters, all ``(k, d)``.

    A unit beyond a member's width sees zeros and has a zero scale and shift,
    so it stays zero.
    """

    def __init__(self, k: int, d: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = float(eps), float(momentum)
        self.weight = nn.Parameter(torch.zeros(k, d))
        self.bias = nn.Parameter(torch.zeros(k, d))
        self.register_buffer("running_mean", torch.zeros(k, d))
        self.register_buffer("running_var", torch.ones(k, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, k, d = x.shape
        y = F.batch_norm(
            x.reshape(n, k * d), self.running_mean.view(-1), self.running_var.view(-1),
            self.weight.reshape(-1), self.bias.reshape(-1), self.training, self.momentum, self.eps,
        )
        return y.reshape(n, k, d)


class MemberDropout(nn.Module):
    """Dropout with one rate per member (``p`` of shape ``(k, 1)``).

    When every member has the same rate it is ``F.dropout`` itself (one random
    draw per element, as in the member's own network).
    """

    def __init__(self, k: int):
        super().__init__()
        self.register_buffer("p", torch.zeros(k, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        rates = self.p.flatten().tolist()
        if max(rates) == 0.0:
            return x
        if min(rates) == max(rates):
            return F.dropout(x, rates[0], True)
        keep = 1.0 - self.p
        return x * torch.bernoulli(keep.expand_as(x)) / keep


class PackedEmbedding(nn.Module):
    """k embedding tables ``(k, n_codes, dim)``: codes ``(N, k)`` -> ``(N, k, dim)``."""

    def __init__(self, k: int, n_codes: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(k, n_codes, dim))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        members = torch.arange(self.weight.shape[0], device=codes.device)
        return self.weight[members, codes]


class _PackedPerColumnLinear(nn.Module):
    """k members' per-column Linears: ``(N, k, n, t) -> (N, k, n, d)``."""

    def __init__(self, k: int, n: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(k, n, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(k, n, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...knt,kntd->...knd", x, self.weight) + self.bias


class _GatedBlocks(nn.Sequential):
    """The blocks of a pack; member ``i`` skips block ``j`` where ``gates[j, i]`` is false."""

    def __init__(self, blocks: Sequence[nn.Module], k: int, gated: Sequence[bool]):
        super().__init__(*blocks)
        self.gated = [bool(g) for g in gated]
        self.register_buffer("gates", torch.ones(len(blocks), k, 1, dtype=torch.bool),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for j, block in enumerate(self):
            y = block(x)
            x = torch.where(self.gates[j], y, x) if self.gated[j] else y
        return x


def pack_layout(configs: Sequence) -> tuple[list[int], list[int]]:
    """The widths and block counts per group a pack needs: the members' maxima.

    >>> from tabresnet.models import ModelConfig
    >>> pack_layout([ModelConfig(num_blocks=[1, 3], c_hidden=[16, 8]),
    ...              ModelConfig(num_blocks=[2, 1], c_hidden=[8, 32])])
    ([16, 32], [2, 3])
    """
    groups = {len(c.num_blocks) for c in configs}
    if len(groups) != 1:
        raise ValueError(f"the members of a pack need the same number of groups, however: "
                         f"{sorted(groups)}")
    widths = [max(c.c_hidden[g] for c in configs) for g in range(groups.pop())]
    blocks = [max(c.num_blocks[g] for c in configs) for g in range(len(widths))]
    return widths, blocks


def _check_shared(configs: Sequence) -> None:
    first = configs[0]
    for c in configs[1:]:
        for name in SHARED_OPTIONS:
            if getattr(c, name) != getattr(first, name):
                raise ValueError(
                    f"the members of a pack need the same {name}, however: "
                    f"{getattr(first, name)!r} and {getattr(c, name)!r}"
                )
    if first.arch != "resnet":
        raise ValueError(f"a pack needs arch='resnet', however: arch={first.arch!r}")
    if first.shortcut == "zero_pad" and len(first.num_blocks) > 1:
        raise ValueError("a pack of several groups needs shortcut='projection'")


_BLOCK_KEY = re.compile(r"^backbone\.blocks\.(\d+)\.")


def block_key(key: str, old: Sequence[int], new: Sequence[int]) -> str | None:
    """``key`` of a network with ``old`` blocks per group, in one with ``new`` blocks.

    Block indices shift by group; keys outside the blocks stay as they are.
    None where the block has no place in ``new`` (its group is shorter there).

    >>> block_key("backbone.blocks.3.fc.weight", old=[2, 2], new=[3, 3])
    'backbone.blocks.4.fc.weight'
    >>> block_key("head.weight", [2, 2], [3, 3]), block_key("backbone.blocks.2.x", [3], [2])
    ('head.weight', None)
    """
    m = _BLOCK_KEY.match(key)
    if m is None:
        return key
    j = int(m.group(1))
    for g, b in enumerate(old):
        if j < b:
            return f"backbone.blocks.{sum(new[:g]) + j}.{key[m.end():]}" if j < new[g] else None
        j -= b
    return None


class PopulationNetwork(nn.Module):
    """k members of different configurations in one module: ``(N, k, ...) -> (N, k, out)``.

    Parameters
    ----------
    configs : sequence of ModelConfig
        The members' configurations (``ensemble_size`` is taken as 1); they
        share :data:`SHARED_OPTIONS` and the number of groups. A slot can be
        left empty later (:meth:`clear_member`).
    n_num, cardinalities, output_dim, n_cont
        As for :meth:`ModelConfig.build_tabular`.
    widths, blocks : list of int, optional
        The pack's size per group; default :func:`pack_layout` of ``configs``.

    Shape
    -----
    - Input: ``x_num`` ``(N, n_num)`` or ``(N, k, n_num)`` (each member its own
      rows), ``x_cat`` likewise
    - Output: ``(N, k, output_dim)``
    """

    def __init__(
        self,
        configs: Sequence,
        n_num: int,
        cardinalities: Sequence[int],
        output_dim: int = 1,
        n_cont: int = 0,
        widths: Sequence[int] | None = None,
        blocks: Sequence[int] | None = None,
    ):
        super().__init__()
        configs = [c for c in configs]
        _check_shared(configs)
        if widths is None or blocks is None:
            widths, blocks = pack_layout(configs)
        self.k = len(configs)
        self.widths, self.blocks = [int(w) for w in widths], [int(b) for b in blocks]
        self.dims = (int(n_num), [int(c) for c in cardinalities], int(output_dim), int(n_cont))
        template_cfg = _replace(configs[0], num_blocks=self.blocks, c_hidden=self.widths,
                                dropout=0.5, ensemble_size=1)
        # The template is built on the meta device: only its module tree is used,
        # every tensor is replaced by a zero packed one and filled member by member.
        with torch.device("meta"):
            template = template_cfg.build_tabular(*self.dims)
        _convert(template, self.k)
        template.backbone.blocks = _GatedBlocks(
            list(template.backbone.blocks), self.k, self._gated())
        template.to_empty(device="cpu")
        with torch.no_grad():
            for t in [*template.parameters(), *template.buffers()]:
                t.zero_()
            for m in template.modules():
                if isinstance(m, MemberBatchNorm):
                    m.running_var.fill_(1.0)
                elif isinstance(m, MemberLayerNorm):
                    m.mask.fill_(1.0)
                    m.count.fill_(float(m.mask.shape[1]))
                    m.full = True
                elif isinstance(m, _GatedBlocks):
                    m.gates.fill_(True)
        self.net: TabularNetwork = template

    def _gated(self) -> list[bool]:
        """Blocks that may be skipped: all but the first of each later group (it changes width)."""
        out = []
        for g, b in enumerate(self.blocks):
            out += [not (g > 0 and j == 0) for j in range(b)]
        return out

    # -- forward ----------------------------------------------------------------------
    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        if x_num.dim() == 2:
            x_num = x_num.unsqueeze(1).expand(x_num.shape[0], self.k, x_num.shape[1])
            x_cat = x_cat.unsqueeze(1).expand(x_cat.shape[0], self.k, x_cat.shape[1])
        return self.net(x_num, x_cat)

    # -- members in and out --------------------------------------------------------------
    def _packed_key(self, key: str, num_blocks: Sequence[int]) -> str:
        """The pack's state key of a member network's ``key`` (block indices shift by group)."""
        packed = block_key(key, num_blocks, self.blocks)
        if packed is None:
            raise KeyError(key)
        return packed

    def _pairs(self, network: nn.Module, config):
        """``(packed tensor, member tensor, transposed)`` for each tensor of a member network."""
        own = dict(self.net.named_parameters()) | dict(self.net.named_buffers())
        linears = {name for name, m in network.named_modules() if isinstance(m, nn.Linear)}
        theirs = dict(network.named_parameters()) | dict(network.named_buffers())
        for key, t in theirs.items():
            if key.endswith("num_batches_tracked"):
                continue
            packed = own[self._packed_key(key, config.num_blocks)]
            module, _, leaf = key.rpartition(".")
            yield packed, t, module in linears and leaf == "weight"

    def clear_member(self, i: int) -> None:
        """Zero slot ``i`` (every member tensor; shared PLE bins stay)."""
        with torch.no_grad():
            for m in self.net.modules():
                for name, t in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]:
                    if _is_member_tensor(m, name, t, self.k):
                        t[i].zero_()
                        if isinstance(m, MemberBatchNorm) and name == "running_var":
                            t[i].fill_(1.0)

    def load_member(self, i: int, network: nn.Module, config) -> None:
        """Put ``network`` (built by ``config.build_tabular``) into slot ``i``."""
        self.clear_member(i)
        with torch.no_grad():
            for packed, t, transposed in self._pairs(network, config):
                src = t.T if transposed else t
                if packed.dim() == src.dim():  # shared (the PLE bins): the same data
                    packed.copy_(src)
                else:
                    packed[i][tuple(slice(0, n) for n in src.shape)] = src
        self.configure_member(i, config)

    def configure_member(self, i: int, config) -> None:
        """Set slot ``i``'s widths, active blocks and dropout rate from ``config``."""
        groups = len(self.blocks)
        width_at = {}
        for name, m in self.net.named_modules():
            if isinstance(m, MemberLayerNorm):
                width_at[name] = m
            elif isinstance(m, MemberDropout):
                m.p[i] = float(config.dropout)
            elif isinstance(m, _GatedBlocks):
                j = 0
                for g in range(groups):
                    for jj in range(self.blocks[g]):
                        m.gates[j, i] = jj < config.num_blocks[g]
                        j += 1
        for name, m in width_at.items():
            m.set_width(i, self._width_of(name, config))

    def _width_of(self, name: str, config) -> int:
        """A member's width at the LayerNorm ``name``."""
        match = re.search(r"backbone\.blocks\.(\d+)\.(net|downsample)\.(\d+)", name)
        if match is None:
            raise KeyError(name)
        j, pos = int(match.group(1)), int(match.group(3))
        g = 0
        while j >= self.blocks[g]:
            j -= self.blocks[g]
            g += 1
        c_out = config.c_hidden[g]
        c_in = config.c_hidden[g - 1] if g > 0 and j == 0 else c_out
        # Pre-activation: net.0 and downsample.0 see the input width; net.3 the output's.
        # The original block normalises after each Linear: the output width.
        return c_in if (pos == 0 and self.net.backbone.blocks[0].__class__.__name__
                        .startswith("PreAct")) else c_out

    def member_network(self, i: int, config, state: dict | None = None,
                       into: nn.Module | None = None) -> nn.Module:
        """Slot ``i`` as a plain network of ``config``.

        ``state``: a :meth:`member_state` to read instead of the live slot;
        ``into``: a network of ``config`` to fill instead of building one.
        """
        network = into if into is not None else _replace(
            config, ensemble_size=1).build_tabular(*self.dims)
        names = {id(t): k for k, t in (dict(self.net.named_parameters())
                                       | dict(self.net.named_buffers())).items()}
        with torch.no_grad():
            for packed, t, transposed in self._pairs(network, config):
                member = packed.dim() != t.dim()
                if state is not None:
                    src = state[names[id(packed)]]
                else:
                    src = packed[i] if member else packed
                if member:
                    shape = t.T.shape if transposed else t.shape
                    src = src[tuple(slice(0, n) for n in shape)]
                t.copy_(src.T if transposed else src)
        return network.eval()

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Copies of slot ``i``'s tensors (and the shared ones), by the pack's state keys."""
        out = {}
        for m_name, m in self.net.named_modules():
            for name, t in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]:
                key = f"{m_name}.{name}" if m_name else name
                out[key] = (t[i] if _is_member_tensor(m, name, t, self.k) else t).detach().clone()
        return out

    def member_tensors(self) -> list[tuple[str, torch.Tensor]]:
        """Every tensor with a leading member dimension, parameters and buffers."""
        out = []
        for m_name, m in self.net.named_modules():
            for name, t in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]:
                if _is_member_tensor(m, name, t, self.k):
                    out.append((f"{m_name}.{name}" if m_name else name, t))
        return out

    def extra_repr(self) -> str:
        return f"k={self.k}, widths={self.widths}, blocks={self.blocks}"


def _is_member_tensor(module: nn.Module, name: str, t: torch.Tensor, k: int) -> bool:
    if isinstance(t, nn.Parameter):
        return True
    return isinstance(module, MemberBatchNorm)


def _replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)


def _convert(module: nn.Module, k: int) -> None:
    """Replace every layer of a (meta) template by its k-member form, in place."""
    for name, child in list(module.named_children()):
        new: nn.Module | None = None
        if isinstance(child, nn.Linear):
            with torch.device("meta"):
                new = PackedLinear.__new__(PackedLinear)
                nn.Module.__init__(new)
                new.weight = nn.Parameter(torch.empty(k, child.in_features, child.out_features))
                new.bias = (nn.Parameter(torch.empty(k, child.out_features))
                            if child.bias is not None else None)
        elif isinstance(child, nn.BatchNorm1d):
            with torch.device("meta"):
                new = MemberBatchNorm(k, child.num_features, child.eps, child.momentum or 0.1)
        elif isinstance(child, nn.LayerNorm):
            with torch.device("meta"):
                new = MemberLayerNorm(k, child.normalized_shape[-1], child.eps)
        elif isinstance(child, nn.Dropout):
            with torch.device("meta"):
                new = MemberDropout(k)
        elif isinstance(child, nn.Embedding):
            with torch.device("meta"):
                new = PackedEmbedding(k, child.num_embeddings, child.embedding_dim)
        elif isinstance(child, _PerColumnLinear):
            n, t, d = child.weight.shape
            with torch.device("meta"):
                new = _PackedPerColumnLinear(k, n, t, d)
        else:
            if isinstance(child, PeriodicEmbeddings):
                with torch.device("meta"):
                    child.frequencies = nn.Parameter(
                        torch.empty(k, *child.frequencies.shape))
            _convert(child, k)
            continue
        setattr(module, name, new)
