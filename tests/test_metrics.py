"""gatedrnn.metrics: hand-computed values, streaming over batches, masks, and how "accuracy"
is resolved (from the loss, or from the shapes as Keras 3 does)."""

import numpy as np
import pytest

from gatedrnn import losses, metrics


def test_sparse_categorical_accuracy_hand_computed():
    y_pred = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]])
    m = metrics.get("sparse_categorical_accuracy")
    m.update_state([1, 1, 2, 0], y_pred)  # argmax 1, 0, 2, 1 -> hits: yes, no, yes, no
    assert m.result() == 0.5
    assert m.name == "sparse_categorical_accuracy" and m.direction == "up"


def test_categorical_accuracy_and_ties_pick_the_first_maximum():
    y_true = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32)
    y_pred = np.array([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2], [0.5, 0.1, 0.4]], dtype=np.float32)
    m = metrics.CategoricalAccuracy()
    m.update_state(y_true, y_pred)  # hits: yes, yes (tie -> index 0), no
    assert m.result() == pytest.approx(2 / 3)


def test_binary_accuracy_threshold_and_logits():
    y_true = np.array([[1.0], [0.0], [1.0], [0.0]])
    probs = np.array([[0.9], [0.6], [0.5], [0.1]])  # predicts 1, 1, 0, 0: 2 of 4 right
    m = metrics.BinaryAccuracy()
    m.update_state(y_true, probs)
    assert m.result() == 0.5
    logits = np.array([[2.0], [-1.0], [0.5], [-3.0]])  # > 0: 1, 0, 1, 0 -> all right
    m = metrics.get("accuracy", loss=losses.BinaryCrossentropy(from_logits=True))
    assert isinstance(m, metrics.BinaryAccuracy) and m.threshold == 0.0
    m.update_state(y_true, logits)
    assert m.result() == 1.0


def test_mae_mse_hand_computed():
    y_true = np.array([[0.0, 2.0], [1.0, 1.0]])
    y_pred = np.array([[1.0, 0.0], [1.0, 4.0]])
    mae = metrics.get("mae")
    mae.update_state(y_true, y_pred)  # per sample (1 + 2) / 2 = 1.5 and (0 + 3) / 2 = 1.5
    assert mae.result() == 1.5 and mae.name == "mae" and mae.direction == "down"
    mse = metrics.get("mse")
    mse.update_state(y_true, y_pred)  # (1 + 4) / 2 = 2.5 and (0 + 9) / 2 = 4.5
    assert mse.result() == 3.5
    assert metrics.get("mean_absolute_error").name == "mean_absolute_error"


def test_streaming_over_batches_and_reset():
    m = metrics.SparseCategoricalAccuracy()
    eye = np.eye(3)
    m.update_state([0, 1], eye[[0, 2]])   # 1 of 2
    m.update_state([2, 2, 2], eye[[2, 2, 2]])  # 3 of 3
    assert m.result() == pytest.approx(4 / 5)
    m.reset_state()
    assert m.result() == 0.0
    m.update_state([1], eye[[1]])
    assert m.result() == 1.0


def test_masked_accuracy_over_time_steps():
    # (B=2, T=3, C=2): per-step hits, masked
    y_pred = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]],
                       [[0.3, 0.7], [0.7, 0.3], [0.5, 0.5]]])
    labels = np.array([[0, 0, 0], [1, 1, 1]])
    # argmax: [[0, 1, 0], [1, 0, 0]] -> hits [[1, 0, 1], [1, 0, 0]]
    mask = np.array([[True, True, False], [True, False, False]])
    m = metrics.SparseCategoricalAccuracy()
    m.update_state(labels, y_pred, mask=mask)  # valid hits: 1, 0, 1 -> 2 / 3
    assert m.result() == pytest.approx(2 / 3)
    m.update_state(labels, y_pred, mask=np.zeros((2, 3), bool))  # adds nothing
    assert m.result() == pytest.approx(2 / 3)
    unmasked = metrics.SparseCategoricalAccuracy()
    unmasked.update_state(labels, y_pred)
    assert unmasked.result() == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="mask"):
        m.update_state(labels, y_pred, mask=np.ones((2, 2), bool))


def test_masked_elementwise_metric_averages_the_last_axis_first():
    y_true = np.zeros((1, 2, 2))
    y_pred = np.array([[[1.0, 3.0], [10.0, 10.0]]])
    m = metrics.get("mae")
    m.update_state(y_true, y_pred, mask=np.array([[True, False]]))
    assert m.result() == 2.0  # only step 0: mean(|1|, |3|)


def test_accuracy_resolved_from_the_loss():
    cases = [
        ("sparse_categorical_crossentropy", metrics.SparseCategoricalAccuracy),
        (losses.CategoricalCrossentropy(from_logits=True), metrics.CategoricalAccuracy),
        ("binary_crossentropy", metrics.BinaryAccuracy),
        ("mse", metrics.Accuracy),
    ]
    for loss, cls in cases:
        for name in ("accuracy", "acc", "Accuracy"):
            m = metrics.get(name, loss=loss)
            assert type(m) is cls and m.name == name
    assert metrics.get("accuracy", loss="binary_crossentropy").threshold == 0.5
    exact = metrics.get("accuracy", loss="mse")
    exact.update_state([[1.0], [2.0]], np.array([[1.0], [2.5]]))
    assert exact.result() == 0.5


def test_auto_accuracy_uses_keras_shape_rule():
    m = metrics.get("accuracy")
    assert isinstance(m, metrics.AutoAccuracy)
    m.update_state([1, 0], np.array([[0.1, 0.9], [0.8, 0.2]]))  # labels: sparse
    assert isinstance(m.resolved, metrics.SparseCategoricalAccuracy) and m.result() == 1.0
    m = metrics.get("acc")
    m.update_state(np.array([[1.0], [0.0]]), np.array([[0.7], [0.7]]))  # last dim 1: binary
    assert isinstance(m.resolved, metrics.BinaryAccuracy) and m.result() == 0.5
    m = metrics.get("accuracy")
    m.update_state(np.eye(3)[[0, 1]], np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]))
    assert isinstance(m.resolved, metrics.CategoricalAccuracy) and m.result() == 0.5
    assert metrics.get("accuracy").result() == 0.0  # nothing seen yet


def test_mean_tracks_a_weighted_loss():
    m = metrics.Mean(name="loss")
    m.update_state(2.0, sample_weight=3)
    m.update_state(4.0, sample_weight=1)
    assert m.result() == pytest.approx((6 + 4) / 4)
    m.reset_state()
    m.update_state(np.array([1.0, 2.0, 3.0]))
    assert m.result() == 2.0
    with pytest.raises(ValueError, match="sample_weight"):
        m.update_state(np.array([1.0, 2.0]), sample_weight=np.array([1.0, 2.0, 3.0]))


def test_get_errors_and_config():
    with pytest.raises(ValueError, match=r"unknown.*'f1'.*mae"):
        metrics.get("f1")
    with pytest.raises(TypeError):
        metrics.get(1.5)
    inst = metrics.BinaryAccuracy(name="bin", threshold=0.3)
    assert metrics.get(inst) is inst
    again = metrics.get(metrics.serialize(inst))
    assert isinstance(again, metrics.BinaryAccuracy)
    assert (again.name, again.threshold) == ("bin", 0.3)
    with pytest.raises(ValueError, match="y_true"):
        metrics.SparseCategoricalAccuracy().update_state([5], np.array([[0.5, 0.5]]))
    with pytest.raises(TypeError, match="y_pred"):
        metrics.CategoricalAccuracy().update_state([[1, 0]], np.array([[1, 0]]))
