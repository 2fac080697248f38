"""Fake checkpoints and datasets in the published layouts, for rehearsals and loader tests.

Checkpoints carry random weights but every name, key layout, wrapper and shape of the real file, so
the registry's loaders read them through their real code paths (strict load, sparsity and bit-width
checks). Datasets hold a handful of random images per split and class in the folder and file layout
torchvision reads; the splice set is a UCI ``splice.data``; the Hugging Face text sets are
``datasets`` offline caches; tokenizers are ``tokenizers`` JSON files
with the special tokens the real ones have.

Layout converters (``to_sparseml``, ``to_ist``, ``to_resnet_tf``, ``to_lottery_ticket``, ``vvtq_file``,
``upop_file``) take a model and return what ``torch.save`` should write; ``write_checkpoint`` and
``write_dataset`` put a whole registry entry or dataset under ``VPCOST_HOME``. Everything is seeded.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import paths

# --------------------------------------------------------------------------------------------- ResNet layouts


def hidden_garbage(v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Dense values where the mask is 0: a loader that forgets the mask gives different outputs."""
    return torch.where(mask.bool(), v, torch.randn_like(v) + 1.0)


def _renamed(sd: dict[str, torch.Tensor], rules: list[tuple[str, Any]]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in sd.items():
        for pattern, repl in rules:
            key, n = re.subn(pattern, repl, key)
            if n:
                break
        out[key] = value
    return out


def to_sparseml(sd: dict[str, torch.Tensor], arch: str = "resnet18") -> dict[str, Any]:
    """SparseZoo ``training/model.pth``: SparseML ResNet names under ``state_dict``."""
    rules = [
        (r"^conv1\.", "input.conv."), (r"^bn1\.", "input.bn."),
        (r"^layer(\d)\.(\d+)\.downsample\.0\.", lambda m: f"sections.{int(m[1]) - 1}.{m[2]}.identity.conv."),
        (r"^layer(\d)\.(\d+)\.downsample\.1\.", lambda m: f"sections.{int(m[1]) - 1}.{m[2]}.identity.bn."),
        (r"^layer(\d)\.(\d+)\.", lambda m: f"sections.{int(m[1]) - 1}.{m[2]}."), (r"^fc\.", "classifier.fc."),
    ]
    return {"epoch": 99, "arch_key": arch, "state_dict": _renamed(sd, rules)}


def to_ist(module: nn.Module, prefix: str = "module.") -> dict[str, Any]:
    """IST (AC/DC): ``model_state_dict`` with ``module.`` and ``X._layer.weight`` + ``X._weight_mask`` wrappers."""
    wrapped = {n for n, m in module.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    sd = {}
    for key, value in module.state_dict().items():
        layer, _, kind = key.rpartition(".")
        if layer in wrapped:
            mask = (value != 0).float() if kind == "weight" else torch.ones_like(value)
            sd[f"{prefix}{layer}._layer.{kind}"] = hidden_garbage(value, mask)
            sd[f"{prefix}{layer}._{kind}_mask"] = mask
        else:
            sd[prefix + key] = value
    return {"model_config": {"arch": "resnet50", "dataset": "imagenet"}, "model_state_dict": sd}


def to_resnet_tf(module: nn.Module) -> dict[str, Any]:
    """RigL converted by Iofinova et al.: ``ResnetTF`` names in the IST container."""
    rules = [
        (r"^conv1\.", "initial_conv.conv."), (r"^bn1\.", "initial_conv.bn."),
        (r"^(layer\d)\.(\d+)\.conv(\d)\.", r"\1.block.\2.conv\3.conv."),
        (r"^(layer\d)\.(\d+)\.bn(\d)\.", r"\1.block.\2.conv\3.bn."),
        (r"^(layer\d)\.(\d+)\.downsample\.0\.", r"\1.block.\2.shortcut.conv."),
        (r"^(layer\d)\.(\d+)\.downsample\.1\.", r"\1.block.\2.shortcut.bn."),
    ]
    return {"model_config": {"arch": "resnet50_rigl", "dataset": "imagenet"},
            "model_state_dict": _renamed(dict(module.state_dict()), rules)}


def to_lottery_ticket(module: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The authors' lottery tickets: (weights, masks), both ``model.``-prefixed; weights dense under the mask."""
    weights, masks = {}, {}
    convs = {n for n, m in module.named_modules() if isinstance(m, nn.Conv2d)}
    for key, value in module.state_dict().items():
        if key.rpartition(".")[0] in convs:
            masks["model." + key] = (value != 0).float()
            value = hidden_garbage(value, masks["model." + key])
        weights["model." + key] = value
    return weights, masks


def pruned_resnet(arch: str, method: str, sparsity: float, seed: int = 0) -> nn.Module:
    """A random torchvision ResNet pruned by magnitude over the layers ``method`` counts, to ``sparsity``."""
    from ..models.prune import counted_layers, magnitude_prune
    from ..models.resnet import RULES, build_torchvision

    torch.manual_seed(seed)
    module = build_torchvision(arch)
    with torch.no_grad():  # one scale for every layer, so a global threshold does not empty the fc
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.normal_(0, 0.05)
    rule = RULES[method]
    scope = "layerwise" if method == "gmp" else "global"
    magnitude_prune(module, 1 - sparsity, scope=scope, layers=counted_layers(module, exclude=rule.exclude,
                                                                             kinds=rule.kinds))
    return module.eval()


# ----------------------------------------------------------------------------------------------- VVTQ layout


def vvtq_file(model: nn.Module, prefix: str = "module.") -> dict[str, Any]:
    """What VVTQ's ``train_VVTQ.py`` saves: DDP-prefixed ``state_dict`` beside its training state."""
    state = {prefix + k: v for k, v in model.state_dict().items()}
    return {"epoch": 7, "arch": "x", "state_dict": state, "best_acc1": torch.tensor(61.5),
            "optimizer": {"state": {}, "param_groups": []}}


def trained_vvtq(arch: str, bits: int, cfg: Any = None, seed: int = 0, *, mse: bool = True) -> nn.Module:
    """A VVTQ network with perturbed weights and initialised steps (as after QAT).

    ``mse=True`` searches every step by MSE on a batch, as VVTQ does (minutes for a full-size Swin-T on a
    CPU); ``mse=False`` uses LSQ's closed-form step, 2 mean|w| / sqrt(2^(b-1) - 1), and 0.1 for activations.
    """
    from ..models import vvtq
    from ..models.lsq import init_vvtq_steps, vvtq_quantizers

    torch.manual_seed(seed)
    model = vvtq.build_vvtq(arch, bits, cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith(("alpha", "beta")):
                p.add_(0.1 * torch.randn_like(p))
        if not mse:
            for q in vvtq_quantizers(model).values():
                if q.bits is None or not getattr(q, "used", True):
                    continue  # VVTQ never initialises Swin's unused patch quantizer
                weight = getattr(q, "weight", None)
                step = 2 * weight.abs().mean() / (2 ** (q.bits - 1) - 1) ** 0.5 if weight is not None else 0.1
                q.alpha.fill_(float(step))
                q.init_state.fill_(1)
    if mse:
        size = model.cfg.img_size
        init_vvtq_steps(model, torch.randn(2, 3, size, size))
    return model.eval()


# ----------------------------------------------------------------------------------------------- CLIP layouts

#: OpenAI ViT-L/14@336px, every size ``config_from_state_dict`` reads.
CLIP_L14_336 = {"vision_width": 1024, "patch_size": 14, "resolution": 336, "embed_dim": 768, "context_length": 77,
                "vocab_size": 49408, "text_width": 768, "vision_blocks": [(1024, 4096)] * 24,
                "text_blocks": [(768, 3072)] * 12, "vision_layers": 24, "text_layers": 12}


def upop_file(model: nn.Module) -> dict[str, Any]:
    """A checkpoint as UPop saves it: {"model": weights + momentum copies of both towers + queues}."""
    sd = dict(model.state_dict())
    for k, v in model.state_dict().items():
        for prefix in ("visual.", "transformer.", "token_embedding.", "ln_final."):
            if k.startswith(prefix):
                sd[prefix[:-1] + "_m." + k[len(prefix):]] = v  # same tensor: torch.save stores it once
    sd["text_projection_m"] = model.text_projection.detach()
    sd["positional_embedding_m"] = model.positional_embedding.detach()
    dim = model.text_projection.shape[1]
    sd["image_queue"], sd["text_queue"] = torch.randn(dim, 64), torch.randn(dim, 64)
    sd["idx_queue"], sd["ptr_queue"] = torch.full((1, 64), -100), torch.zeros(1, dtype=torch.long)
    return {"model": sd}


def openai_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """OpenAI CLIP's weights with the scalars its TorchScript archive stores beside them."""
    sd = dict(model.state_dict())
    sd.update({"input_resolution": torch.tensor(model.cfg["resolution"]),
               "context_length": torch.tensor(model.cfg["context_length"]),
               "vocab_size": torch.tensor(model.cfg["vocab_size"])})
    return sd


# ------------------------------------------------------------------------------------------------ tokenizers


def wordpiece_tokenizer(corpus: list[str]) -> Any:
    """A BERT-style WordPiece tokenizer ([PAD]=0, [CLS] ... [SEP]) trained on ``corpus``, unpadded."""
    from ..data.text import synth_tokenizer

    tok = synth_tokenizer(corpus, max_length=512)
    tok.no_padding()
    tok.no_truncation()
    return tok


def clip_bpe_tokenizer(corpus: list[str]) -> Any:
    """Byte-level BPE (no unknown text); ``<|startoftext|>`` and ``<|endoftext|>`` are the largest ids, as in CLIP."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    tok.add_special_tokens(["<|startoftext|>", "<|endoftext|>"])  # appended: the two largest ids
    return tok


# ---------------------------------------------------------------------------------------------- image datasets

DTD_CLASSES = (
    "banded blotchy braided bubbly bumpy chequered cobwebbed cracked crosshatched crystalline dotted fibrous flecked "
    "freckled frilly gauzy grid grooved honeycombed interlaced knitted lacelike lined marbled matted meshed paisley "
    "perforated pitted pleated polka-dotted porous potholed scaly smeared spiralled sprinkled stained stratified "
    "striped studded swirly veined waffled woven wrinkled zigzagged").split()
PET_BREEDS = (
    "Abyssinian american_bulldog american_pit_bull_terrier basset_hound beagle Bengal Birman Bombay boxer "
    "British_Shorthair chihuahua Egyptian_Mau english_cocker_spaniel english_setter german_shorthaired "
    "great_pyrenees havanese japanese_chin keeshond leonberger Maine_Coon miniature_pinscher newfoundland Persian "
    "pomeranian pug Ragdoll Russian_Blue saint_bernard samoyed scottish_terrier shiba_inu Siamese Sphynx "
    "staffordshire_bull_terrier wheaten_terrier yorkshire_terrier").split()
EUROSAT_CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                   "PermanentCrop", "Residential", "River", "SeaLake")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: Caltech101 folders whose names the loader rewrites, plus numbered stand-ins for the other 96 categories.
CALTECH_FOLDERS = ("Faces", "Faces_easy", "Leopards", "Motorbikes", "airplanes",
                   *(f"category_{i:02d}" for i in range(96)))


def _noise(rng: np.random.RandomState, h: int, w: int, mode: str = "RGB") -> Any:
    from PIL import Image

    shape = (h, w, 3) if mode == "RGB" else (h, w)
    return Image.fromarray(rng.randint(0, 256, shape, dtype=np.uint8), mode)


def _save(image: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def fake_cifar10(root: Path, rng: np.random.RandomState, train: int = 2, test: int = 1) -> None:
    """Pickled batches ``data_batch_1..5`` (training images spread over them), ``test_batch``, ``batches.meta``."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    train_labels = [c for c in range(10) for _ in range(train)]
    parts = np.array_split(np.array(train_labels), 5)
    for i, labels in enumerate(parts, 1):
        data = rng.randint(0, 256, (len(labels), 3072), dtype=np.uint8)
        (base / f"data_batch_{i}").write_bytes(pickle.dumps({"data": data, "labels": labels.tolist()}))
    labels = [c for c in range(10) for _ in range(test)]
    data = rng.randint(0, 256, (len(labels), 3072), dtype=np.uint8)
    (base / "test_batch").write_bytes(pickle.dumps({"data": data, "labels": labels}))
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CIFAR_CLASSES)}))


def fake_svhn(root: Path, rng: np.random.RandomState, train: int = 2, test: int = 1) -> None:
    """``{train,test}_32x32.mat`` with ``X`` [32, 32, 3, N] and ``y`` [N, 1], digit 0 written as 10."""
    import scipy.io

    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", train), ("test", test)):
        y = np.array([d or 10 for d in range(10) for _ in range(n)], dtype=np.uint8)[:, None]
        x = rng.randint(0, 256, (32, 32, 3, len(y)), dtype=np.uint8)
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})


def fake_gtsrb(root: Path, rng: np.random.RandomState, train: int = 2, test: int = 1) -> None:
    """43 class folders of ``.ppm`` training images; test images with ``GT-final_test.csv``."""
    base = root / "gtsrb"
    for cid in range(43):
        for k in range(train):
            _save(_noise(rng, 30, 34), base / "GTSRB/Training" / f"{cid:05d}" / f"{k:05d}_00000.ppm")
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for i, cid in enumerate(c for c in range(43) for _ in range(test)):
        _save(_noise(rng, 33, 30), base / "GTSRB/Final_Test/Images" / f"{i:05d}.ppm")
        rows.append(f"{i:05d}.ppm;30;33;2;2;28;31;{cid}")
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")


def fake_dtd(root: Path, rng: np.random.RandomState, train: int = 2, test: int = 1) -> None:
    """``dtd/dtd/images/<class>/*.jpg`` and partition-1 label files ``{train,val,test}1.txt``."""
    base = root / "dtd/dtd"
    for split, count in (("train", train), ("val", 1), ("test", test)):
        lines = []
        for cls in DTD_CLASSES:
            for _ in range(count):
                name = f"{cls}_{len(list((base / 'images' / cls).glob('*.jpg'))) + 1:04d}.jpg"
                _save(_noise(rng, 24, 20), base / "images" / cls / name)
                lines.append(f"{cls}/{name}")
        (base / "labels").mkdir(parents=True, exist_ok=True)
        (base / f"labels/{split}1.txt").write_text("\n".join(lines) + "\n")


def fake_flowers102(root: Path, rng: np.random.RandomState, train: int = 2, test: int = 1) -> None:
    """``flowers-102/jpg/image_*.jpg``, ``imagelabels.mat`` (1-based) and ``setid.mat`` (trnid / valid / tstid)."""
    import scipy.io

    base = root / "flowers-102"
    labels, ids = [], {"trnid": [], "valid": [], "tstid": []}
    for key, count in (("trnid", train), ("valid", 1), ("tstid", test)):
        for cls in range(1, 103):
            for _ in range(count):
                labels.append(cls)
                ids[key].append(len(labels))
                _save(_noise(rng, 22, 26), base / "jpg" / f"image_{len(labels):05d}.jpg")
    scipy.io.savemat(base / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
    scipy.io.savemat(base / "setid.mat", {k: np.array([v], dtype=np.uint16) for k, v in ids.items()})


def fake_oxford_pets(root: Path, rng: np.random.RandomState, train: int = 2, test: int = 1) -> None:
    """``oxford-iiit-pet/images/<Breed>_<n>.jpg`` and ``annotations/{trainval,test}.txt``."""
    base = root / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    n = 0
    for split, count in (("trainval", train), ("test", test)):
        lines = []
        for cid, breed in enumerate(PET_BREEDS, 1):
            species = 1 if breed[0].isupper() else 2  # the dataset's convention: cats capitalised
            for _ in range(count):
                n += 1
                _save(_noise(rng, 26, 22), base / "images" / f"{breed}_{n}.jpg")
                lines.append(f"{breed}_{n} {cid} {species} {n}")
        (base / f"annotations/{split}.txt").write_text("\n".join(lines) + "\n")


def fake_eurosat(root: Path, rng: np.random.RandomState, per_class: int = 10) -> None:
    """``eurosat/2750/<Class>/<Class>_<i>.jpg`` (the loader makes the 90/10 split: 10 per class give 1 test image)."""
    for cls in EUROSAT_CLASSES:
        for i in range(1, per_class + 1):
            _save(_noise(rng, 16, 16), root / "eurosat/2750" / cls / f"{cls}_{i}.jpg")


def fake_caltech101(root: Path, rng: np.random.RandomState, per_class: int = 5) -> None:
    """``caltech101/101_ObjectCategories/<category>/image_*.jpg`` with ``BACKGROUND_Google`` and some grey images."""
    base = root / "caltech101/101_ObjectCategories"
    for i in range(1, 3):
        _save(_noise(rng, 20, 20), base / "BACKGROUND_Google" / f"image_{i:04d}.jpg")
    for cls in CALTECH_FOLDERS:
        for i in range(1, per_class + 1):
            mode = "L" if i % 3 == 0 else "RGB"
            _save(_noise(rng, 18, 22, mode=mode), base / cls / f"image_{i:04d}.jpg")


IMAGE_DATASETS: dict[str, Callable[..., None]] = {
    "cifar10": fake_cifar10, "svhn": fake_svhn, "gtsrb": fake_gtsrb, "dtd": fake_dtd, "flowers102": fake_flowers102,
    "oxford_pets": fake_oxford_pets, "eurosat": fake_eurosat, "caltech101": fake_caltech101,
}

# ------------------------------------------------------------------------------------------- text and DNA sets


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


# ------------------------------------------------------------------------------------------ writing whole sets


def write_dataset(name: str, seed: int = 0) -> list[str]:
    """Write dataset ``name`` where its loader looks (``paths.datasets_dir()``); returns the layouts written."""
    rng = np.random.RandomState(seed)
    root = paths.datasets_dir()
    if name in IMAGE_DATASETS:
        IMAGE_DATASETS[name](root / name, rng)
        return [f"torchvision {name}"]
    if name == "splice":
        from ..data.text import splice_file

        fake_splice(splice_file(), rng)
        return ["UCI splice.data"]
    from ..data.text import TEXT_DATASETS

    if name in TEXT_DATASETS and TEXT_DATASETS[name].hf_id:
        fake_hf_text(TEXT_DATASETS[name], rng)
        return [write_bert_tokenizer(), "Hugging Face `datasets` cache (Arrow streams + dataset_info.json)"]
    raise KeyError(f"no fake writer for dataset {name!r}")


def write_bert_tokenizer() -> str:
    from ..data.text import TEXT_DATASETS, bert_tokenizer_file

    path = bert_tokenizer_file()
    if not path.exists():
        words = [" ".join(i.classes) for i in TEXT_DATASETS.values()] + [" ".join(_WORDS)] * 5
        path.parent.mkdir(parents=True, exist_ok=True)
        wordpiece_tokenizer(words).save(str(path))
    return "bert-base-cased tokenizer.json"


_WORDS = ("the a company village album film river team market science world sports business game new old "
          "good bad great awful movie place food service").split()


def _save_torch(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)


def write_checkpoint(name: str, seed: int = 0) -> str:
    """Write registry model ``name``'s file(s) with random weights in its published layout; returns the layout."""
    from ..models import get_entry
    from ..models.resnet import LT_LEVELS, _tv_weights, lt_mask_filename, torch_hub_checkpoints

    entry = get_entry(name)
    folder = paths.checkpoints_dir()
    if entry.arch.startswith("resnet"):
        if entry.method == "dense":
            torch.manual_seed(seed)
            from ..models.resnet import build_torchvision

            path = torch_hub_checkpoints() / Path(_tv_weights(name).url).name
            _save_torch(build_torchvision(entry.arch).state_dict(), path)
            return "torchvision state dict (TORCH_HOME/hub/checkpoints)"
        if entry.method == "gmp":
            module = pruned_resnet(entry.arch, "gmp", 0.85, seed)
            _save_torch(to_sparseml(module.state_dict(), entry.arch), folder / entry.filename)
            return "SparseML ResNet (SparseZoo training/model.pth)"
        module = pruned_resnet(entry.arch, entry.method, entry.sparsity, seed)
        if entry.method == "acdc":
            _save_torch(to_ist(module), folder / entry.filename)
            return "IST model_state_dict, module. + _layer/_weight_mask wrappers"
        if entry.method == "rigl":
            _save_torch(to_resnet_tf(module), folder / entry.filename)
            return "ResnetTF (Iofinova converted RigL)"
        weights, masks = to_lottery_ticket(module)
        _save_torch(weights, folder / entry.filename)
        _save_torch(masks, folder / lt_mask_filename(entry.filename))
        assert float(name.rsplit("-", 1)[1]) in LT_LEVELS
        return "lottery ticket weights + mask (model. prefix)"
    if entry.method == "vvtq":
        _save_torch(vvtq_file(trained_vvtq(entry.arch, entry.bits, seed=seed, mse=False)), folder / entry.filename)
        return "VVTQ train_VVTQ.py checkpoint (module. prefix, alpha[7], nbits, init_state)"
    if entry.arch in ("deit_tiny", "swin_tiny"):
        return _write_timm_hub(entry.arch, seed)
    if entry.arch == "clip_vit_l14_336":
        return _write_clip(entry, seed)
    raise KeyError(f"no fake writer for model {name!r}")


def _write_timm_hub(arch: str, seed: int) -> str:
    """timm's pretrained file as ``hf_hub_download`` caches it: ``models--timm--<name>/snapshots/<rev>/``."""
    import timm
    from huggingface_hub import constants
    from safetensors.torch import save_file

    from ..models.vvtq import TIMM_NAMES

    name = TIMM_NAMES[arch]
    repo = timm.models.get_pretrained_cfg(name).hf_hub_id
    base = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"
    revision = "0" * 40
    snapshot = base / "snapshots" / revision
    if not (snapshot / "model.safetensors").exists():
        torch.manual_seed(seed)
        model = timm.create_model(name.split(".")[0], pretrained=False)
        snapshot.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(snapshot / "model.safetensors"))
        (base / "refs").mkdir(parents=True, exist_ok=True)
        (base / "refs" / "main").write_text(revision)
    return "timm safetensors in the Hugging Face hub cache"


def _write_clip(entry: Any, seed: int) -> str:
    from ..models.clip_models import UPOP_KEEP, ClipModel, structured_prune
    from ..models.clip_tokenizers import tokenizer_file_hint

    folder = paths.checkpoints_dir()
    hint = tokenizer_file_hint()
    if not hint.exists():
        hint.parent.mkdir(parents=True, exist_ok=True)
        clip_bpe_tokenizer(_clip_corpus()).save(str(hint))
    torch.manual_seed(seed)
    model = ClipModel(CLIP_L14_336)
    tag = entry.name.split("/", 1)[1]
    if tag == "openai":
        _save_torch(openai_state_dict(model), folder / entry.filename)
        return "OpenAI CLIP state dict (+ input_resolution / context_length / vocab_size)"
    if tag in UPOP_KEEP:
        model = structured_prune(model, UPOP_KEEP[tag])
    _save_torch(upop_file(model), folder / entry.filename)
    return "UPop {'model': ...} with momentum copies and queues" + (", sliced blocks" if tag in UPOP_KEEP else "")


def _clip_corpus() -> list[str]:
    """Text the fake CLIP tokenizer is trained on: the prompt templates and every class name here."""
    from ..clip import templates

    texts = [templates.BAHNG_TEMPLATE, *templates.CLIP_IMAGENET_TEMPLATES]
    names = [*CIFAR_CLASSES, *DTD_CLASSES, *PET_BREEDS, *EUROSAT_CLASSES, *CALTECH_FOLDERS]
    return texts + [n.replace("_", " ") for n in names] * 3
