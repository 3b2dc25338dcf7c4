"""Where model artifacts come from: local paths (a PVC mount) and http(s) downloads. Other schemes
(s3://, gs://) plug in with `register_fetcher` without touching the loader."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mdserve.errors import ModelLoadError

_CHUNK = 1 << 20
_ARCHIVES = (".tar.gz", ".tgz", ".tar", ".zip")


@dataclass(frozen=True)
class Fetched:
    """A model artifact available on the local file system."""

    path: Path
    """A file or directory holding the model."""
    downloaded_sha256: str | None
    """sha256 of the bytes as downloaded (what a pin refers to for remote sources); None for local."""


Fetcher = Callable[[str, Path], Fetched]
_FETCHERS: dict[str, Fetcher] = {}


def register_fetcher(scheme: str, fetcher: Fetcher) -> None:
    """Teach the loader a URI scheme. A fetcher gets the URI and a cache directory and returns the
    local copy plus the sha256 of what it downloaded."""
    _FETCHERS[scheme] = fetcher


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(root: Path) -> str:
    """Hash of a directory: each regular file's relative path and content hash, in sorted order,
    one `"<sha256>  <path>\\n"` line each (the format of `sha256sum`), hashed again."""
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        lines.append(f"{sha256_file(path)}  {path.relative_to(root).as_posix()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def artifact_sha256(path: Path) -> str:
    """The pin of a local artifact: the file's sha256, or `sha256_tree` for a directory."""
    return sha256_tree(path) if path.is_dir() else sha256_file(path)


def _fetch_local(uri: str, _cache: Path) -> Fetched:
    parts = urlsplit(uri)
    path = Path(unquote(parts.path)) if parts.scheme == "file" else Path(uri)
    if not path.exists():
        raise ModelLoadError(f"model path {path} does not exist")
    return Fetched(path, None)


def _safe_extract(archive: Path, target: Path) -> None:
    target_resolved = target.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                if not (target / member).resolve().is_relative_to(target_resolved):
                    raise ModelLoadError(f"archive member {member!r} escapes the extraction directory")
            bundle.extractall(target)
        return
    with tarfile.open(archive) as bundle:
        bundle.extractall(target, filter="data")


def _fetch_http(uri: str, cache: Path) -> Fetched:
    name = Path(unquote(urlsplit(uri).path)).name or "model"
    key = hashlib.sha256(uri.encode()).hexdigest()[:16]
    destination = cache / key
    destination.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=destination, delete=False) as partial:
        try:
            with urllib.request.urlopen(uri, timeout=60) as response:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    partial.write(chunk)
        except OSError as exc:
            Path(partial.name).unlink(missing_ok=True)
            raise ModelLoadError(f"cannot download {uri}: {exc}") from exc
    downloaded = Path(partial.name)
    if name.endswith(_ARCHIVES):
        extracted = destination / "extracted"
        shutil.rmtree(extracted, ignore_errors=True)
        try:
            _safe_extract(downloaded, extracted)
        except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
            raise ModelLoadError(f"cannot unpack {name}: {exc}") from exc
        finally:
            downloaded.unlink(missing_ok=True)
        return Fetched(extracted, digest.hexdigest())
    final = destination / name
    downloaded.replace(final)
    return Fetched(final, digest.hexdigest())


register_fetcher("", _fetch_local)
register_fetcher("file", _fetch_local)
register_fetcher("http", _fetch_http)
register_fetcher("https", _fetch_http)


def fetch(uri: str, cache: Path) -> Fetched:
    """Make the artifact behind `uri` local. Blocking: call it from a worker thread."""
    scheme = urlsplit(uri).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter is a local path
        scheme = ""
    fetcher = _FETCHERS.get(scheme)
    if fetcher is None:
        supported = ", ".join(sorted(s + "://" for s in _FETCHERS if s))
        raise ModelLoadError(f"unsupported model URI scheme {scheme!r}; supported: local paths, {supported}")
    return fetcher(uri, cache)
