"""`fer-edge models fetch/list`: pinned SHA-256 sums, atomic downloads, no network in tests (file:// mirror)."""

from __future__ import annotations

import shutil

from fer_edge.runtime import assets

from conftest import SHARED, assert_clean_error, run_cli


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


def test_pinned_sums_match_shared_copies():
    for name, a in assets.ASSETS.items():
        assert assets.sha256_of(SHARED / "models" / a.relpath) == a.sha256, name
        assert (SHARED / "models" / a.relpath).stat().st_size == a.size, name
