"""The training loop's speed defaults (issue 17): they change how fast, never what is learned."""

from __future__ import annotations

import pytest
import torch

from textsift.config.schema import OptimizerConfig, TrainerConfig
from textsift.backends.torch.trainer import Trainer


def _optimizer(model: torch.nn.Module, **optimizer) -> torch.optim.Optimizer:
    config = TrainerConfig(optimizer=OptimizerConfig(**optimizer), early_stopping=None)
    return Trainer(config, seed=0, label_names=["a", "b"])._build_optimizer(model)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))


@pytest.mark.parametrize("name", ["torch.optim:AdamW", "torch.optim:Adam"])
def test_adam_takes_the_fused_kernel_unless_the_config_chose(name):
    assert _optimizer(_model(), type=name, lr=0.01).defaults["fused"] is True
    assert not _optimizer(_model(), type=name, lr=0.01, fused=False).defaults["fused"]
    chosen = _optimizer(_model(), type=name, lr=0.01, foreach=True).defaults
    assert chosen["foreach"] is True and not chosen["fused"]
    assert "fused" not in _optimizer(_model(), type="textsift.training.optim:SparseAdamW", lr=0.01).defaults
    assert not _optimizer(_model(), type="torch.optim:SGD", lr=0.01).defaults["fused"]


def test_the_fused_update_is_the_per_tensor_update():
    """Five AdamW steps (weight decay on matrices only) give the same weights with and without the fused kernel."""
    models = [_model(), _model()]
    optimizers = [_optimizer(models[0], type="torch.optim:AdamW", lr=0.01, weight_decay=0.1),
                  _optimizer(models[1], type="torch.optim:AdamW", lr=0.01, weight_decay=0.1, foreach=False)]
    assert optimizers[0].defaults["fused"] and not optimizers[1].defaults["foreach"]
    x, y = torch.randn(16, 5, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 2
    for _ in range(5):
        for model, opt in zip(models, optimizers):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for fused, plain in zip(models[0].state_dict().values(), models[1].state_dict().values()):
        torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)
    assert not torch.equal(models[0][0].weight, _model()[0].weight)  # it did train


def test_a_transformers_layer_rates_reach_the_optimizer(tiny_bert):
    """model.layer_lr_decay and head_lr were documented, computed by the model, and not passed to the optimizer."""
    from textsift.backends.torch.networks.transformer import TransformerSpec

    spec = TransformerSpec(pretrained=str(tiny_bert), layer_lr_decay=0.5, head_lr=1e-2)
    model = spec.build(vocab_size=0, num_labels=2)
    opt = _optimizer(model, type="torch.optim:AdamW", lr=1e-3, weight_decay=0.01)
    rate = {id(p): (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert rate[id(named["head.net.1.weight"])] == (pytest.approx(1e-2), 0.01)
    assert rate[id(named["encoder.encoder.layer.1.attention.self.query.weight"])] == (pytest.approx(5e-4), 0.01)
    assert rate[id(named["encoder.embeddings.word_embeddings.weight"])] == (pytest.approx(1.25e-4), 0.01)
    assert rate[id(named["encoder.embeddings.LayerNorm.weight"])][1] == 0.0
    assert len(rate) == len(named) and opt.defaults["fused"] is True
