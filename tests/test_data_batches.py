"""TensorBatches: per-epoch permutations, views without shuffle, DDP shards."""

from __future__ import annotations

import pytest
import torch

from tabresnet.data import TensorBatches


def _rows(batches) -> list[list[int]]:
    return [b[0].tolist() for b in batches]


@pytest.fixture
def tensors():
    n = 10
    return torch.arange(n), torch.arange(n * 3, dtype=torch.float32).reshape(n, 3)


def test_tuples_stay_aligned(tensors):
    for idx, x in TensorBatches(tensors, batch_size=4, seed=0):
        assert torch.equal(x[:, 0], idx.float() * 3)


@pytest.mark.parametrize(("drop_last", "sizes"), [(False, [4, 4, 2]), (True, [4, 4])])
def test_len_and_sizes(tensors, drop_last, sizes):
    b = TensorBatches(tensors, batch_size=4, drop_last=drop_last)
    assert len(b) == len(sizes)
    assert [len(r) for r in _rows(b)] == sizes


def test_each_epoch_is_a_permutation_and_epochs_differ(tensors):
    b = TensorBatches(tensors, batch_size=3, seed=0)
    epochs = [sum(_rows(b), []) for _ in range(4)]
    for e in epochs:
        assert sorted(e) == list(range(10))
    assert len({tuple(e) for e in epochs}) == 4


def test_runs_repeat_and_seeds_differ(tensors):
    first = [_rows(b) for b in [TensorBatches(tensors, 3, seed=5)] for _ in range(3)]
    again = [_rows(b) for b in [TensorBatches(tensors, 3, seed=5)] for _ in range(3)]
    other = [_rows(b) for b in [TensorBatches(tensors, 3, seed=6)] for _ in range(3)]
    assert first == again and first != other


def test_set_epoch_reproduces_an_epoch(tensors):
    b = TensorBatches(tensors, batch_size=3, seed=0)
    epochs = [_rows(b) for _ in range(3)]
    b.set_epoch(1)
    assert _rows(b) == epochs[1]
    assert b.epoch == 2


def test_epoch_is_claimed_at_iter(tensors):
    b = TensorBatches(tensors, batch_size=3, seed=0)
    it = iter(b)
    assert b.epoch == 1
    assert next(it)[0].tolist() == _rows(TensorBatches(tensors, 3, seed=0))[0]


def test_no_shuffle_gives_contiguous_views(tensors):
    b = TensorBatches(tensors, batch_size=4, shuffle=False)
    assert _rows(b) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    idx, x = next(iter(b))
    assert x.data_ptr() == tensors[1].data_ptr()  # a view, not a copy


def test_shuffled_batches_use_index_select_not_getitem(tensors):
    class NoGetItem(torch.Tensor):
        def __getitem__(self, key):  # pragma: no cover - must not be called
            raise AssertionError("per-row __getitem__ used")

    x = tensors[1].as_subclass(NoGetItem)
    assert sum(len(b[0]) for b in TensorBatches((x,), batch_size=3)) == 10


@pytest.mark.parametrize("shuffle", [True, False])
def test_ddp_shards_are_disjoint_and_equal(shuffle):
    n, world = 11, 3
    x = torch.arange(n)
    shards = [
        sum(_rows(TensorBatches(x, 2, shuffle=shuffle, seed=7, rank=r, world_size=world)), [])
        for r in range(world)
    ]
    assert [len(s) for s in shards] == [n // world] * world
    flat = sum(shards, [])
    assert len(set(flat)) == len(flat)
    lens = {len(TensorBatches(x, 2, rank=r, world_size=world)) for r in range(world)}
    assert lens == {2}  # every rank takes the same number of steps


def test_ddp_ranks_follow_the_same_epoch():
    x = torch.arange(12)
    ranks = [TensorBatches(x, 3, seed=1, rank=r, world_size=2) for r in range(2)]
    for _ in range(3):
        union = sum(_rows(ranks[0]), []) + sum(_rows(ranks[1]), [])
        assert sorted(union) == list(range(12))


def test_single_tensor_is_wrapped():
    (batch,) = next(iter(TensorBatches(torch.ones(5, 2), batch_size=5)))
    assert batch.shape == (5, 2)


def test_empty_tensors():
    b = TensorBatches(torch.zeros(0, 3), batch_size=4)
    assert len(b) == 0 and list(b) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tensors": (torch.ones(3), torch.ones(4))}, "share their first dimension"),
        ({"tensors": ()}, "non-empty sequence"),
        ({"tensors": (torch.tensor(1.0),)}, "share their first dimension"),
        ({"batch_size": 0}, "batch_size must be positive, however: batch_size=0"),
        ({"rank": 2, "world_size": 2}, "need 0 <= rank < world_size"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = {"tensors": (torch.ones(3),), "batch_size": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        TensorBatches(**args)


def test_repr():
    assert "batches=2" in repr(TensorBatches(torch.ones(4), 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tensors_on_gpu_stay_on_gpu():
    x = torch.arange(10, device="cuda")
    batches = list(TensorBatches((x, x.float()), batch_size=4, seed=0))
    assert all(b[0].is_cuda and b[1].is_cuda for b in batches)
    assert sorted(torch.cat([b[0] for b in batches]).tolist()) == list(range(10))
