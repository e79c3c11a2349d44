"""The runtime never imports torch, timm or torchvision."""

from __future__ import annotations

import ast

from conftest import MEDIA, REPO, run_cli

FORBIDDEN = ("torch", "timm", "torchvision")

# Make importing torch & co. fail, run the CLI, then check none of them was even attempted.
BLOCK_AND_RUN = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {forbidden!r}:
            raise ImportError('blocked for this test: ' + name)
        return None
sys.meta_path.insert(0, Block())
from fer_edge.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})
assert not loaded, loaded
sys.exit(code)
""".format(forbidden=set(FORBIDDEN))


def test_cli_runs_where_importing_torch_fails(tmp_path, tiny_onnx, request):
    import importlib.util
    import platform

    models = [tiny_onnx]
    # OpenVINO is a default dependency on x86 (and must be there); the Raspberry Pi install leaves it out
    if importlib.util.find_spec("openvino") is not None or platform.machine().lower() in ("x86_64", "amd64"):
        models.append(request.getfixturevalue("tiny_ir"))
    for model in models:
        out = tmp_path / f"{model.suffix}.jsonl"
        p = run_cli("run", "--image", str(MEDIA / "two_people_obama_biden.jpg"), "--model", str(model),
                    "--json", str(out), python_code=BLOCK_AND_RUN)
        assert p.returncode == 0, p.stderr
        assert len(out.read_text().splitlines()) == 2
    p = run_cli("run", "--video", str(MEDIA / "video_talking_woman_15s.mp4"), "--model", str(tiny_onnx),
                "--max-frames", "20", "--json", str(tmp_path / "v.jsonl"), python_code=BLOCK_AND_RUN)
    assert p.returncode == 0, p.stderr
    assert len((tmp_path / "v.jsonl").read_text().splitlines()) == 20


def test_runtime_sources_import_no_torch():
    """No module of runtime/ names torch, timm or torchvision in any import, at any level."""
    for path in sorted((REPO / "runtime").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in FORBIDDEN, f"{path.name} imports {n}"


def test_base_install_requires_no_torch():
    """`pip install fer-edge` (no extras) must not pull in torch; [train] must."""
    import re

    text = (REPO / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    names = {re.match(r'\s*"([A-Za-z0-9_.-]+)', ln).group(1).lower() for ln in deps.splitlines() if '"' in ln}
    assert names and not names & set(FORBIDDEN), names
    train = re.search(r"^train = \[(.*?)^\]", text, re.S | re.M).group(1)
    assert '"torch' in train and '"timm' in train
