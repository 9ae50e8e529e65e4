"""Optimizers textsift adds to torch.optim."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch.optim import Optimizer

#: optimizers that accept sparse gradients (EmbeddingBag(sparse=True))
SPARSE_CAPABLE = ("SparseAdamW", "SGD", "Adagrad", "SparseAdam")


def _coalesced(grad: torch.Tensor) -> torch.Tensor:
    """The sparse gradient with unique, sorted rows. The bag model hands over rows that are already so (they come
    from torch.unique), but autograd's accumulation drops the tensor's coalesced flag; checking that the rows are
    strictly increasing is one pass, where coalesce() sorts them again (a ninth of a bag step on IMDB)."""
    if grad.is_coalesced():
        return grad
    rows = grad._indices()[0]
    if rows.numel() < 2 or bool((rows[1:] > rows[:-1]).all()):
        return torch.sparse_coo_tensor(grad._indices(), grad._values(), grad.shape, is_coalesced=True, check_invariants=False)
    return grad.coalesce()


class SparseAdamW(Optimizer):
    """AdamW for models that mix sparse and dense gradients.

    Dense gradients get the AdamW update. Sparse gradients get the lazy Adam update of
    ``torch.optim.SparseAdam``: moments and weights change only in the rows the batch used, so a
    step costs what the batch touches, not the size of the embedding table. No weight decay is applied
    to sparse rows.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        sparse_lr: float | None = None,
        sparse_eps: float | None = None,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if sparse_lr is not None and sparse_lr <= 0:
            raise ValueError(f"Invalid sparse learning rate: {sparse_lr}")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "sparse_lr": sparse_lr, "sparse_eps": sparse_eps}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse and group["sparse_lr"] is not None:
                    grad = _coalesced(p.grad)
                    factor = lr / group.get("initial_lr", lr)  # the schedule's current factor
                    p.index_add_(0, grad._indices()[0], grad._values(), alpha=-group["sparse_lr"] * factor)
                    continue
                state = self.state[p]
                grad = p.grad
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = float(state["step"])
                step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
                if grad.is_sparse:
                    grad = _coalesced(grad)
                    rows, values = grad._indices()[0], grad._values()  # rows are unique once coalesced
                    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                    m = exp_avg.index_select(0, rows).mul_(beta1).add_(values, alpha=1 - beta1)
                    v = exp_avg_sq.index_select(0, rows).mul_(beta2).addcmul_(values, values, value=1 - beta2)
                    exp_avg.index_copy_(0, rows, m)
                    exp_avg_sq.index_copy_(0, rows, v)
                    sparse_eps = eps if group["sparse_eps"] is None else group["sparse_eps"]
                    update = p.index_select(0, rows).addcdiv_(m, v.sqrt_().add_(sparse_eps), value=-step_size)
                    p.index_copy_(0, rows, update)
                else:
                    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                    if wd:
                        p.mul_(1 - lr * wd)
                    exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    p.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(eps), value=-step_size)
        return loss
