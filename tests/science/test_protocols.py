"""Stage pools of the batch, online and active protocols, and margin sampling."""

import torch

from wssweep.science.protocols import margin_select, stage_pools


def test_online_pools_grow_by_equal_chunks_and_nest():
    pools = stage_pools("online", 100, fraction=0.5, chunks=10,
                        generator=torch.Generator().manual_seed(0))
    # ten stages of 10, 20, ..., 100 examples
    assert [len(p) for p in pools] == list(range(10, 101, 10))
    # each stage contains the previous one: new data is appended, old data kept
    assert all(torch.equal(pools[j][: len(pools[j - 1])], pools[j - 1]) for j in range(1, 10))
    # the last stage is the whole training set, each example once
    assert sorted(pools[-1].tolist()) == list(range(100))


def test_batch_pools_are_a_fraction_then_everything():
    pools = stage_pools("batch", 100, fraction=0.5, chunks=10,
                        generator=torch.Generator().manual_seed(1))
    # 50 % then 100 %
    assert [len(p) for p in pools] == [50, 100]


def test_active_returns_only_the_first_pool():
    pools = stage_pools("active", 100, fraction=0.5, chunks=4,
                        generator=torch.Generator().manual_seed(0))
    # later pools depend on the model, so only stage 1 is fixed in advance
    assert [len(p) for p in pools] == [25]


def test_margin_select_picks_the_least_confident_examples():
    model = torch.nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    x = torch.tensor([[3.0], [0.1], [-2.0], [0.0], [1.0]])
    # logits (x, -x): the margin grows with |x|, so the two smallest |x| come first
    assert margin_select(model, x, 2).tolist() == [3, 1]
