"""Short-horizon meta-optimization of the learning rate."""

import torch

from wssweep.science.meta import log_grid, short_horizon_lr


def problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 10, generator=g)
    y = (x @ torch.randn(10, 3, generator=g)).argmax(1)
    torch.manual_seed(seed)
    return x, y, torch.nn.Linear(10, 3)


def sgd(params, lr):
    return torch.optim.SGD(params, lr=lr)


def test_log_grid_endpoints_and_ratio():
    grid = log_grid(1e-4, 1.0, 5)
    # endpoints are kept and consecutive rates differ by the same factor (10 here)
    assert grid[0] == 1e-4 and abs(grid[-1] - 1.0) < 1e-12
    assert all(abs(b / a - 10) < 1e-9 for a, b in zip(grid, grid[1:], strict=False))


def test_picks_the_candidate_with_the_lowest_loss_and_leaves_the_model_alone():
    x, y, model = problem()
    before = [p.clone() for p in model.parameters()]
    pick = short_horizon_lr(model, sgd, x, y, horizon=20, candidates=[1e-5, 1e-2, 0.5],
                            batch_size=64, seed=0, score_batches=5)
    # the winner has the lowest meta-objective of all candidates
    assert pick.scores[pick.lr] == min(pick.scores.values())
    # a vanishing rate learns nothing in 20 steps, so it does not win
    assert pick.lr != 1e-5
    # compute spent is horizon x candidates optimizer steps
    assert pick.steps == 60
    # candidates train copies: the warm-started model is unchanged
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_diverging_candidate_scores_inf_and_choice_is_deterministic():
    x, y, _ = problem(1)
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    a = short_horizon_lr(model, sgd, x, y, horizon=10, candidates=[1e-2, 1e30], batch_size=64,
                         seed=3, score_batches=5)
    b = short_horizon_lr(model, sgd, x, y, horizon=10, candidates=[1e-2, 1e30], batch_size=64,
                         seed=3, score_batches=5)
    # an exploding rate is scored as infinitely bad instead of raising
    assert a.scores[1e30] == float("inf")
    # the same seed gives the same batches and the same scores
    assert a.scores == b.scores


def test_candidates_each_start_from_the_kept_optimizer_state_and_leave_it_alone():
    x, y, model = problem(2)

    def momentum(params, lr):
        return torch.optim.SGD(params, lr=lr, momentum=0.9)

    opt = momentum(model.parameters(), 0.1)
    torch.nn.functional.cross_entropy(model(x[:64]), y[:64]).backward()
    opt.step()
    state = opt.state_dict()  # the live buffers, as the warm arm hands them over
    before = [s["momentum_buffer"].clone() for s in state["state"].values()]
    kw = {"horizon": 10, "batch_size": 64, "seed": 0, "score_batches": 3,
          "optimizer_state": state}
    both = short_horizon_lr(model, momentum, x, y, candidates=[0.05, 0.2], **kw)
    alone = short_horizon_lr(model, momentum, x, y, candidates=[0.2], **kw)
    # the second candidate starts from the state, not from the buffers the first one left
    assert both.scores[0.2] == alone.scores[0.2]
    # and the warm arm's own momentum is as it was
    assert all(torch.equal(b, s["momentum_buffer"])
               for b, s in zip(before, state["state"].values(), strict=True))
