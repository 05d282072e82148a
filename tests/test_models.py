"""Sequential models: gradients through whole models, fit/evaluate/predict, save/load,
determinism, callbacks working with a real model."""

import os

import numpy as np
import pytest

import gatedrnn as gr
from conftest import numerical_gradient

L = gr.layers




def check_model_gradients(model, x, y, seed=None, rtol=1e-6, atol=1e-8, before=None):
    """Backprop through the whole model against central differences of the loss (float64).
    With ``seed`` the training forward is re-seeded before every evaluation, so dropout masks
    are the same fixed masks in every evaluation; ``before()`` runs before each forward."""
    def forward(training):
        if before is not None:
            before()
        if seed is not None:
            gr.config.set_random_seed(seed)
        y_pred, mask = model.forward(x, training=training)
        return y_pred, mask

    for p in model.parameters:
        p.zero_grad()
    y_pred, mask = forward(True)
    _, dy = model.loss.forward_backward(y, y_pred, mask=model._loss_mask(y_pred, mask))
    model.backward(dy)

    def loss():
        for p in model.parameters:
            p.mark_updated()
        y_pred, mask = forward(seed is not None)
        return float(model.loss(y, y_pred, mask=model._loss_mask(y_pred, mask)))

    for p in model.parameters:
        np.testing.assert_allclose(p.grad, numerical_gradient(loss, p.value), rtol=rtol, atol=atol,
                                   err_msg=p.name)


def tokens(rng, B=5, T=7, V=9, left=False):
    """Token sequences padded with 0 (right, or left as Keras pad_sequences does)."""
    lengths = np.array([T, 4, 1, 6, 3][:B])
    x = rng.integers(1, V, size=(B, T))
    valid = np.arange(T)[None, :] < lengths[:, None]
    if left:
        valid = valid[:, ::-1]
    return np.where(valid, x, 0)


@pytest.mark.parametrize("left", [False, True])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
def test_gradients_through_a_masked_bidirectional_stack(left, merge_mode):
    gr.config.set_random_seed(0)
    rng = np.random.default_rng(0)
    model = gr.Sequential([
        L.Embedding(9, 4, mask_zero=True, dtype="float64"),
        L.Bidirectional(L.LSTM(3, return_sequences=True, dtype="float64"),
                        merge_mode=merge_mode),
        L.GRU(3, dtype="float64"),
        L.Dense(4, activation="tanh", dtype="float64"),
        L.Dense(3, dtype="float64"),
    ])
    model.compile(optimizer="sgd", loss=gr.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = tokens(rng, left=left)
    y = rng.integers(0, 3, size=len(x))
    check_model_gradients(model, x, y)


@pytest.mark.parametrize("cell", [L.SimpleRNN, L.GRU, L.LSTM])
def test_gradients_many_to_many_with_masked_loss(cell):
    """Per-step outputs with a right-padded mask: the loss is averaged over valid steps only."""
    gr.config.set_random_seed(1)
    rng = np.random.default_rng(1)
    model = gr.Sequential([
        L.Masking(0.0, dtype="float64"),
        cell(4, return_sequences=True, dtype="float64"),
        L.Dense(2, activation="sigmoid", dtype="float64"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x = rng.standard_normal((4, 6, 3))
    x[1, 4:] = 0.0
    x[2, 1:] = 0.0
    y = (rng.random((4, 6, 2)) > 0.5).astype(np.float64)
    check_model_gradients(model, x, y)
    # padding targets do not matter
    y_pad = y.copy()
    y_pad[1, 4:] = 1 - y_pad[1, 4:]
    y_pred, mask = model.forward(x)
    assert model.loss(y, y_pred, mask=mask) == model.loss(y_pad, y_pred, mask=mask)


def test_gradients_one_to_many_with_dropout_and_stateless_repeat():
    gr.config.set_random_seed(2)
    rng = np.random.default_rng(2)
    model = gr.Sequential([
        gr.Input((2,)),                   # built now: building draws from the seeded generator
        L.Dense(3, activation="relu", dtype="float64"),
        L.Dropout(0.25, dtype="float64"),
        L.RepeatVector(5, dtype="float64"),
        L.GRU(4, return_sequences=True, dropout=0.2, recurrent_dropout=0.3, dtype="float64"),
        L.Dense(1, dtype="float64"),
    ])
    model.compile(optimizer="sgd", loss="mse")
    x = rng.standard_normal((3, 2)) + 0.5
    y = rng.standard_normal((3, 5, 1))
    check_model_gradients(model, x, y, seed=123)


def test_gradients_with_stateful_carry():
    """A stateful layer carries its state into the next batch as a constant: the gradient of the
    second batch treats the carried state as an input with no gradient."""
    gr.config.set_random_seed(4)
    rng = np.random.default_rng(4)
    lstm = L.LSTM(3, stateful=True, return_sequences=True, dtype="float64")
    model = gr.Sequential([gr.Input((4, 2)), lstm, L.GRU(3, dtype="float64"),
                           L.Dense(1, dtype="float64")])
    model.compile(optimizer="sgd", loss="mse")
    x1, x2 = rng.standard_normal((2, 3, 4, 2))
    y = rng.standard_normal((3, 1))
    model.forward(x1)                         # the first batch leaves its state behind
    carried = [s.copy() for s in lstm.states]
    assert np.abs(carried[0]).max() > 0

    def restore():
        lstm.states = [s.copy() for s in carried]
    check_model_gradients(model, x2, y, before=restore)
    # and the carried state matters: starting fresh gives another output
    restore()
    with_state = model.forward(x2)[0]
    lstm.reset_states()
    assert not np.allclose(model.forward(x2)[0], with_state)


def _digits_like(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 6, 4)).astype(np.float32) * 0.3
    x[np.arange(n), :, y] += 1.0          # the class is the channel that is high
    return x, y


def _classifier(seed=0):
    gr.config.set_random_seed(seed)
    model = gr.Sequential([gr.Input((6, 4)), L.GRU(8), L.Dense(3)])
    model.compile(optimizer=gr.optim.Adam(0.01, clipnorm=1.0),
                  loss=gr.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def test_fit_learns_and_reports_history():
    x, y = _digits_like()
    model = _classifier()
    hist = model.fit(x, y, batch_size=16, epochs=15, validation_split=0.25, verbose=0)
    assert set(hist.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(hist.history["loss"]) == 15
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert hist.history["val_accuracy"][-1] > 0.9
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc > 0.9
    assert model.predict(x, batch_size=7).shape == (len(x), 3)


def test_same_seed_same_bits_across_runs():
    x, y = _digits_like(60)
    runs = []
    for _ in range(2):
        model = _classifier(seed=42)
        hist = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
        runs.append((model.get_weights(), hist.history["loss"]))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1] == runs[1][1]


def test_save_load_round_trip_resumes_training_exactly(tmp_path):
    x, y = _digits_like(64)
    model = _classifier(seed=3)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    path = tmp_path / "model.gatedrnn"
    model.save(str(path))
    assert os.listdir(tmp_path) == ["model.gatedrnn"]       # exactly the path given
    loaded = gr.load_model(str(path))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.get_config() == model.get_config()
    # the optimizer state came along: one more epoch gives the same bits on both
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_load_rejects_other_architecture_and_corrupt_files(tmp_path):
    x, y = _digits_like(16)
    model = _classifier()
    model.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "w.npz")
    model.save_weights(path)
    other = gr.Sequential([gr.Input((6, 4)), L.LSTM(8), L.Dense(3)])
    with pytest.raises(ValueError, match="architectures differ"):
        other.load_weights(path)
    bad = tmp_path / "bad.gatedrnn"
    bad.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(ValueError, match="bad.gatedrnn"):
        gr.load_model(str(bad))


def test_atomic_save_keeps_the_previous_file(tmp_path, monkeypatch):
    x, y = _digits_like(16)
    model = _classifier()
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "m.gatedrnn"
    model.save(str(path))
    before = path.read_bytes()
    model.fit(x, y, epochs=1, verbose=0)

    # fail while the arrays are being written: several are in the temporary file already
    real_write = np.lib.format.write_array
    calls = {"n": 0}

    def failing_write(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk full (simulated)")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", failing_write)
    with pytest.raises(OSError, match="simulated"):
        model.save(str(path))
    assert calls["n"] == 5
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.gatedrnn"]


def test_early_stopping_restores_best_weights_and_checkpoint_writes(tmp_path):
    x, y = _digits_like(48)
    model = _classifier()
    seen = []
    ckpt = str(tmp_path / "ep{epoch:02d}.gatedrnn")
    es = gr.callbacks.EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    # a learning rate so large that the loss goes up after the first epochs
    sched = gr.callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 if epoch < 2 else 50.0)
    track = gr.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append((logs["loss"], model.get_weights())))
    hist = model.fit(x, y, epochs=10, batch_size=16, verbose=0,
                     callbacks=[es, sched, track, gr.callbacks.ModelCheckpoint(ckpt, monitor="loss")])
    losses = hist.history["loss"]
    assert len(losses) < 10
    best = int(np.argmin(losses))
    for a, b in zip(model.get_weights(), seen[best][1]):
        np.testing.assert_array_equal(a, b)
    assert sorted(os.listdir(tmp_path)) == [f"ep{e + 1:02d}.gatedrnn" for e in range(len(losses))]


def test_sequential_rejects_bad_use():
    model = gr.Sequential([gr.Input((5, 3)), L.LSTM(4)])
    with pytest.raises(ValueError, match="return_state"):
        model.add(L.GRU(3, return_state=True))
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(np.zeros((2, 5, 3)), np.zeros((2, 4)))
    model.compile(loss="mse")
    with pytest.raises(ValueError, match="3 features"):
        model.predict(np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match="y: expected 2 samples"):
        model.fit(np.zeros((2, 5, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(np.zeros((2, 5, 3)), np.zeros((2, 4)), batch_size=0)


def test_every_layer_config_round_trips_through_a_saved_model(tmp_path):
    """All layer types with non-default options: save, load, same config, same predictions."""
    gr.config.set_random_seed(9)
    model = gr.Sequential([
        gr.Input((7,), dtype="int64"),
        L.Embedding(12, 5, mask_zero=True, embeddings_initializer="glorot_uniform"),
        L.Bidirectional(L.GRU(4, return_sequences=True, reset_after=False,
                              kernel_initializer="torch_uniform"), merge_mode="ave"),
        L.Dropout(0.2, noise_shape=(None, 1, None)),
        L.LSTM(3, return_sequences=True, go_backwards=True, unit_forget_bias=False,
               recurrent_dropout=0.1, zero_output_for_mask=True),
        L.SimpleRNN(3, activation="relu", use_bias=False, return_sequences=True),
        L.Dense(2, activation="softmax"),
    ])
    model.compile(optimizer=gr.optim.RMSprop(0.01, global_clipnorm=1.0),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = np.concatenate([tokens(rng, T=7, V=12), tokens(rng, T=7, V=12, left=True)])
    y = np.eye(2)[rng.integers(0, 2, (len(x), 7))]
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    path = str(tmp_path / "all.gatedrnn")
    model.save(path)
    loaded = gr.load_model(path)
    assert loaded.get_config() == model.get_config()
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert type(loaded.optimizer) is gr.optim.RMSprop
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for layer in model.layers:
        again = type(layer).from_config(layer.get_config())
        assert again.get_config() == layer.get_config()


def test_stop_training_from_a_batch_callback_stops_after_that_batch():
    x, y = _digits_like(64)
    model = _classifier()
    batches = []

    class Stop(gr.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(batch)
            if batch == 2:
                self.model.stop_training = True

    hist = model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[Stop()])
    assert batches == [0, 1, 2]
    assert len(hist.history["loss"]) == 1


def test_optimizer_step_reaches_layers_that_keep_packed_weights():
    """apply() marks what it updates, so inference (packed weights) sees the new weights even
    in a hand-written loop without Sequential."""
    rng = np.random.default_rng(0)
    lstm = L.LSTM(4)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    before = lstm(x)
    y = lstm.forward(x, training=True)
    lstm.zero_grad()
    lstm.backward(np.ones_like(y))
    gr.optim.SGD(0.5).apply(lstm.parameters)
    assert not np.allclose(lstm(x), before)
    cell = lstm.get_cell()
    np.testing.assert_allclose(cell.step(x[:, 0])[0], lstm.forward(x[:, :1])[:], rtol=1e-5)


def test_edge_cases_of_the_layer_protocol():
    rng = np.random.default_rng(1)
    gru = L.GRU(3, return_sequences=True)
    gru.build((None, 4, 2))
    # a masked batch of zero steps
    assert gru(np.zeros((2, 0, 2), np.float32), mask=np.zeros((2, 0), bool)).shape == (2, 0, 3)
    # set_weights checks every array before changing any
    w = gru.get_weights()
    bad = [a + 1 for a in w[:-1]] + [np.zeros(5)]
    with pytest.raises(ValueError, match="expected shape"):
        gru.set_weights(bad)
    for a, b in zip(gru.get_weights(), w):
        np.testing.assert_array_equal(a, b)
    # backward after an inference forward is a clear error, not the previous batch's gradient
    x = rng.standard_normal((2, 4, 2)).astype(np.float32)
    gru.forward(x, training=True)
    gru.forward(x)
    with pytest.raises(RuntimeError, match="training=True"):
        gru.backward(np.ones((2, 4, 3), np.float32))
    # a built backward_layer keeps its weights inside Bidirectional
    back = L.GRU(3, return_sequences=True, go_backwards=True)
    back.build((None, 4, 2))
    kept = back.get_weights()
    bi = L.Bidirectional(L.GRU(3, return_sequences=True), backward_layer=back)
    bi(x)
    for a, b in zip(back.get_weights(), kept):
        np.testing.assert_array_equal(a, b)


def test_save_with_a_custom_metric_keeps_the_model_and_warns(tmp_path):
    x, y = _digits_like(16)
    model = _classifier()
    model.compile(optimizer="adam", loss=gr.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[gr.metrics.MeanMetricWrapper(lambda t, p: np.zeros(len(t)),
                                                        name="zero")])
    model.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "m.gatedrnn")
    with pytest.warns(UserWarning, match="compile"):
        model.save(path)
    loaded = gr.load_model(path)
    assert not loaded.compiled
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
