"""The README's Python examples run as written (in order, sharing one namespace)."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # the tour saves a model file in the current directory
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
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
