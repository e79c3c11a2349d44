"""`fer-edge models fetch/list`: pinned SHA-256 sums, atomic downloads, no network in tests (file:// mirror)."""

from __future__ import annotations

import shutil

import pytest

from fer_edge.runtime import assets

from conftest import MEDIA, SHARED, assert_clean_error, run_cli


def test_fetch_from_mirror_verifies_and_is_found(tmp_path):
    dest = tmp_path / "models"
    mirror = (SHARED / "models").as_uri()
    p = run_cli("models", "fetch", "yunet", "res10-tf-model", "res10-tf-config", "--dir", str(dest),
                "--mirror", mirror)
    assert p.returncode == 0, p.stderr
    assert "sha256 verified" in p.stdout
    for name in ("yunet", "res10-tf-model", "res10-tf-config"):
        f = dest / assets.ASSETS[name].relpath
        assert f.is_file() and assets.sha256_of(f) == assets.ASSETS[name].sha256
    assert not list(dest.rglob("*.part"))
    again = run_cli("models", "fetch", "yunet", "--dir", str(dest), "--mirror", mirror)
    assert again.returncode == 0 and "already present" in again.stdout
    # the fetched files are what `run` finds through $FER_EDGE_HOME
    listing = run_cli("models", "list", env={"FER_EDGE_HOME": str(tmp_path)})
    assert str(dest / assets.ASSETS["yunet"].relpath) in listing.stdout
    assert "res10-caffe-model" in listing.stdout and "missing" in listing.stdout


def test_bad_checksum_deletes_the_file_and_fails(tmp_path):
    mirror = tmp_path / "mirror"
    rel = assets.ASSETS["yunet"].relpath
    (mirror / rel).parent.mkdir(parents=True)
    data = bytearray((SHARED / "models" / rel).read_bytes())
    data[1000] ^= 0xFF  # one flipped byte
    (mirror / rel).write_bytes(bytes(data))
    dest = tmp_path / "models"
    p = run_cli("models", "fetch", "yunet", "--dir", str(dest), "--mirror", mirror.as_uri())
    assert_clean_error(p, "checksum mismatch", "deleted")
    assert not (dest / rel).exists()
    assert not list(dest.rglob("*.part"))


def test_unreachable_source_and_unknown_name(tmp_path):
    p = run_cli("models", "fetch", "yunet", "--dir", str(tmp_path), "--mirror", (tmp_path / "nowhere").as_uri())
    assert_clean_error(p, "download from", "failed")
    assert not any(tmp_path.rglob("*.onnx*"))
    p = run_cli("models", "fetch", "haar")
    assert_clean_error(p, "unknown model file 'haar'")


def test_resolution_order(tmp_path, monkeypatch):
    home, cache = tmp_path / "home", tmp_path / "cache"
    rel = assets.ASSETS["yunet"].relpath
    monkeypatch.setenv("FER_EDGE_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    (cache / "fer-edge" / "models" / rel).parent.mkdir(parents=True)
    shutil.copy(SHARED / "models" / rel, cache / "fer-edge" / "models" / rel)
    assert assets.resolve("yunet") == cache / "fer-edge" / "models" / rel
    (home / "models" / rel).parent.mkdir(parents=True)
    shutil.copy(SHARED / "models" / rel, home / "models" / rel)
    assert assets.resolve("yunet") == home / "models" / rel  # $FER_EDGE_HOME before the cache
    explicit = tmp_path / "mine.onnx"
    shutil.copy(SHARED / "models" / rel, explicit)
    assert assets.resolve("yunet", explicit) == explicit  # an explicit path before both
    shutil.rmtree(home)
    shutil.rmtree(cache)
    assert assets.resolve("yunet") == assets.packaged_path("yunet")  # the package's copy last


def test_pinned_sums_match_shared_copies():
    in_shared = [n for n, a in assets.ASSETS.items() if (SHARED / "models" / a.relpath).is_file()]
    assert {"yunet", "res10-caffe-model", "res10-caffe-prototxt", "res10-tf-model", "res10-tf-config"} <= set(in_shared)
    for name in in_shared:
        a = assets.ASSETS[name]
        assert assets.sha256_of(SHARED / "models" / a.relpath) == a.sha256, name
        assert (SHARED / "models" / a.relpath).stat().st_size == a.size, name


def test_yunet_ships_in_the_package_with_licence_and_checksum():
    from fer_edge.runtime.models import assets_dir

    shipped = assets.packaged_path("yunet")
    a = assets.ASSETS["yunet"]
    assert shipped is not None and shipped.parent == assets_dir()
    assert assets.sha256_of(shipped) == a.sha256 and shipped.stat().st_size == a.size
    assert (shipped.parent / (shipped.name + ".sha256")).read_text().split()[0] == a.sha256
    assert "MIT License" in (shipped.parent / "face_detection_yunet.LICENSE-MIT.txt").read_text()
    assert "Apache License" in (shipped.parent / "face_detection_yunet.LICENSE-Apache-2.0.txt").read_text()
    assert "yunet" not in assets.default_fetch_names() and "res10-caffe-model" in assets.default_fetch_names()


def test_run_with_empty_model_folders_uses_the_shipped_yunet(tmp_path):
    env = {"FER_EDGE_HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = tmp_path / "faces.jsonl"
    p = run_cli("run", "--image", str(MEDIA / "group_selfie_6faces.jpg"), "--json", str(out), env=env)
    assert p.returncode == 0, p.stderr
    assert len(out.read_text().splitlines()) == 6
    listing = run_cli("models", "list", env=env)
    assert str(assets.packaged_path("yunet")) + " (shipped in the package)" in listing.stdout
    assert "res10-caffe-model" in listing.stdout and "missing" in listing.stdout


def test_plain_folder_mirror_and_files_readable_by_all(tmp_path):
    dest = tmp_path / "models"
    p = run_cli("models", "fetch", "yunet", "res10-tf-config", "--dir", str(dest), "--mirror", str(SHARED / "models"))
    assert p.returncode == 0, p.stderr
    for name in ("yunet", "res10-tf-config"):
        f = dest / assets.ASSETS[name].relpath
        assert assets.sha256_of(f) == assets.ASSETS[name].sha256
        assert f.stat().st_mode & 0o777 == 0o644, oct(f.stat().st_mode)


def test_failed_download_names_the_offline_routes(tmp_path):
    p = run_cli("models", "fetch", "res10-tf-config", "--dir", str(tmp_path), "--mirror", str(tmp_path / "nowhere"))
    assert_clean_error(p, "download from", "failed", "--mirror", "FER_EDGE_HOME", "--detector-model")


def test_a_file_that_exists_but_cannot_be_read_says_so(tmp_path, monkeypatch):
    from fer_edge.runtime.errors import FerEdgeError

    f = tmp_path / "face_detection_yunet_2023mar.onnx"
    shutil.copy(SHARED / "models" / assets.ASSETS["yunet"].relpath, f)
    f.chmod(0o200)
    monkeypatch.setattr(assets.os, "access", lambda path, mode: False)  # what a non-owner sees (root reads all)
    with pytest.raises(FerEdgeError, match="exists but this user cannot read it"):
        assets.resolve("yunet", f)
    bad = tmp_path / "junk.onnx"
    bad.write_bytes(b"junk")
    monkeypatch.undo()
    p = run_cli("run", "--image", str(MEDIA / "group_selfie_6faces.jpg"), "--detector-model", str(bad))
    assert_clean_error(p, "junk.onnx", "exists but is not a valid YuNet ONNX file")
