"""Text and DNA targets: tokenizers, the splice split, missing-input errors, the generated stand-ins."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from vpcost_utils.data import text
from vpcost_utils.data.text import CharTokenizer, MissingTextDataError, load_text_split, read_splice, synth_tokenizer


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path))
    monkeypatch.setenv("VPCOST_OFFLINE", "1")
    return tmp_path


def test_char_tokenizer_is_byte_plus_two_padded_with_zero():
    ids = CharTokenizer(max_length=6)(["ACGT", "NNNNNNNN"])
    assert ids[0].tolist() == [ord("A") + 2, ord("C") + 2, ord("G") + 2, ord("T") + 2, 0, 0]
    assert ids[1].tolist() == [ord("N") + 2] * 6  # cut at max_length
    assert CharTokenizer.vocab_size == 258


def _write_splice(path, per_class=(20, 20, 40)):
    g = torch.Generator().manual_seed(0)
    lines = []
    for cls, n in zip(("EI", "IE", "N"), per_class, strict=True):
        for i in range(n):
            seq = "".join("ACGT"[j] for j in torch.randint(0, 4, (60,), generator=g).tolist())
            lines.append(f"{cls},  HUMAN-{cls}-{i},{' ' * 6}{seq.lower() if i % 2 else seq}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def test_splice_split_is_stratified_seeded_and_cached(home):
    _write_splice(text.splice_file())
    seqs, labels = read_splice(text.splice_file())
    assert len(seqs) == 80 and all(len(s) == 60 and s.isupper() for s in seqs)
    train, test = load_text_split("splice", "train"), load_text_split("splice", "test")
    assert (len(train), len(test)) == (64, 16)
    assert test.labels.bincount().tolist() == [4, 4, 8]  # 20 % of each class
    assert train.classes == ["EI", "IE", "N"] and train.vocab_size == 258 and train.tokens.shape[1] == 512
    assert torch.all(train.tokens[:, 60:] == 0) and torch.all(train.tokens[:, :60] > 2)
    assert list((home / "tensors" / "text").glob("splice_train_*.pt"))
    again = load_text_split("splice", "train")
    assert torch.equal(again.tokens, train.tokens) and torch.equal(again.labels, train.labels)
    assert len(load_text_split("splice", "train", max_train=10)) == 10


def test_missing_splice_file_says_where_to_put_it(home):
    with pytest.raises(MissingTextDataError, match="splice.data") as info:
        load_text_split("splice", "train")
    assert str(text.splice_file()) in str(info.value) and "archive.ics.uci.edu" in str(info.value)


def test_missing_hf_inputs_are_listed_in_one_error(home, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if `datasets` were not installed
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)
    with pytest.raises(MissingTextDataError) as info:
        load_text_split("ag_news", "train")
    message = str(info.value)
    assert "bert-base-cased" in message and "pip install datasets" in message
    assert len(info.value.missing) == 2


def test_hf_dataset_uses_reference_text_column_and_first_rows(home, monkeypatch):
    corpus = ["Some Company makes things", "A small village", "An album by a band"]
    tok = synth_tokenizer(corpus * 5, max_length=16)
    text.bert_tokenizer_file().parent.mkdir(parents=True)
    tok.no_padding()
    tok.no_truncation()
    tok.save(str(text.bert_tokenizer_file()))
    calls = []

    def load_dataset(name, split, cache_dir):
        calls.append((name, split))
        return {"content": corpus[:2], "title": ["x", "y"], "label": [0, 8]}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    data = load_text_split("dbpedia_14", "train", max_train=2, max_length=12)
    assert calls == [("fancyzhx/dbpedia_14", "train[:2]")]
    assert data.labels.tolist() == [0, 8] and data.tokens.shape == (2, 12) and data.classes[8] == "Village"
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    first = data.tokens[0].tolist()
    assert first[0] == cls and sep in first and first[-1] == 0  # [CLS] ... [SEP] then [PAD] = 0


@pytest.mark.parametrize("name, k", [("synth_text2", 2), ("synth_text4", 4), ("synth_dna", 3)])
def test_generated_tasks_are_balanced_deterministic_and_learnable(name, k):
    from sklearn.linear_model import LogisticRegression

    train, test = load_text_split(name, "train", max_length=128), load_text_split(name, "test", max_length=128)
    assert train.num_classes == k and train.labels.bincount().tolist() == [len(train) // k] * k
    assert torch.equal(load_text_split(name, "train", max_length=128).tokens, train.tokens)
    assert train.vocab_size == test.vocab_size and int(train.tokens.max()) < train.vocab_size

    def features(split):  # bag of tokens for text, one-hot per position for DNA
        if name == "synth_dna":
            return torch.nn.functional.one_hot(split.tokens[:, :60], 258).flatten(1).float().numpy()
        return torch.zeros(len(split), split.vocab_size).scatter_add_(
            1, split.tokens, torch.ones_like(split.tokens, dtype=torch.float)).numpy()

    clf = LogisticRegression(max_iter=500).fit(features(train), train.labels.numpy())
    acc = (clf.predict(features(test)) == test.labels.numpy()).mean()
    assert acc > 1 / k + 0.2  # the class signal is there for a learner to find
    assert len(load_text_split(name, "train", max_train=7, max_length=128)) == 7


def test_unknown_text_dataset_lists_choices():
    with pytest.raises(KeyError, match="synth_text2"):
        load_text_split("synth_txt2", "train")


def test_hf_dataset_reads_the_datasets_offline_cache_layout(home):
    """The real ``datasets.load_dataset``, offline, on the cache layout it writes (``data/text_fakes.fake_hf_text``):
    the path the quick profile's AG News takes, with ``train[:N]`` slicing done by the package."""
    pytest.importorskip("datasets")
    import numpy as np

    from vpcost_utils.data import text_fakes as fakes

    folder = fakes.fake_hf_text(text.TEXT_DATASETS["ag_news"], np.random.RandomState(0), per_class=3)
    assert folder.parts[-4:-1] == ("fancyzhx___ag_news", "default", "0.0.0")
    fakes.write_bert_tokenizer()
    train = load_text_split("ag_news", "train", max_train=5, max_length=32)
    test = load_text_split("ag_news", "test", max_length=32)
    assert len(train) == 5 and len(test) == 12 and train.tokens.shape == (5, 32)
    assert train.labels.tolist() == [0, 1, 2, 3, 0] and test.labels.bincount().tolist() == [3, 3, 3, 3]
    assert train.classes == ["World", "Sports", "Business", "Sci/Tech"] and train.vocab_size > 10
