"""Text and DNA targets for cross-modal reprogramming, as token-id tensors.

Real sets (Neekhara et al.'s configuration):

- ``yelp_polarity``, ``imdb``, ``ag_news`` (text column ``text``) and ``dbpedia_14`` (``content``)
  through Hugging Face ``datasets`` (ids ``fancyzhx/yelp_polarity``, ``stanfordnlp/imdb``,
  ``fancyzhx/ag_news``, ``fancyzhx/dbpedia_14``), train / test splits, tokenised with the
  ``bert-base-cased`` tokenizer (``tokenizers`` library) to 512 ids with [CLS]/[SEP] and [PAD]=0.
- ``splice``: UCI "Molecular Biology (Splice-junction Gene Sequences)" (id 69, ``splice.data``,
  3,190 sequences of 60 nt, classes EI / IE / N). The authors' split was never released; ours is
  a stratified 80/20 split with scikit-learn ``train_test_split(random_state=0)``. Character
  tokenizer: byte value + 2, [PAD] = 0, vocabulary 258.

``max_train`` keeps the FIRST N training rows (not stratified), as the reference's ``--n_training``.
Tokenised tensors are cached under ``paths.tensors_dir()/text``.

Generated offline stand-ins (the smoke profile): ``synth_text2`` and ``synth_text4`` (2 and 4
classes; documents mix shared filler words with class-specific keywords and a class-specific
sentence ending, tokenised by a WordPiece tokenizer trained on the generated training corpus with
the ``tokenizers`` library), and ``synth_dna`` (3 classes of 60-nt sequences: a noisy donor motif
after a GC-rich "exon" half, a noisy acceptor motif before one, or neither; char-tokenised like ``splice``).
"""

from __future__ import annotations

import os
import random
import string
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import paths
from .._io import atomic_torch_save
from ..errors import MissingFileError, UnknownNameError
from ..fetch import offline
from ..hub import hub_tokenizer

BERT_TOKENIZER = "bert-base-cased"
MAX_LENGTH = 512
SPLICE_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/molecular-biology/splice-junction-gene-sequences/splice.data"
SPLICE_CLASSES = ("EI", "IE", "N")


@dataclass
class TextSplit:
    """Token ids ``[N, L]`` (int64, [PAD] = ``pad_id``), labels ``[N]``, class names, vocabulary size."""

    name: str
    split: str
    tokens: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    vocab_size: int
    pad_id: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class TextInfo:
    name: str
    hf_id: str | None  # Hugging Face dataset id; None for local / generated sets
    text_column: str = "text"
    classes: tuple[str, ...] = ()
    offline: bool = False
    fake: str | None = None  # "module:function" writing fake files in the published layout (the rehearsal)


_FAKE = "vpcost_utils.data.text_fakes:write_fake"  # the rehearsal's fake files (text_fakes.py)
TEXT_DATASETS = {
    "yelp_polarity": TextInfo("yelp_polarity", "fancyzhx/yelp_polarity", "text", ("negative", "positive"), fake=_FAKE),
    "imdb": TextInfo("imdb", "stanfordnlp/imdb", "text", ("neg", "pos"), fake=_FAKE),
    "ag_news": TextInfo("ag_news", "fancyzhx/ag_news", "text", ("World", "Sports", "Business", "Sci/Tech"), fake=_FAKE),
    "dbpedia_14": TextInfo("dbpedia_14", "fancyzhx/dbpedia_14", "content", (
        "Company", "EducationalInstitution", "Artist", "Athlete", "OfficeHolder", "MeanOfTransportation", "Building",
        "NaturalPlace", "Village", "Animal", "Plant", "Album", "Film", "WrittenWork"), fake=_FAKE),
    "splice": TextInfo("splice", None, "sequence", SPLICE_CLASSES, fake=_FAKE),
    "synth_text2": TextInfo("synth_text2", None, classes=("alpha", "beta"), offline=True),
    "synth_text4": TextInfo("synth_text4", None, classes=("alpha", "beta", "gamma", "delta"), offline=True),
    "synth_dna": TextInfo("synth_dna", None, classes=SPLICE_CLASSES, offline=True),
}


class MissingTextDataError(MissingFileError):
    """One or more things a text dataset needs (package, tokenizer, data files) are absent."""

    def __init__(self, name: str, missing: list[str]):
        self.missing = missing
        lines = "\n".join(f"  - {m}" for m in missing)
        super().__init__(f"text dataset {name!r}", "its inputs", "the sources listed below",
                         str(paths.datasets_dir()))
        self.args = (f"text dataset {name!r} cannot be loaded here; missing:\n{lines}\n"
                     "Fetch them on a machine with internet (the caches live under VPCOST_HOME; "
                     "HF_HOME points to VPCOST_HOME/hf unless set) and run again.",)


def list_text_datasets(offline: bool | None = None) -> list[str]:
    return sorted(n for n, i in TEXT_DATASETS.items() if offline is None or i.offline == offline)


def load_text_split(name: str, split: str, *, max_train: int | None = None, max_length: int = MAX_LENGTH) -> TextSplit:
    """Split ``"train"`` or ``"test"`` of text dataset ``name`` as token ids."""
    if name not in TEXT_DATASETS:
        raise UnknownNameError("text dataset", name, TEXT_DATASETS)
    if split not in ("train", "test"):
        raise UnknownNameError("split", split, ["train", "test"])
    info = TEXT_DATASETS[name]
    limit = max_train if split == "train" else None
    if name.startswith("synth_text"):
        return _synth_text(info, split, limit, max_length)
    if name == "synth_dna":
        return _cap(_synth_dna(info, split, max_length), limit)
    cache = paths.tensors_dir() / "text" / f"{name}_{split}_{limit or 'all'}_{max_length}.pt"
    if cache.exists():
        d = torch.load(cache, weights_only=True)
        return TextSplit(name, split, d["tokens"], d["labels"], list(info.classes), int(d["vocab_size"]))
    out = _splice(info, split, max_length) if name == "splice" else _hf_text(info, split, limit, max_length)
    out = _cap(out, limit)
    atomic_torch_save({"tokens": out.tokens, "labels": out.labels, "vocab_size": out.vocab_size}, cache)
    return out


def _cap(data: TextSplit, limit: int | None) -> TextSplit:
    if limit is None or limit >= len(data):
        return data
    return TextSplit(data.name, data.split, data.tokens[:limit], data.labels[:limit], data.classes, data.vocab_size,
                     data.pad_id)


# --- tokenizers ---------------------------------------------------------------------------------------------------

class CharTokenizer:
    """Character-level ids: byte value + 2, [PAD] = 0, vocabulary 258, padded / cut to ``max_length``."""

    vocab_size = 258

    def __init__(self, max_length: int = MAX_LENGTH):
        self.max_length = max_length

    def __call__(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.max_length, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [b + 2 for b in t.encode("utf-8")[: self.max_length]]
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out


def _bert_tokenizer(max_length: int):
    """``bert-base-cased`` from ``datasets_dir()/tokenizers/bert-base-cased.json`` or the HF cache/hub."""
    tok = hub_tokenizer(BERT_TOKENIZER, bert_tokenizer_file())
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(length=max_length, pad_id=tok.token_to_id("[PAD]"), pad_token="[PAD]")
    return tok


def bert_tokenizer_file() -> Path:
    return paths.datasets_dir() / "tokenizers" / f"{BERT_TOKENIZER}.json"


def _encode(tok, texts: list[str]) -> torch.Tensor:
    return torch.tensor([e.ids for e in tok.encode_batch(texts)], dtype=torch.long)


# --- real datasets ------------------------------------------------------------------------------------------------

def _hf_text(info: TextInfo, split: str, limit: int | None, max_length: int) -> TextSplit:
    """Check every input first, so one error lists all that is missing; then tokenise."""
    missing, tok, rows = [], None, None
    try:
        tok = _bert_tokenizer(max_length)
    except Exception:
        missing.append(f"tokenizer {BERT_TOKENIZER}: tokenizer.json from https://huggingface.co/{BERT_TOKENIZER}, "
                       f"saved as {bert_tokenizer_file()} (or cached in HF_HOME by `tokenizers`)")
    if offline():
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # read by `datasets` when first imported
    try:
        import datasets
    except ImportError:
        missing.append("Python package `datasets` (pip install datasets==5.2.0)")
    else:
        try:
            if offline() and hasattr(datasets, "config"):  # imported earlier, before VPCOST_OFFLINE was read
                datasets.config.HF_HUB_OFFLINE = True
            hf_split = split if limit is None else f"{split}[:{limit}]"
            rows = datasets.load_dataset(info.hf_id, split=hf_split, cache_dir=str(paths.datasets_dir() / "hf"))
        except Exception as exc:
            missing.append(f"dataset {info.hf_id} split {split} from https://huggingface.co/datasets/{info.hf_id} "
                           f"(datasets.load_dataset caches it in {paths.datasets_dir() / 'hf'}; error: "
                           f"{type(exc).__name__})")
    if missing:
        raise MissingTextDataError(info.name, missing)
    tokens = _encode(tok, list(rows[info.text_column]))
    labels = torch.tensor(list(rows["label"]), dtype=torch.long)
    return TextSplit(info.name, split, tokens, labels, list(info.classes), tok.get_vocab_size(), 0)


def splice_file() -> Path:
    return paths.datasets_dir() / "splice" / "splice.data"


def read_splice(path: Path) -> tuple[list[str], torch.Tensor]:
    """Sequences and labels of UCI ``splice.data`` lines ``CLASS, NAME, SEQUENCE``."""
    seqs, labels = [], []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        cls, _, seq = (part.strip() for part in line.split(","))
        seqs.append(seq.upper())
        labels.append(SPLICE_CLASSES.index(cls))
    return seqs, torch.tensor(labels, dtype=torch.long)


def _splice(info: TextInfo, split: str, max_length: int) -> TextSplit:
    from sklearn.model_selection import train_test_split

    path = splice_file()
    if not path.exists() and not offline():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(SPLICE_URL, str(path), progress=False)
        except Exception:
            path.unlink(missing_ok=True)
    if not path.exists():
        raise MissingTextDataError(info.name, [f"splice.data from {SPLICE_URL} (UCI dataset 69), put at {path}"])
    seqs, labels = read_splice(path)
    train_idx, test_idx = train_test_split(list(range(len(labels))), test_size=0.2, stratify=labels.numpy(),
                                           random_state=0)
    index = train_idx if split == "train" else test_idx
    tokens = CharTokenizer(max_length)([seqs[i] for i in index])
    return TextSplit(info.name, split, tokens, labels[index], list(info.classes), CharTokenizer.vocab_size, 0)


# --- generated stand-ins ------------------------------------------------------------------------------------------

_FILLER = tuple(f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ri", "so", "tu") for b in ("n", "r", "s", "t", "m"))
_ENDINGS = (".", "!", "?", ";")


def _keywords(num_classes: int) -> list[list[str]]:
    letters = string.ascii_lowercase
    return [[f"{letters[c]}{letters[(c * 7 + j) % 26]}ox" for j in range(8)] for c in range(num_classes)]


def _synth_documents(num_classes: int, n: int, seed: int) -> tuple[list[str], torch.Tensor]:
    """Documents of 12-40 words: filler, 18 % class keywords (a quarter of them from a wrong class), class ending."""
    rng = random.Random(seed)
    keywords = _keywords(num_classes)
    labels = [i % num_classes for i in range(n)]
    rng.shuffle(labels)
    docs = []
    for c in labels:
        words = []
        for _ in range(rng.randint(12, 40)):
            u = rng.random()
            if u < 0.18:
                words.append(rng.choice(keywords[c if u > 0.045 else rng.randrange(num_classes)]))
            else:
                words.append(rng.choice(_FILLER))
        ending = _ENDINGS[c % len(_ENDINGS)] if rng.random() < 0.7 else "."
        docs.append(" ".join(words) + ending)
    return docs, torch.tensor(labels, dtype=torch.long)


def synth_tokenizer(corpus: list[str], max_length: int):
    """A WordPiece tokenizer trained on ``corpus`` with [PAD]=0, [CLS] ... [SEP] and fixed-length padding."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=300, special_tokens=special,
                                                              show_progress=False))
    # The trainer numbers tokens in hash order, which changes between runs: renumber them sorted.
    learned = sorted(set(tok.get_vocab()) - set(special))
    tok.model = models.WordPiece({t: i for i, t in enumerate(special + learned)}, unk_token="[UNK]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
        ("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(length=max_length, pad_id=0, pad_token="[PAD]")
    return tok


def _synth_text(info: TextInfo, split: str, limit: int | None, max_length: int) -> TextSplit:
    k = len(info.classes)
    train_docs, train_labels = _synth_documents(k, 200 * k, seed=100 + k)
    tok = synth_tokenizer(train_docs, max_length)  # trained on the training corpus only
    docs, labels = (train_docs, train_labels) if split == "train" else _synth_documents(k, 100 * k, seed=200 + k)
    return _cap(TextSplit(info.name, split, _encode(tok, docs), labels, list(info.classes), tok.get_vocab_size(), 0),
                limit)


_DONOR, _ACCEPTOR = "CAGGTAAGT", "TTTCCCTTTCAGG"


def _synth_dna(info: TextInfo, split: str, max_length: int) -> TextSplit:
    """60-nt sequences; EI: donor motif + GC-rich first half, IE: acceptor motif + GC-rich second half, N: neither.

    20 % of motif bases are mutated and the motif moves by up to 3 positions.
    """
    rng = random.Random(300 if split == "train" else 301)
    n = 600 if split == "train" else 300
    labels = [i % 3 for i in range(n)]
    rng.shuffle(labels)
    gc_rich, uniform = (0.125, 0.375, 0.375, 0.125), (0.25,) * 4  # A C G T: 75 % G/C, exons are GC-richer
    seqs = []
    for c in labels:
        # EI: exon then intron, so the upstream half is GC-rich; IE: the downstream half; N: neither
        halves = (gc_rich, uniform) if c == 0 else (uniform, gc_rich) if c == 1 else (uniform, uniform)
        seq = rng.choices("ACGT", weights=halves[0], k=30) + rng.choices("ACGT", weights=halves[1], k=30)
        if c < 2:
            motif = _DONOR if c == 0 else _ACCEPTOR
            start = 30 - len(motif) // 2 + rng.randint(-3, 3)
            for j, b in enumerate(motif):
                seq[start + j] = rng.choice("ACGT") if rng.random() < 0.2 else b
        seqs.append("".join(seq))
    return TextSplit(info.name, split, CharTokenizer(max_length)(seqs), torch.tensor(labels, dtype=torch.long),
                     list(info.classes), CharTokenizer.vocab_size, 0)
