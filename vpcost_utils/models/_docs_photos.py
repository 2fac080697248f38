"""The part of docs/models.md about the larger calibration set and the paper's compression levels (issue #36).

Measured, not generated (the agreement rows take minutes to an hour of CPU each); the sources tables are
generated from the pins in ``photo_packages``, so they cannot drift from the code.
"""

from __future__ import annotations

from .photo_packages import HELD_OUT, PHOTOS, sources_markdown

PHOTOS_SECTION = """
## The larger calibration set: photographs from Debian's desktop-background packages

`models/photo_packages.py` takes {n_photos} photographs out of four Debian packages (fetched with `apt-get
download`, never installed; `python -m vpcost_utils.models.photo_packages` fetches or checks them all). Every image
in those packages and in `gnome-backgrounds`, `ukui-wallpapers`, `lomiri-wallpapers` and `sway-backgrounds` was
looked at; only photographs are listed (drawings, renders, composites and the doubtful `analogpattern`, `Kite`
and blurred `Ubuntu-Mate-*` images are left out; `gnome-backgrounds`, `ukui-wallpapers`, `lomiri-wallpapers` and
`sway-backgrounds` hold none). Each file is pinned by the package version, the .deb's sha256 and its own
sha256; a package that no longer matches its pin is refused, naming the package and the fix. Held out, by
photograph (never used by a calibration or recovery step; a recipe naming one is refused): {held_out}. With the
library's twelve calibration photographs the calibration set has {n_calibration}
(`photo_packages.calibration_names()`: the library's twelve first, then the packages' in turn, so the first
12 are the set the earlier recipes used). The images are decoded by Pillow and their short side resized to
512 px (Lanczos).

{sources}
"""


def photos_markdown() -> str:
    """The sources section of docs/models.md."""
    from .photo_packages import calibration_names

    return PHOTOS_SECTION.format(n_photos=len(PHOTOS), held_out=", ".join(f"`{n}`" for n in HELD_OUT),
                                 n_calibration=len(calibration_names()), sources=sources_markdown())
