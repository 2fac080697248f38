"""Fake text and DNA sets in their published layouts (``text.py``'s loaders).

The splice set is a UCI ``splice.data``; the Hugging Face text sets are ``datasets`` offline caches; the
BERT tokenizer is a ``tokenizers`` JSON file with the special tokens the real one has. ``write_fake`` is
what ``TextInfo.fake`` names; everything is seeded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import paths
from .text import TEXT_DATASETS, bert_tokenizer_file, splice_file, synth_tokenizer

_WORDS = ("the a company village album film river team market science world sports business game new old "
          "good bad great awful movie place food service").split()


def fake_splice(path: Path, rng: np.random.RandomState, per_class: int = 10) -> None:
    """UCI ``splice.data``: ``CLASS,  NAME,  SEQUENCE`` lines, 60 nt each."""
    lines = []
    for cls in ("EI", "IE", "N"):
        for i in range(per_class):
            seq = "".join(rng.choice(list("ACGT"), 60))
            lines.append(f"{cls},  HUMAN-{cls}-{i},{' ' * 6}{seq}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


#: Config folder of each Hugging Face set in its published (parquet-converted) form, as `datasets` caches it.
HF_CONFIGS = {"fancyzhx/yelp_polarity": "plain_text", "stanfordnlp/imdb": "plain_text", "fancyzhx/ag_news": "default",
              "fancyzhx/dbpedia_14": "dbpedia_14"}


def fake_hf_text(info: Any, rng: np.random.RandomState, per_class: int = 4) -> Path:
    """A Hugging Face text set as ``datasets.load_dataset`` left it in ``paths.datasets_dir()/hf``.

    ``<namespace>___<name>/<config>/0.0.0/<revision>/`` with ``<name>-train.arrow``, ``<name>-test.arrow``
    (Arrow IPC streams) and ``dataset_info.json``: offline, ``load_dataset(hf_id, split=...)`` reads this
    through the package's own cache builder, so the rehearsal runs the real loader and the real slicing
    (``train[:N]``). Columns as published: the text column and a ``ClassLabel`` ``label``.
    """
    import datasets
    import pyarrow as pa

    namespace, name = info.hf_id.split("/")
    folder = (paths.datasets_dir() / "hf" / f"{namespace}___{name}" / HF_CONFIGS[info.hf_id] / "0.0.0" / ("0" * 40))
    folder.mkdir(parents=True, exist_ok=True)
    features = datasets.Features({info.text_column: datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=list(info.classes))})
    splits = datasets.SplitDict(dataset_name=name)
    for split in ("train", "test"):
        labels = [i % len(info.classes) for i in range(per_class * len(info.classes))]
        texts = [" ".join(rng.choice(_WORDS, rng.randint(5, 30))) for _ in labels]
        table = datasets.Dataset.from_dict({info.text_column: texts, "label": labels}, features=features).data.table
        with pa.OSFile(str(folder / f"{name}-{split}.arrow"), "wb") as f, pa.ipc.new_stream(f, table.schema) as w:
            w.write_table(table)
        splits.add(datasets.SplitInfo(name=split, num_examples=len(labels), dataset_name=name))
    datasets.DatasetInfo(features=features, splits=splits, config_name=HF_CONFIGS[info.hf_id], dataset_name=name,
                         builder_name="parquet").write_to_directory(str(folder))
    return folder


def wordpiece_tokenizer(corpus: list[str]) -> Any:
    """A BERT-style WordPiece tokenizer ([PAD]=0, [CLS] ... [SEP]) trained on ``corpus``, unpadded."""
    tok = synth_tokenizer(corpus, max_length=512)
    tok.no_padding()
    tok.no_truncation()
    return tok


def write_bert_tokenizer() -> str:
    path = bert_tokenizer_file()
    if not path.exists():
        words = [" ".join(i.classes) for i in TEXT_DATASETS.values()] + [" ".join(_WORDS)] * 5
        path.parent.mkdir(parents=True, exist_ok=True)
        wordpiece_tokenizer(words).save(str(path))
    return "bert-base-cased tokenizer.json"


def write_fake(name: str, seed: int = 0) -> list[str]:
    """Write text set ``name`` where its loader looks; returns the layouts written."""
    rng = np.random.RandomState(seed)
    if name == "splice":
        fake_splice(splice_file(), rng)
        return ["UCI splice.data"]
    fake_hf_text(TEXT_DATASETS[name], rng)
    return [write_bert_tokenizer(), "Hugging Face `datasets` cache (Arrow streams + dataset_info.json)"]
