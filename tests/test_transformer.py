"""Fine-tuning controls of the transformer model, on a tiny random BERT (see conftest.tiny_bert)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import textsift
from textsift.batching import EncodedDataset
from textsift.config import resolve
from textsift.data.example import Example
from textsift.backends.torch.trainer import Trainer

from conftest import TINY, assert_only_safe_files, tiny_config, write_jsonl


def _config(tiny_bert, data, **model):
    raw = tiny_config(data, "transformer", trainer__epochs=2)
    raw["model"] = {"type": "transformer", "pretrained": str(tiny_bert), **model}
    return resolve(raw)


def _two_texts(tok):
    """A short and a long text as one padded batch, and the ids of each."""
    ids = tok.encode([Example(text="a happy day"), Example(text="an awful depressing sad movie today")])
    lengths = torch.tensor(ids.lengths)
    padded = torch.zeros(2, int(lengths.max()), dtype=torch.long)
    for i in range(2):
        padded[i, : lengths[i]] = torch.tensor(ids[i])
    return {"ids": padded, "lengths": lengths}, ids


def _built(config, num_labels=2):
    tok = config.tokenizer.build().fit([])
    return tok, config.model.build(vocab_size=tok.vocab_size, num_labels=num_labels, tokenizer=tok)


@pytest.mark.parametrize("pooling", ["cls", "pooler", "mean", "max", "weighted"])
def test_every_pooling_mode_trains_and_ignores_padding(pooling, tiny_bert, tiny_jsonl):
    config = _config(tiny_bert, tiny_jsonl, pooling=pooling)
    tok, model = _built(config)
    model.eval()
    inputs, ids = _two_texts(tok)
    batch = model(inputs)
    alone = model({"ids": torch.from_numpy(ids[0][None, :]), "lengths": inputs["lengths"][:1]})
    torch.testing.assert_close(batch[:1], alone, atol=1e-5, rtol=1e-4)
    if pooling == "weighted":
        assert model.layer_weights.shape == (3,)  # embeddings + 2 layers
    result = textsift.train(config)
    assert result.state.epoch == 2


def test_tokenizer_name_defaults_to_the_encoder(tiny_bert, tiny_jsonl):
    config = _config(tiny_bert, tiny_jsonl)
    assert config.tokenizer.type == "pretrained" and config.tokenizer.name == str(tiny_bert)
    assert config.trainer.optimizer.type == "torch.optim:AdamW" and config.trainer.scheduler.warmup_ratio == 0.1


def test_freezing_then_unfreezing(tiny_bert, tiny_jsonl):
    config = _config(tiny_bert, tiny_jsonl, freeze_embeddings=True, freeze_layers=1, unfreeze_at_epoch=2)
    tok, model = _built(config)
    emb = model.encoder.embeddings.word_embeddings.weight
    low = model.encoder.encoder.layer[0].attention.self.query.weight
    high = model.encoder.encoder.layer[1].attention.self.query.weight
    start = {n: p.detach().clone() for n, p in (("emb", emb), ("low", low), ("high", high))}
    examples = [Example(text=t, label=l) for t, l in TINY]
    data = EncodedDataset(tok.encode(examples), np.array([0 if l == "neg" else 1 for _, l in TINY]))
    trainer = Trainer(config.trainer.model_copy(update={"epochs": 1, "main_metric": "train/loss", "main_metric_mode": "min"}), seed=0, model_spec=config.model, label_names=["neg", "pos"])
    trainer.fit(model, data, None, loss_fn=torch.nn.CrossEntropyLoss())
    assert torch.equal(emb, start["emb"]) and torch.equal(low, start["low"])  # frozen in epoch 1
    assert not torch.equal(high, start["high"])  # the layer above trained
    model.on_train_epoch_start(1)  # epoch 2: everything unfreezes
    assert emb.requires_grad and low.requires_grad
    trainer2 = Trainer(config.trainer.model_copy(update={"epochs": 2, "main_metric": "train/loss", "main_metric_mode": "min"}), seed=0, model_spec=config.model, label_names=["neg", "pos"])
    trainer2.state.epoch = 1
    trainer2.fit(model, data, None, loss_fn=torch.nn.CrossEntropyLoss())
    assert not torch.equal(emb, start["emb"]) and not torch.equal(low, start["low"])


def test_layer_wise_learning_rates_and_head_rate(tiny_bert, tiny_jsonl):
    config = _config(tiny_bert, tiny_jsonl, layer_lr_decay=0.5, head_lr=1e-2)
    _, model = _built(config)
    groups = model.parameter_groups(lr=1e-3, weight_decay=0.01)
    by_param = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    lr = lambda name: by_param[id(named[name])]["lr"]  # noqa: E731
    assert lr("head.net.1.weight") == pytest.approx(1e-2)
    assert lr("encoder.pooler.dense.weight") == pytest.approx(1e-3)  # above the top layer: full rate
    assert lr("encoder.encoder.layer.1.attention.self.query.weight") == pytest.approx(5e-4)
    assert lr("encoder.encoder.layer.0.attention.self.query.weight") == pytest.approx(2.5e-4)
    assert lr("encoder.embeddings.word_embeddings.weight") == pytest.approx(1.25e-4)
    assert by_param[id(named["encoder.encoder.layer.0.attention.self.query.bias"])]["weight_decay"] == 0.0
    assert by_param[id(named["encoder.embeddings.LayerNorm.weight"])]["weight_decay"] == 0.0
    assert by_param[id(named["encoder.encoder.layer.0.attention.self.query.weight"])]["weight_decay"] == 0.01
    assert sum(len(g["params"]) for g in groups) == len(named)


def _one_update(tiny_bert, data_path, accumulate: int, batch: int = 32) -> dict[str, torch.Tensor]:
    rows = [{"text": f"{t} {i}", "label": l} for i in range(2) for t, l in TINY]  # 32 examples
    data_path = write_jsonl(data_path, rows)
    raw = tiny_config(data_path, "transformer", trainer__epochs=1)
    raw["model"] = {"type": "transformer", "pretrained": str(tiny_bert), "head": {"dropout": 0.0}}
    # SGD: the update is linear in the gradient (Adam's first step is about lr * sign(g), which turns
    # rounding noise on near-zero gradients into differences of 2 * lr)
    raw["trainer"].update({"batch_size": batch, "accumulate_grad_batches": accumulate, "bucket_by_length": False,
                           "scheduler": {"type": "constant"}, "grad_clip": None,
                           "optimizer": {"type": "torch.optim:SGD", "lr": 0.5, "weight_decay": 0.0}})
    config = resolve(raw)
    torch.manual_seed(0)  # the same head initialisation in every run compared
    tok, model = _built(config)
    model.encoder.config.hidden_dropout_prob = 0.0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    examples = [Example(text=r["text"], label=r["label"]) for r in rows]
    data = EncodedDataset(tok.encode(examples), np.array([0 if r["label"] == "neg" else 1 for r in rows]))
    trainer_config = config.trainer.model_copy(update={"main_metric": "train/loss", "main_metric_mode": "min"})
    trainer = Trainer(trainer_config, seed=0, model_spec=config.model, label_names=["neg", "pos"])
    trainer.fit(model, data, None, loss_fn=torch.nn.CrossEntropyLoss())
    assert trainer.state.global_step == 1
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_four_micro_batches_of_8_equal_one_batch_of_32(tiny_bert, tmp_path):
    whole = _one_update(tiny_bert, tmp_path / "a.jsonl", accumulate=1)
    parts = _one_update(tiny_bert, tmp_path / "b.jsonl", accumulate=4)
    for name in whole:
        torch.testing.assert_close(parts[name], whole[name], atol=2e-6, rtol=1e-5)


def test_out_of_memory_halves_the_micro_batch(tiny_bert, tmp_path, caplog, monkeypatch):
    from textsift.backends.torch.networks.transformer import TransformerClassifier

    real_forward = TransformerClassifier.forward

    def forward(self, batch):  # simulate a device that holds at most 8 examples at once
        if batch["ids"].shape[0] > 8:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(self, batch)

    monkeypatch.setattr(TransformerClassifier, "forward", forward)
    with caplog.at_level(logging.WARNING, logger="textsift"):
        state = _one_update(tiny_bert, tmp_path / "c.jsonl", accumulate=1)
    messages = [r.getMessage() for r in caplog.records if "Out of memory" in r.getMessage()]
    assert len(messages) == 2  # 32 -> 16 -> 8
    assert "doubling gradient accumulation to 4; the effective batch stays 32" in messages[-1]
    monkeypatch.setattr(TransformerClassifier, "forward", real_forward)
    reference = _one_update(tiny_bert, tmp_path / "d.jsonl", accumulate=4)
    for name in reference:
        torch.testing.assert_close(state[name], reference[name], atol=2e-6, rtol=1e-5)


def test_text_pairs_use_token_types(tiny_bert, tmp_path):
    rows = [{"a": t, "b": "the cat sat", "label": l} for t, l in TINY]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    raw = tiny_config(data, "transformer", trainer__epochs=2)
    raw["model"] = {"type": "transformer", "pretrained": str(tiny_bert)}
    raw["data"]["reader"] = {"type": "jsonl", "text_column": "a", "text_pair_column": "b"}
    config = resolve(raw)
    tok, model = _built(config)
    assert model.use_token_types
    ids = tok.encode([Example(text="happy day", text_pair="the cat sat")])[0]
    sep = tok.special_ids["sep"]
    assert list(ids).count(sep) == 2
    result = textsift.train(config, tmp_path / "run")
    loaded = textsift.load(tmp_path / "run")
    np.testing.assert_array_equal(
        loaded.predict(["happy day"], pairs=["the cat sat"]).probabilities,
        result.predictor.predict(["happy day"], pairs=["the cat sat"]).probabilities,
    )


def test_model_directory_is_self_contained(tiny_bert, tiny_jsonl, tmp_path, monkeypatch):
    import shutil

    encoder = tmp_path / "encoder"  # a copy of its own: the session's tiny_bert stays for the other tests
    shutil.copytree(tiny_bert, encoder)
    config = _config(encoder, tiny_jsonl)
    result = textsift.train(config, tmp_path / "run")
    model_dir = tmp_path / "run" / "model"
    assert (model_dir / "encoder" / "config.json").is_file() and (model_dir / "tokenizer" / "tokenizer.json").is_file()
    assert_only_safe_files(model_dir)
    moved = tmp_path / "elsewhere"
    shutil.move(model_dir, moved)
    shutil.rmtree(encoder)  # the encoder the model was trained from is gone, and the hub is out of reach
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    loaded = textsift.load(moved)
    np.testing.assert_array_equal(loaded.predict(["happy"]).probabilities, result.predictor.predict(["happy"]).probabilities)


def test_bad_encoder_path_is_a_clear_error(tiny_jsonl, tmp_path):
    from textsift.errors import ConfigError

    raw = tiny_config(tiny_jsonl, "transformer")
    raw["model"] = {"type": "transformer", "pretrained": str(tmp_path / "no_such_encoder")}
    with pytest.raises(ConfigError, match="Cannot load the tokenizer of"):
        textsift.train(resolve(raw))


@pytest.mark.parametrize("native_bf16", [False, True])
def test_precision_bf16_on_cpu_is_autocast_only_where_the_cpu_has_bf16(tiny_bert, tiny_jsonl, caplog, monkeypatch, native_bf16):
    """bf16 on a CPU: autocast where the CPU computes bf16 natively (avx512_bf16/AMX), fp32 where torch would emulate it."""
    import textsift.backends.torch.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "cpu_has_native_bf16", lambda: native_bf16)
    raw = tiny_config(tiny_jsonl, "transformer", trainer__epochs=1, trainer__precision="bf16")
    raw["model"] = {"type": "transformer", "pretrained": str(tiny_bert)}
    seen: set[torch.dtype] = set()  # what the encoder's linear layers put out while training

    def hook(module, args, output):
        if isinstance(module, torch.nn.Linear) and module.training and torch.is_grad_enabled():
            seen.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        with caplog.at_level(logging.INFO, logger="textsift"):
            result = textsift.train(resolve(raw))
    finally:
        handle.remove()
    messages = [r.getMessage() for r in caplog.records]
    if native_bf16:
        assert seen == {torch.bfloat16}
        assert any("bf16 autocast on this CPU" in m for m in messages)
    else:
        assert seen == {torch.float32}
        assert any("no fast half precision; training in fp32" in m for m in messages)
    # the weights stay fp32 either way
    assert {p.dtype for p in result.predictor.model.parameters()} == {torch.float32}


def _mixed_batch(tok, texts, pairs=None):
    examples = [Example(text=t, text_pair=p) for t, p in zip(texts, pairs or [None] * len(texts))]
    ids = tok.encode(examples)
    lengths = torch.tensor(ids.lengths)
    padded = torch.zeros(len(texts), int(lengths.max()), dtype=torch.long)
    for i in range(len(texts)):
        padded[i, : lengths[i]] = torch.tensor(ids[i])
    return {"ids": padded, "lengths": lengths}


MIXED = ["a", "an awful depressing sad movie today and yesterday too", "happy", "the cat sat on a mat", "stocks fell"]


@pytest.mark.parametrize("pooling", ["cls", "pooler", "mean", "max", "weighted"])
def test_prediction_over_real_tokens_only_computes_the_forward_pass(pooling, tiny_bert, tiny_jsonl):
    """``inference`` (the runtime's and evaluation's path) runs the encoder over the real tokens only: the same
    logits as ``forward`` over the padded batch, for every pooling, on rows of very different lengths."""
    from textsift.backends.torch.networks import transformer

    config = _config(tiny_bert, tiny_jsonl, pooling=pooling)
    tok, model = _built(config)
    model.eval()
    if pooling == "weighted":
        with torch.no_grad():
            model.layer_weights.copy_(torch.tensor([0.3, -0.2, 0.5]))
    batch = _mixed_batch(tok, MIXED)
    calls = []
    real = transformer.unpadded_hidden
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(transformer, "unpadded_hidden", lambda *a, **k: calls.append(1) or real(*a, **k))
        with torch.no_grad():
            fast = model.inference(batch)
    assert calls, "the unpadded path did not run"
    with torch.no_grad():
        torch.testing.assert_close(fast, model(batch), atol=1e-5, rtol=1e-4)


def test_prediction_over_real_tokens_with_pairs_and_a_pruned_encoder(tiny_bert, tmp_path):
    from textsift.backends.torch.networks.transformer import slice_layer

    rows = [{"a": t, "b": "the cat sat", "label": l} for t, l in TINY]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    raw = tiny_config(data, "transformer")
    raw["model"] = {"type": "transformer", "pretrained": str(tiny_bert), "pooling": "mean"}
    raw["data"]["reader"] = {"type": "jsonl", "text_column": "a", "text_pair_column": "b"}
    tok, model = _built(resolve(raw))
    slice_layer(model.encoder.encoder.layer[0], heads=[1], neurons=list(range(0, 37, 2)))
    model.eval()
    batch = _mixed_batch(tok, MIXED, ["the cat sat", "stocks fell today", "a", "a dog barks loudly", "b"])
    with torch.no_grad():
        torch.testing.assert_close(model.inference(batch), model(batch), atol=1e-5, rtol=1e-4)


def test_prediction_falls_back_to_the_encoders_own_pass_where_it_must(tiny_bert, tiny_jsonl):
    """Hooks on the encoder's modules (distillation's probes) see the layers' own calls; training mode keeps
    dropout: both take forward itself."""
    from textsift.backends.torch.networks import transformer

    tok, model = _built(_config(tiny_bert, tiny_jsonl, pooling="mean"))
    batch = _mixed_batch(tok, MIXED)
    seen = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(transformer, "unpadded_hidden", lambda *a, **k: pytest.fail("unpadded path taken"))
        model.train()
        model.inference(batch)
        model.eval()
        handle = model.encoder.encoder.layer[1].register_forward_hook(lambda m, a, out: seen.append(1))
        with torch.no_grad():
            model.inference(batch)
        handle.remove()
    assert seen == [1]


def test_the_runtime_and_evaluation_predict_through_the_unpadded_path(tiny_bert, tiny_jsonl, tmp_path):
    from textsift.backends.torch.networks import transformer

    config = _config(tiny_bert, tiny_jsonl, pooling="mean")
    calls = []
    real = transformer.unpadded_hidden
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(transformer, "unpadded_hidden", lambda *a, **k: calls.append(1) or real(*a, **k))
        result = textsift.train(config, tmp_path / "run")
        during_training = len(calls)
        loaded = textsift.load(tmp_path / "run", runtime="torch")
        probabilities = loaded.predict(MIXED).probabilities
    assert during_training > 0 and len(calls) > during_training
    np.testing.assert_allclose(probabilities, result.predictor.predict(MIXED).probabilities, atol=1e-6)


def test_pooler_pooling_is_the_pretrained_pooler_over_the_first_token_and_trains(tiny_bert, tiny_jsonl):
    """pooling: pooler is what AutoModelForSequenceClassification feeds its classifier: tanh(dense(first token)),
    with the encoder's pretrained pooler weights, which then train with the rest."""
    config = _config(tiny_bert, tiny_jsonl, pooling="pooler")
    tok, model = _built(config)
    model.eval()
    batch, _ = _two_texts(tok)
    inputs, _ = model._inputs(batch)
    first = model.encoder(**inputs).last_hidden_state[:, 0]
    dense = model.encoder.pooler.dense
    expected = model.head(torch.tanh(first @ dense.weight.T + dense.bias))
    torch.testing.assert_close(model(batch), expected, atol=1e-5, rtol=1e-4)
    model.train()
    model(batch).sum().backward()
    assert dense.weight.grad is not None and float(dense.weight.grad.abs().sum()) > 0


def test_pooler_pooling_refuses_an_encoder_without_a_pooler(tiny_bert, tiny_jsonl):
    from transformers import BertModel

    from textsift.backends.torch.networks.transformer import TransformerClassifier
    from textsift.errors import ConfigError

    config = _config(tiny_bert, tiny_jsonl, pooling="pooler")
    encoder = BertModel.from_pretrained(str(tiny_bert), add_pooling_layer=False)
    with pytest.raises(ConfigError, match=r"model.pooling: 'pooler' needs an encoder with a pretrained pooler.*BertModel has none"):
        TransformerClassifier(config.model, encoder, 2, None)


def test_attention_on_a_gpu_leaves_out_cudnn_and_nothing_changes_on_a_cpu():
    """cuDNN attention plans every new input shape (about 0.2 s on an H200) and length-cut batches are new shapes:
    textsift's forward passes on a GPU ask SDPA for its other kernels; the process's own setting comes back after."""
    from textsift.backends.torch.networks.transformer import attention_kernels

    assert torch.backends.cuda.cudnn_sdp_enabled() and torch.backends.cuda.flash_sdp_enabled()
    with attention_kernels(torch.device("cuda")):
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.mem_efficient_sdp_enabled()
        assert torch.backends.cuda.math_sdp_enabled()
    assert torch.backends.cuda.cudnn_sdp_enabled()
    with attention_kernels(torch.device("cpu")):
        assert torch.backends.cuda.cudnn_sdp_enabled()


def test_the_encoder_runs_inside_the_attention_context_in_training_and_prediction(tiny_bert, tiny_jsonl, monkeypatch):
    """The context is entered by the network around its encoder, so every caller takes it (the trainer, the runtime,
    a distillation teacher's pass inside the loss), with the batch's device."""
    import contextlib

    from textsift.backends.torch.networks import transformer

    entered = []

    def recording(device):
        entered.append(device.type)
        return contextlib.nullcontext()

    monkeypatch.setattr(transformer, "attention_kernels", recording)
    tok, model = _built(_config(tiny_bert, tiny_jsonl, pooling="mean"))
    batch, _ = _two_texts(tok)
    model.train()
    model(batch)
    model.eval()
    with torch.no_grad():
        model.inference(batch)  # the unpadded path
    assert entered == ["cpu", "cpu"]
