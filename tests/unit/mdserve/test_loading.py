from __future__ import annotations

from pathlib import Path

import pytest

from mdserve.detect import detect
from mdserve.errors import ModelLoadError
from mdserve.loader import load_runtime, verify
from mdserve.sources import artifact_sha256, fetch, sha256_file, sha256_tree

pytestmark = pytest.mark.unit


def test_detects_single_artifacts_and_refuses_ambiguity(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"x")
    assert detect(tmp_path).format == "sklearn"
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"ambiguous.*MDSERVE_MODEL_FORMAT"):
        detect(tmp_path)
    assert detect(tmp_path, "onnx").path.name == "model.onnx"
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"x")
    assert detect(saved).format == "tensorflow"
    with pytest.raises(ModelLoadError, match="no model found"):
        detect(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty


def test_unpinned_pickles_are_refused_unless_trusted(iris_file: Path) -> None:
    artifact = detect(iris_file)
    with pytest.raises(ModelLoadError, match="MDSERVE_TRUST_PICKLE"):
        verify(artifact, None, "", trust_pickle=False)
    assert verify(artifact, None, "", trust_pickle=True) == sha256_file(iris_file)
    assert verify(artifact, None, sha256_file(iris_file), trust_pickle=False) == sha256_file(iris_file)
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        verify(artifact, None, "0" * 64, trust_pickle=True)


def test_corrupt_pickle_is_a_load_error(tmp_path: Path) -> None:
    broken = tmp_path / "model.pkl"
    broken.write_bytes(b"not a pickle")
    with pytest.raises(ModelLoadError, match="cannot unpickle"):
        load_runtime(detect(broken))


def test_tree_hash_depends_on_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"1")
    first = sha256_tree(tmp_path)
    (tmp_path / "a").rename(tmp_path / "b")
    assert sha256_tree(tmp_path) != first
    assert artifact_sha256(tmp_path) == sha256_tree(tmp_path)


def test_local_and_unknown_sources(tmp_path: Path, iris_file: Path) -> None:
    assert fetch(str(iris_file), tmp_path).path == iris_file
    assert fetch(f"file://{iris_file}", tmp_path).path == iris_file
    with pytest.raises(ModelLoadError, match="does not exist"):
        fetch(str(tmp_path / "missing"), tmp_path)
    with pytest.raises(ModelLoadError, match="unsupported model URI scheme 's3'"):
        fetch("s3://bucket/model.joblib", tmp_path)


def test_hash_command_prints_the_pin(iris_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mdserve.__main__ import main

    assert main(["hash", str(iris_file)]) == 0
    assert capsys.readouterr().out.strip() == sha256_file(iris_file)
    assert main(["hash", str(iris_file.parent / "missing")]) == 2
