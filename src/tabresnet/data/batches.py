"""Mini-batches from tensors that are already in memory, without a DataLoader.

The whole table fits in memory (on the GPU, even), so a batch is one
``index_select`` per tensor, not ``batch_size`` calls of ``__getitem__`` and a
collate::

    batches = TensorBatches((x_num, x_cat, y), batch_size=256, seed=cfg.seed)
    for epoch in range(max_epochs):
        for x_num_b, x_cat_b, y_b in batches:   # a fresh permutation each epoch
            ...

>>> import torch
>>> x, y = torch.arange(10.0).reshape(5, 2), torch.arange(5)
>>> batches = TensorBatches((x, y), batch_size=2, shuffle=False)
>>> len(batches), [b[1].tolist() for b in batches]
(3, [[0, 1], [2, 3], [4]])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

__all__ = ["TensorBatches"]


class TensorBatches:
    """Iterable of tuples of tensor slices; one new permutation per epoch.

    Parameters
    ----------
    tensors : sequence of torch.Tensor
        Equal first dimension ``n`` (a single tensor is wrapped in a tuple).
    batch_size : int
        Rows per batch.
    shuffle : bool
        Permute the rows each epoch; without it batches are contiguous slices
        (views, no copy).
    seed : int
        With ``shuffle``, epoch ``e``'s permutation depends on ``(seed, e)``
        only: epochs differ, runs repeat.
    drop_last : bool
        Leave out a final short batch.
    rank, world_size : int
        Distributed data parallel: each of the ``world_size`` processes sees a
        disjoint shard of ``n // world_size`` rows of every epoch. All ranks
        must use the same ``seed`` and epoch. Up to ``world_size - 1`` rows
        are left out per epoch (different ones each epoch when shuffling).
    members : int
        With ``shuffle`` and ``members = k > 1``, every batch holds ``k`` rows
        per position, one from each of ``k`` independent permutations: member
        ``j`` of an ensemble trained on these batches sees its own order of
        the training rows (TabM's training, Gorishniy et al. 2025).

    Shape
    -----
    - Input: tensors ``(n, *)``
    - Output: tuples of ``(b, *)`` with ``b <= batch_size``; ``(b, k, *)``
      with ``members = k > 1``

    Examples
    --------
    >>> x = torch.arange(8)
    >>> b = TensorBatches(x, batch_size=3, seed=1)
    >>> e0, e1 = [t.tolist() for (t,) in b], [t.tolist() for (t,) in b]
    >>> e0 != e1, sorted(sum(e0, [])) == list(range(8))
    (True, True)
    >>> b.set_epoch(0)
    >>> [t.tolist() for (t,) in b] == e0
    True
    >>> [t.tolist() for (t,) in TensorBatches(x, 4, shuffle=False, rank=1, world_size=2)]
    [[4, 5, 6, 7]]
    >>> (first, *_), = [next(iter(TensorBatches(x, 4, members=3)))]
    >>> first.shape                      # (batch, members)
    torch.Size([4, 3])
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor] | torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        members: int = 1,
    ):
        if isinstance(tensors, torch.Tensor):
            tensors = (tensors,)
        tensors = tuple(tensors)
        if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
            raise ValueError("tensors must be a non-empty sequence of torch tensors")
        sizes = [t.shape[0] if t.dim() else None for t in tensors]
        if None in sizes or len(set(sizes)) != 1:
            raise ValueError(f"tensors must share their first dimension, however: {sizes=}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be positive, however: {batch_size=}")
        if int(world_size) < 1 or not 0 <= int(rank) < int(world_size):
            raise ValueError(f"need 0 <= rank < world_size, however: {rank=}, {world_size=}")
        self.tensors = tensors
        self.n = int(sizes[0])
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.rank = int(rank)
        self.world_size = int(world_size)
        if int(members) < 1:
            raise ValueError(f"members must be positive, however: {members=}")
        self.members = int(members)
        self.epoch = 0

    @property
    def rows_per_rank(self) -> int:
        """Rows each rank sees per epoch (``n`` for a single process)."""
        return self.n // self.world_size

    def __len__(self) -> int:
        m = self.rows_per_rank
        return m // self.batch_size if self.drop_last else -(-m // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use epoch ``epoch``'s permutation (as DDP samplers do)."""
        self.epoch = int(epoch)

    def _permutation(self, epoch: int, member: int = 0) -> torch.Tensor:
        # Seeded from (seed, epoch) rather than one generator advanced epoch after
        # epoch: epochs still differ and runs still repeat, and epoch e can be made
        # directly, which set_epoch and DDP ranks (all on the same epoch) need.
        key = [self.seed, epoch] + ([member] if member else [])
        state = np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)
        generator = torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))
        return torch.randperm(self.n, generator=generator)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        # Claim the epoch now, not at the first next(): iter() marks the epoch.
        epoch = self.epoch
        self.epoch += 1
        return self._batches(epoch)

    def _batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
        m, bs = self.rows_per_rank, self.batch_size
        stop = m - m % bs if self.drop_last else m
        if not self.shuffle:
            offset = self.rank * m
            for start in range(0, stop, bs):
                a, b = offset + start, offset + min(start + bs, m)
                yield tuple(t[a:b] for t in self.tensors)
            return
        if self.members > 1:  # (n, k): member j's own permutation in column j
            perm = torch.stack([self._permutation(epoch, j) for j in range(self.members)], 1)
        else:
            perm = self._permutation(epoch)
        shard = perm[self.rank : m * self.world_size : self.world_size]
        on_device = {}
        for t in self.tensors:
            if t.device not in on_device:
                on_device[t.device] = shard.to(t.device)
        for start in range(0, stop, bs):
            yield tuple(_take(t, on_device[t.device][start : start + bs]) for t in self.tensors)

    def __repr__(self) -> str:
        return (
            f"TensorBatches(n={self.n}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"batches={len(self)}, rank={self.rank}/{self.world_size})"
        )


def _take(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` (any shape) of ``t``: ``index.shape + t.shape[1:]``, one gather."""
    return t.index_select(0, index.reshape(-1)).reshape(*index.shape, *t.shape[1:])
