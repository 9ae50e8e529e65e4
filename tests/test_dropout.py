"""textsift's CPU dropout (backends/torch/dropout.py): torch's dropout, with masks drawn 64 bits per four elements."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from textsift.backends.torch import dropout as fast


@pytest.fixture
def slow_native(monkeypatch):
    """Take the fast path whatever this CPU's vendor (on an Intel CPU torch's own masks are the fast ones)."""
    monkeypatch.setattr(fast, "native_mask_is_slow", lambda: True)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_masks_drop_each_element_with_probability_p_and_scale_the_rest(slow_native, p):
    torch.manual_seed(0)
    mask = fast.keep_mask(torch.Size([1000, 1000]), p, torch.float32)
    values = mask.unique().tolist()
    assert values == [0.0, pytest.approx(1 / (1 - p))]
    dropped = float((mask == 0).float().mean())
    assert dropped == pytest.approx(p, abs=0.002)  # 1e6 draws: the standard error is under 0.0005
    # rows and columns alike: no position of the 64-bit draws (four 16-bit lanes) is favoured
    lanes = (mask == 0).reshape(-1, 4).float().mean(0)
    assert torch.allclose(lanes, torch.full((4,), p), atol=0.004)


def test_the_mask_follows_torch_seed_and_the_gradient_is_the_mask(slow_native):
    x = torch.randn(64, 48, requires_grad=True)
    torch.manual_seed(3)
    a = fast.dropout(x, 0.25)
    torch.manual_seed(3)
    b = fast.dropout(x, 0.25)
    c = fast.dropout(x, 0.25)
    assert torch.equal(a, b) and not torch.equal(b, c)
    a.sum().backward()
    expected = torch.where(a != 0, 1 / 0.75, 0.0)
    assert torch.allclose(x.grad, expected)
    assert torch.allclose(a, x.detach() * expected)


def test_bf16_stays_bf16_and_eval_is_the_identity(slow_native):
    x = torch.randn(8, 16, dtype=torch.bfloat16)
    assert fast.dropout(x, 0.1).dtype == torch.bfloat16
    assert fast.dropout(x, 0.1, training=False) is x
    module = fast.Dropout(0.3).eval()
    assert module(x) is x


def test_every_dropout_of_a_model_is_swapped_and_eval_output_is_unchanged(slow_native):
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Sequential(nn.ReLU(), nn.Dropout(0.4)), nn.Linear(8, 2))
    x = torch.randn(5, 4)
    before = model.eval()(x)
    assert fast.use_fast_dropout(model) == 2
    assert [type(m) for m in model.modules()].count(fast.Dropout) == 2
    assert model[2][1].p == 0.4 and not model[1].training
    assert torch.equal(model(x), before)


def test_a_bert_encoder_trains_on_the_same_function_with_the_fast_masks(slow_native, tiny_bert, monkeypatch):
    """With every mask all ones (1 / (1 - p) everywhere), the swapped encoder in training mode computes what the
    untouched one computes with dropout off: the attention is SDPA's math path, the masks only multiply."""
    from transformers import AutoModel

    torch.manual_seed(0)
    ids = torch.randint(5, 100, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    plain = AutoModel.from_pretrained(str(tiny_bert)).eval()
    expected = plain(input_ids=ids, attention_mask=mask).last_hidden_state

    swapped = AutoModel.from_pretrained(str(tiny_bert)).train()
    assert fast.use_fast_dropout(swapped) >= 5 and fast.use_fast_attention_dropout(swapped) == 1
    monkeypatch.setattr(fast, "keep_mask", lambda shape, p, dtype: torch.ones(shape, dtype=dtype))
    for m in swapped.modules():
        if isinstance(m, nn.Dropout):
            m.p = 1e-9  # the masks above scale by 1 / (1 - p): 1 to float precision
    swapped.config.attention_probs_dropout_prob = 1e-9
    for layer in swapped.encoder.layer:
        layer.attention.self.dropout.p = 1e-9
    got = swapped(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert torch.allclose(got[real], expected[real], atol=1e-5)


def test_attention_dropout_drops_attention_probabilities(slow_native, tiny_bert):
    """In training the swapped attention draws its masks from torch's seed: two seeds differ, one seed repeats;
    in eval it is transformers' sdpa."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(tiny_bert))
    model.config.hidden_dropout_prob = 0.0
    for m in model.modules():
        if isinstance(m, nn.Dropout) and m.p == model.config.hidden_dropout_prob:
            m.p = 0.0
    fast.use_fast_attention_dropout(model)
    ids = torch.randint(5, 100, (2, 7))
    model.train()
    torch.manual_seed(1)
    a = model(input_ids=ids).last_hidden_state
    torch.manual_seed(1)
    b = model(input_ids=ids).last_hidden_state
    torch.manual_seed(2)
    c = model(input_ids=ids).last_hidden_state
    assert torch.equal(a, b) and not torch.allclose(a, c)
    model.eval()
    reference = AutoModel.from_pretrained(str(tiny_bert)).eval()
    assert torch.allclose(model(input_ids=ids).last_hidden_state, reference(input_ids=ids).last_hidden_state, atol=1e-6)


def test_the_trainer_swaps_dropout_on_a_cpu_where_masks_are_slow(slow_native, tiny_jsonl, tmp_path):
    """A CNN trained by textsift on such a CPU trains with textsift's dropout and learns; the saved directory loads
    into a network with torch's (Dropout holds no weights, so nothing of the swap is written)."""
    import textsift
    from textsift.training.callbacks import Callback

    from conftest import TINY, tiny_config

    seen = []

    class Look(Callback):
        def on_fit_start(self, trainer):
            seen.extend(type(m) for m in trainer.model.modules() if isinstance(m, nn.Dropout))

    raw = tiny_config(tiny_jsonl, "cnn", model__embed_dropout=0.3, trainer__epochs=12)
    result = textsift.train(raw, tmp_path / "run", callbacks=[Look()])
    assert seen and set(seen) == {fast.Dropout}
    assert result.metrics["val/accuracy"] >= 0.9
    texts = [t for t, _ in TINY]
    loaded, trained = textsift.load(result.model_dir).predict(texts), result.predictor.predict(texts)
    assert loaded.labels == trained.labels and np.allclose(loaded.probabilities, trained.probabilities, atol=1e-6)
