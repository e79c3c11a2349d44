"""Shared test setup: where ../shared is, tiny classifier files, a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FER_EDGE_SHARED", REPO.parent / "shared")).resolve()
MEDIA = SHARED / "media"
MANIFEST = json.loads((MEDIA / "manifest.json").read_text()) if (MEDIA / "manifest.json").is_file() else {}

sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config):
    # Detector files come from ../shared (its models/ layout is the one fer-edge searches), never the network;
    # an empty per-user cache so a developer's own cache cannot hide a missing file.
    os.environ["FER_EDGE_HOME"] = str(SHARED)
    os.environ["XDG_CACHE_HOME"] = str(Path(config.rootpath) / ".pytest_cache" / "xdg-empty")


def pytest_collection_modifyitems(config, items):
    if not SHARED.is_dir():
        skip = pytest.mark.skip(reason=f"shared data not found at {SHARED} (set FER_EDGE_SHARED)")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    from model_factory import default_meta, make_onnx

    return make_onnx(tmp_path_factory.mktemp("models") / "tiny.onnx", default_meta())


@pytest.fixture(scope="session")
def tiny_ir(tmp_path_factory, tiny_onnx) -> Path:
    from model_factory import default_meta, make_openvino_ir

    return make_openvino_ir(tmp_path_factory.mktemp("ir") / "tiny.xml", tiny_onnx, default_meta())


def run_cli(*args: str, env: dict | None = None, timeout: float = 900, python_code: str | None = None
            ) -> subprocess.CompletedProcess:
    """Run ``python -m fer_edge ARGS`` (or ``python -c python_code ARGS``) and capture its output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    cmd = [sys.executable, "-c", python_code, *args] if python_code else [sys.executable, "-m", "fer_edge", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout, stdin=subprocess.DEVNULL)


def assert_clean_error(proc: subprocess.CompletedProcess, *fragments: str, code: int = 2) -> None:
    """A bad-input failure: the exit code, one 'fer-edge: error:' line naming the fragments, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("fer-edge: error:")]
    assert len(lines) == 1, proc.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
