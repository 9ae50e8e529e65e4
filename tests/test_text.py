from __future__ import annotations

import numpy as np
import pytest

from textsift.batching import collate, epoch_batches, eval_batches
from textsift.data.example import Example
from textsift.errors import NotFittedError
from textsift.text.base import Ragged
from textsift.text.ngrams import HashedNgramsSpec
from textsift.text.subword import BpeSpec, WordPieceSpec
from textsift.text.words import WordsSpec

from conftest import TINY

EXAMPLES = [Example(text=t, label=l) for t, l in TINY]


def test_ragged_take_and_truncate():
    r = Ragged.from_rows([[1, 2, 3], [4], [], [5, 6]])
    t = r.take(np.array([3, 0, 2]))
    assert [t[i].tolist() for i in range(3)] == [[5, 6], [1, 2, 3], []]
    tr = r.truncate(2)
    assert [tr[i].tolist() for i in range(4)] == [[1, 2], [4], [], [5, 6]]


@pytest.mark.parametrize("spec", [WordsSpec(), HashedNgramsSpec(), HashedNgramsSpec(char_ngrams=(2, 4)), BpeSpec(vocab_size=120), WordPieceSpec(vocab_size=120)])
def test_tokenizers_fit_encode_save_load(spec, tmp_path):
    tok = spec.build()
    with pytest.raises(NotFittedError):
        tok.encode(EXAMPLES)
    tok.fit(EXAMPLES)
    ids = tok.encode(EXAMPLES)
    assert len(ids) == len(EXAMPLES) and ids.values.min() >= 1 and ids.values.max() < tok.vocab_size
    tok.save(tmp_path)
    again = spec.build().load(tmp_path)
    assert again.vocab_size == tok.vocab_size
    other = again.encode(EXAMPLES)
    assert np.array_equal(other.values, ids.values) and np.array_equal(other.offsets, ids.offsets)


def test_words_tokenizer_vocab_limits_and_unknowns():
    tok = WordsSpec(min_frequency=2).build().fit(EXAMPLES)
    assert "a" in tok.vocab_ and "wonderful" not in tok.vocab_  # seen once
    ids = tok.encode([Example(text="a zzzz")])
    assert ids[0].tolist() == [tok.vocab_["a"], 1]  # 1 = <unk>
    tok = WordsSpec(max_size=5).build().fit(EXAMPLES)
    assert tok.vocab_size == 3 + 5


def test_hashed_ngrams_features_and_unseen_features_dropped():
    spec = HashedNgramsSpec(word_ngrams=2)
    tok = spec.build().fit([Example(text="good film"), Example(text="bad film")])
    # words good, film, bad + bigrams "good film", "bad film"
    assert tok.vocab_size == 1 + 5
    ids = tok.encode([Example(text="good film"), Example(text="unseen words only")])
    assert len(ids[0]) == 3 and len(ids[1]) == 0
    # order of words matters through the bigrams
    a, b = tok.encode([Example(text="film good"), Example(text="good film")])
    assert len(a) == 2 and len(b) == 3


def test_hashed_ngrams_pairs_are_distinct_from_singles():
    tok = HashedNgramsSpec().build().fit([Example(text="a b", text_pair="c d"), Example(text="c d")])
    pair, single = tok.encode([Example(text="a b", text_pair="c d"), Example(text="a b c d")])
    assert set(pair.tolist()) != set(single.tolist())


def test_hashed_ngrams_min_count_and_max_features():
    examples = [Example(text="x y"), Example(text="x z")]
    assert HashedNgramsSpec(min_count=2, word_ngrams=1).build().fit(examples).vocab_size == 2  # only x
    assert HashedNgramsSpec(max_features=2).build().fit(examples).vocab_size == 3


def test_pairs_in_words_tokenizer_use_separator():
    tok = WordsSpec().build().fit([Example(text="a b", text_pair="c")])
    ids = tok.encode([Example(text="a b", text_pair="c")])[0].tolist()
    assert ids[2] == tok.vocab_["<sep>"] and len(ids) == 4


def test_max_length_truncates():
    tok = WordsSpec(max_length=3).build().fit(EXAMPLES)
    assert tok.encode(EXAMPLES).lengths.max() == 3


def test_epoch_batches_are_a_function_of_seed_and_epoch_and_cover_everything():
    lengths = np.random.default_rng(0).integers(1, 50, size=103)
    a = epoch_batches(lengths, 8, seed=1, epoch=2)
    b = epoch_batches(lengths, 8, seed=1, epoch=2)
    c = epoch_batches(lengths, 8, seed=1, epoch=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert sorted(np.concatenate(a).tolist()) == list(range(103))
    # bucketing: batches are far more uniform in length than random ones
    spread = np.mean([lengths[i].max() - lengths[i].min() for i in a])
    random_spread = np.mean([lengths[i].max() - lengths[i].min() for i in epoch_batches(lengths, 8, seed=1, epoch=2, bucket=False)])
    assert spread < random_spread / 2


def test_eval_batches_with_token_budget():
    lengths = np.array([5, 1, 9, 3, 7])
    batches = eval_batches(lengths, 10, max_tokens=12)
    assert sorted(np.concatenate(batches).tolist()) == [0, 1, 2, 3, 4]
    assert all(len(b) * lengths[b].max() <= 12 or len(b) == 1 for b in batches)


def test_collate_padded_and_bag():
    ids = Ragged.from_rows([[3, 4, 5], [6]])
    labels = np.array([1, 0])
    padded = collate(ids, np.array([1, 0]), "padded", labels)
    assert padded["ids"].tolist() == [[6, 0, 0], [3, 4, 5]] and padded["lengths"].tolist() == [1, 3]
    assert padded["labels"].tolist() == [0, 1]
    bag = collate(ids, np.array([0, 1]), "bag", labels)
    assert bag["ids"].tolist() == [3, 4, 5, 6] and bag["offsets"].tolist() == [0, 3]
