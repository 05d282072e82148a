"""The README's Python examples run as written.

Blocks that use no peer library run in order, sharing one namespace (the tour builds on
itself). Blocks that import a peer (torch, keras, onnx, onnxruntime: the "Moving models between
systems" examples) each run on their own, through require_peer, so they fail in CI when the
peer is missing instead of skipping.
"""

import os
import pathlib
import re

import pytest

from conftest import require_peer

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
PEERS = ("torch", "keras", "onnxruntime", "onnx")


def _blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def _peers_of(block):
    return [p for p in PEERS if re.search(rf"^\s*(import|from) {p}\b", block, re.M)]


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # the tour saves a model file in the current directory
    blocks = [b for b in _blocks() if not _peers_of(b)]
    assert len(blocks) >= 3, "the README's tour has at least three Python blocks"
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    # the tour's results have the shapes the README states
    T, B, H = namespace["T"], namespace["B"], namespace["H"]
    assert namespace["y"].shape == (T, B, H)
    assert namespace["g"].dh_seq.shape == (T, B, H)
    assert namespace["y2"].shape == (T, B, 2 * H) and namespace["h_n2"].shape == (2, B, H)
    assert namespace["h"].shape == (1, H)


PEER_BLOCKS = [b for b in _blocks() if _peers_of(b)]


@pytest.mark.peers
@pytest.mark.parametrize("block", PEER_BLOCKS,
                         ids=[f"{'+'.join(_peers_of(b))}-{i}" for i, b in enumerate(PEER_BLOCKS)])
def test_readme_interop_blocks_run(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "keras" in _peers_of(block):
        os.environ.setdefault("KERAS_BACKEND", "torch")
    for peer in _peers_of(block):
        require_peer(peer)
    exec(compile(block, str(README), "exec"), {})
