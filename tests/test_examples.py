"""The examples in examples/ learn: each one's main() runs with small settings and must beat its
chance level by a wide margin, so an example cannot silently rot (an API change breaks it, a
training bug leaves it at chance).

Thresholds come from the chance levels, not from previous runs:

- adding problem: always predicting the mean 1.0 gives MSE 1/6 = 0.167; a model that uses the
  two marked values gets close to 0 (GRU and LSTM do within a few hundred steps at T = 30). We
  require < 0.05, under a third of the baseline.
- digits: 10 balanced classes, chance 10 %; we require > 80 % after 5 epochs.
- character LM: the unigram entropy of the text is what a model that ignores context achieves;
  we require validation bits per character at least 1 bit below it (each character predicted
  with, on geometric average, twice the unigram model's probability).

The digits example needs scikit-learn (its data set): missing, it fails the test when
GATEDRNN_REQUIRE_PEERS=1 (CI) and skips it otherwise.
"""

import importlib.util
import math
import os

import numpy as np
import pytest

from conftest import require_peer

_EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "examples")


def load_example(name):
    path = os.path.join(_EXAMPLES, name + ".py")
    spec = importlib.util.spec_from_file_location(f"gatedrnn_example_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install counts as missing
        return False
    return True


def test_adding_problem_gated_cells_learn(tmp_path):
    ex = load_example("adding_problem")
    T = 30
    res = ex.main(["--lengths", str(T), "--cells", "gru", "lstm", "--max-steps", "1200",
                   "--budget", "120", "--eval-every", "100", "--val-size", "256",
                   "--seed", "0", "--out-dir", str(tmp_path)])
    assert res["baseline"] == pytest.approx(1 / 6)
    for cell in ("gru", "lstm"):
        mse = res["mse"][T][cell]
        assert mse < 0.05, f"{cell} at T={T}: validation MSE {mse:.4f}, baseline 0.167"
        curve = res["curves"][T][cell]
        assert curve[0][0] == 0.0 and len(curve) >= 2
        assert all(b[0] >= a[0] for a, b in zip(curve, curve[1:]))   # time goes forward
        assert 0 < res["steps"][T][cell] <= 1200
        norms = res["grad_norms"][cell]
        for when in ("init", "trained"):
            assert norms[when].shape == (T,)
            assert np.all(np.isfinite(norms[when])) and norms[when][-1] > 0
    if _has_matplotlib():
        assert [os.path.basename(p) for p in res["pngs"]] == ["adding_mse.png",
                                                            "adding_grad_norm.png"]
        for p in res["pngs"]:
            assert os.path.getsize(p) > 1000
    else:
        assert res["pngs"] == []


def test_adding_problem_data_and_baseline():
    ex = load_example("adding_problem")
    rng = np.random.default_rng(0)
    x, y = ex.adding_problem(20000, 10, rng)
    assert x.shape == (20000, 10, 2) and y.shape == (20000, 1)
    markers = x[:, :, 1]
    assert np.all(markers.sum(axis=1) == 2)
    assert np.all(markers[:, :5].sum(axis=1) == 1) and np.all(markers[:, 5:].sum(axis=1) == 1)
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * markers).sum(axis=1), rtol=1e-6)
    # the baseline the example quotes: predicting 1.0 has MSE Var(U1 + U2) = 1/6
    assert np.mean((y - 1.0) ** 2) == pytest.approx(1 / 6, abs=0.01)


def test_digits_learns(tmp_path):
    require_peer("sklearn")
    ex = load_example("digits")
    res = ex.main(["--epochs", "5", "--verbose", "0", "--seed", "0", "--out-dir", str(tmp_path)])
    assert res["test_accuracy"] > 0.8, f"test accuracy {res['test_accuracy']:.3f}, chance 0.1"
    assert 1 <= res["epochs"] <= 5
    assert len(res["pngs"]) == (1 if _has_matplotlib() else 0)


def test_char_lm_beats_unigram(tmp_path):
    ex = load_example("char_lm")
    res = ex.main(["--corpus-bytes", "100000", "--units", "64", "--seq-len", "50",
                   "--batch-size", "16", "--epochs", "4", "--lr", "1e-2",
                   "--sample-length", "60", "--verbose", "0", "--seed", "0",
                   "--out-dir", str(tmp_path)])
    assert 2 < res["unigram_bits"] < math.log2(res["vocab_size"])
    assert res["val_bits_per_char"] < res["unigram_bits"] - 1.0, (
        f"validation {res['val_bits_per_char']:.3f} bits/char, unigram entropy "
        f"{res['unigram_bits']:.3f}")
    assert set(res["samples"]) == {0.5, 1.0}
    for text in res["samples"].values():
        assert text.startswith("def ") and len(text) == len("def ") + 60
        assert "\x00" not in text                    # the unknown id is never sampled
    assert len(res["pngs"]) == (1 if _has_matplotlib() else 0)


def test_char_lm_corpus_is_deterministic():
    ex = load_example("char_lm")
    a, n_files = ex.load_corpus(50_000)
    b, _ = ex.load_corpus(50_000)
    assert a == b and len(a.encode("utf-8")) <= 50_000 and n_files >= 1
    vocab = ex.Vocabulary(a, min_count=5)
    ids = vocab.encode(a)
    assert ids.min() >= 0 and ids.max() < len(vocab)
    known = "".join(c for c in a if c in vocab.index)
    assert vocab.decode(vocab.encode(known)) == known
    x, y = ex.windows(ids, 50)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    assert x[1, 0] == y[0, -1]
