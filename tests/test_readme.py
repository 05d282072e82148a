"""The README's Python examples run as written.

Blocks that use no peer library run in order, sharing one namespace (the tour builds on
itself). Blocks that import a peer (torch, keras, onnx, onnxruntime: the "Moving models between
systems" examples) each run on their own, through require_peer, so they fail in CI when the
peer is missing instead of skipping.
"""

import os
import pathlib
import re
import subprocess
import sys

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


# The README's first set-up command ends in `python -m gatedrnn demo`, the main job.

def test_the_demo_runs_checks_every_cell_and_learns(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gatedrnn", "demo"], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    diffs = [float(d) for d in re.findall(r"max \|core - reference\| \(float64\) (\S+)", out)]
    assert len(diffs) == 5, out        # rnn tanh, rnn relu, both GRUs, LSTM
    assert max(diffs) <= 1e-9, out
    baseline = float(re.search(r"always predicting the mean target scores MSE (\S+)", out)[1])
    final = float(re.findall(r"training MSE (\S+)", out)[-1])
    # The GRU has learned to carry the two marked values to the last step: well below the
    # error of predicting the mean (0.163 for this seed; 40 epochs reach ~0.01).
    assert final < 0.5 * baseline, out


def test_the_demo_fails_when_the_core_and_the_reference_disagree(monkeypatch, capsys):
    import gatedrnn.reference as reference
    from gatedrnn.__main__ import main

    real = reference.lstm

    def off_by_a_little(*args, **kwargs):
        out = real(*args, **kwargs)
        out.y[...] += 1e-6
        return out

    monkeypatch.setattr(reference, "lstm", off_by_a_little)
    assert main(["demo", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert "FAILED: lstm: the core differs from gatedrnn.reference" in err
