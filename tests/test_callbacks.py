"""gatedrnn.callbacks against a fake model and a scripted training loop (no real training)."""

import io
import os
import re

import numpy as np
import pytest

from conftest import require_peer
from gatedrnn import callbacks as C
from gatedrnn import metrics, optim


class FakeModel:
    """What callbacks may touch: weights, stop_training, save, save_weights, optimizer."""

    def __init__(self, metrics_list=()):
        self.weights = [np.zeros(2), np.zeros(3)]
        self.stop_training = False
        self.optimizer = optim.SGD(learning_rate=0.1)
        self.metrics = list(metrics_list)
        self.saved = []  # (kind, path, weights at the time)

    def get_weights(self):
        # views of the live arrays, as a model whose parameters are updated in place may give
        return list(self.weights)

    def set_weights(self, weights):
        for w, new in zip(self.weights, weights):
            w[...] = new

    def save(self, path):
        self.saved.append(("model", path, self.weights[0][0]))
        with open(path, "w") as f:
            f.write("model")

    def save_weights(self, path):
        self.saved.append(("weights", path, self.weights[0][0]))
        with open(path, "w") as f:
            f.write("weights")


def fit(model, callbacks, epoch_logs, steps=2, verbose=0, batch_logs=None):
    """Drive the hooks like fit: epoch e sets every weight to e (in place) then reports
    ``epoch_logs[e]``. Returns the CallbackList and the number of epochs run."""
    cbl = C.CallbackList(callbacks, add_history=True, add_progbar=True, model=model,
                         verbose=verbose, epochs=len(epoch_logs), steps=steps)
    model.stop_training = False
    cbl.on_train_begin()
    run = 0
    logs = {}
    for epoch, logs in enumerate(epoch_logs):
        cbl.on_epoch_begin(epoch)
        for step in range(steps):
            cbl.on_train_batch_begin(step)
            for w in model.weights:
                w[...] = epoch
            cbl.on_train_batch_end(step, dict(batch_logs or {"loss": 1.0 / (step + 1)}))
        logs = dict(logs)
        cbl.on_epoch_end(epoch, logs)
        run += 1
        if model.stop_training:
            break
    cbl.on_train_end(logs)
    return cbl, run


def val_losses(*values):
    return [{"loss": 1.0, "val_loss": v} for v in values]


# --------------------------------------------------------------------------------------------
# History, CallbackList, LambdaCallback
# --------------------------------------------------------------------------------------------


def test_history_records_every_epoch():
    model = FakeModel()
    logs = [{"loss": 0.5, "accuracy": 0.6}, {"loss": 0.4, "accuracy": 0.7},
            {"loss": 0.3, "accuracy": 0.9}]
    cbl, run = fit(model, [], logs)
    assert run == 3
    assert cbl.history.history == {"loss": [0.5, 0.4, 0.3], "accuracy": [0.6, 0.7, 0.9]}
    assert cbl.history.epoch == [0, 1, 2]
    assert model.history is cbl.history


def test_callback_list_defaults_and_validation():
    assert C.CallbackList([], add_progbar=True, verbose=0).progbar is None
    cbl = C.CallbackList([], add_history=True, add_progbar=True, verbose=2)
    assert isinstance(cbl.progbar, C.ProgressBar) and cbl.progbar.verbose == 2
    own = C.History()
    assert C.CallbackList([own], add_history=True).history is own
    with pytest.raises(TypeError, match=r"callbacks\[0\]"):
        C.CallbackList([object()])
    with pytest.raises(TypeError, match="list"):
        C.CallbackList(C.History())
    model = FakeModel()
    cbl = C.CallbackList([own], model=model, epochs=3)
    assert own.model is model and own.params == {"epochs": 3}


def test_lambda_callback_hooks_fire_in_order():
    events = []
    cb = C.LambdaCallback(
        on_train_begin=lambda logs: events.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: events.append(f"epoch_begin {epoch}"),
        on_train_batch_begin=lambda batch, logs: events.append(f"batch_begin {batch}"),
        on_train_batch_end=lambda batch, logs: events.append(f"batch_end {batch} {logs['loss']}"),
        on_epoch_end=lambda epoch, logs: events.append(f"epoch_end {epoch} {logs['val_loss']}"),
        on_train_end=lambda logs: events.append("train_end"),
        on_test_end=lambda logs: events.append("test_end"),
    )
    fit(FakeModel(), [cb], val_losses(0.5), steps=2)
    assert events == ["train_begin", "epoch_begin 0", "batch_begin 0", "batch_end 0 1.0",
                      "batch_begin 1", "batch_end 1 0.5", "epoch_end 0 0.5", "train_end"]
    C.CallbackList([cb]).on_test_end({})
    assert events[-1] == "test_end"
    with pytest.raises(TypeError, match="unknown hook"):
        C.LambdaCallback(on_epoch_finish=print)
    with pytest.raises(TypeError, match="on_epoch_end"):
        C.LambdaCallback(on_epoch_end=3)


# --------------------------------------------------------------------------------------------
# EarlyStopping
# --------------------------------------------------------------------------------------------


def test_early_stopping_stops_at_the_right_epoch_and_restores_best_weights():
    model = FakeModel()
    # best at epoch 1; epochs 2 and 3 do not improve: patience 2 runs out at epoch 3
    es = C.EarlyStopping(patience=2, restore_best_weights=True)
    cbl, run = fit(model, [es], val_losses(1.0, 0.8, 0.9, 0.85, 0.1, 0.1))
    assert run == 4 and es.stopped_epoch == 3 and es.best_epoch == 1 and es.best == 0.8
    assert all(np.all(w == 1) for w in model.weights)  # epoch 1's weights, not epoch 3's
    assert len(cbl.history.history["val_loss"]) == 4


def test_early_stopping_without_restore_keeps_last_weights():
    model = FakeModel()
    es = C.EarlyStopping(patience=1)
    _, run = fit(model, [es], val_losses(1.0, 1.5, 0.5))
    assert run == 2 and es.stopped_epoch == 1
    assert all(np.all(w == 1) for w in model.weights)


def test_restore_best_weights_even_when_patience_is_not_exhausted():
    model = FakeModel()
    es = C.EarlyStopping(patience=5, restore_best_weights=True)
    _, run = fit(model, [es], val_losses(0.9, 0.3, 0.6, 0.7))
    assert run == 4 and es.stopped_epoch == 0
    assert all(np.all(w == 1) for w in model.weights)


def test_early_stopping_min_delta_and_patience_zero():
    es = C.EarlyStopping(patience=1, min_delta=0.1)
    # 0.95 is better than 1.0 but not by more than 0.1: no improvement -> stop at epoch 1
    _, run = fit(FakeModel(), [es], val_losses(1.0, 0.95, 0.5))
    assert run == 2
    es = C.EarlyStopping(patience=0)
    _, run = fit(FakeModel(), [es], val_losses(1.0, 0.9, 0.95, 0.1))
    assert run == 3


def test_early_stopping_max_mode_from_metric_direction():
    acc = metrics.get("acc", loss="sparse_categorical_crossentropy")
    model = FakeModel(metrics_list=[acc])
    es = C.EarlyStopping(monitor="val_acc", patience=1)
    logs = [{"val_acc": a} for a in (0.5, 0.7, 0.6, 0.9)]
    _, run = fit(model, [es], logs)
    assert run == 3 and es.best == 0.7
    es = C.EarlyStopping(monitor="val_accuracy", patience=1, mode="min")
    _, run = fit(FakeModel(), [es], [{"val_accuracy": a} for a in (0.5, 0.7, 0.9)])
    assert run == 2


def test_early_stopping_baseline_and_start_from_epoch():
    # improving but never beating the baseline: wait is not reset, first non-improvement stops
    es = C.EarlyStopping(patience=2, baseline=0.5)
    _, run = fit(FakeModel(), [es], val_losses(0.9, 0.8, 0.85, 0.7, 0.6))
    assert run == 3
    es = C.EarlyStopping(patience=2)  # the same values without baseline keep going
    _, run = fit(FakeModel(), [es], val_losses(0.9, 0.8, 0.85, 0.7, 0.6))
    assert run == 5
    es = C.EarlyStopping(patience=0, start_from_epoch=2)
    _, run = fit(FakeModel(), [es], val_losses(0.1, 0.5, 0.9, 0.8, 0.85))
    # epochs 0 and 1 are ignored (else best = 0.1 and the stop would come at epoch 1)
    assert run == 5 and es.best == 0.8 and es.stopped_epoch == 4


def test_early_stopping_missing_metric_warns_and_continues():
    es = C.EarlyStopping(monitor="val_loss", patience=0)
    with pytest.warns(UserWarning, match=r"val_loss.*not available.*loss"):
        _, run = fit(FakeModel(), [es], [{"loss": 1.0}, {"loss": 2.0}, {"loss": 3.0}])
    assert run == 3


def test_early_stopping_unknown_direction_and_reuse():
    es = C.EarlyStopping(monitor="weird_quantity")
    with pytest.raises(ValueError, match="weird_quantity.*mode='max'"):
        fit(FakeModel(), [es], [{"weird_quantity": 1.0}])
    with pytest.warns(UserWarning, match="unknown"):
        C.EarlyStopping(mode="sideways")
    es = C.EarlyStopping(patience=1)
    fit(FakeModel(), [es], val_losses(0.1, 0.2, 0.3))
    _, run = fit(FakeModel(), [es], val_losses(5.0, 4.0, 3.0))  # fresh start, not best=0.1
    assert run == 3


# --------------------------------------------------------------------------------------------
# ModelCheckpoint
# --------------------------------------------------------------------------------------------


def test_checkpoint_formats_paths_with_one_based_epochs(tmp_path):
    model = FakeModel()
    pattern = str(tmp_path / "ckpt" / "{epoch:02d}-{val_loss:.2f}.npz")
    fit(model, [C.ModelCheckpoint(pattern)], val_losses(0.5, 0.25, 0.125))
    names = sorted(os.listdir(tmp_path / "ckpt"))
    assert names == ["01-0.50.npz", "02-0.25.npz", "03-0.12.npz"]
    assert [kind for kind, _, _ in model.saved] == ["model"] * 3


def test_checkpoint_save_best_only(tmp_path):
    model = FakeModel()
    path = str(tmp_path / "best.npz")
    ckpt = C.ModelCheckpoint(path, save_best_only=True, save_weights_only=True)
    fit(model, [ckpt], val_losses(0.5, 0.7, 0.3, 0.4))
    # saved after epochs 0 and 2 only (weights equal the epoch number at save time)
    assert [(kind, w) for kind, _, w in model.saved] == [("weights", 0.0), ("weights", 2.0)]
    assert ckpt.best == 0.3
    model = FakeModel()
    ckpt = C.ModelCheckpoint(str(tmp_path / "acc" / "acc-{epoch}.npz"), monitor="val_accuracy",
                             save_best_only=True)
    fit(model, [ckpt], [{"val_accuracy": a} for a in (0.5, 0.4, 0.8)])  # auto mode: max
    assert sorted(os.listdir(tmp_path / "acc")) == ["acc-1.npz", "acc-3.npz"]


def test_checkpoint_every_n_batches(tmp_path):
    model = FakeModel()
    ckpt = C.ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}.npz"), save_freq=3)
    fit(model, [ckpt], val_losses(1.0, 1.0), steps=4)
    # 8 batches in two epochs of 4: saves after the 3rd and 6th batch overall
    assert sorted(os.listdir(tmp_path)) == ["e1-b3.npz", "e2-b2.npz"]


def test_checkpoint_errors(tmp_path):
    ckpt = C.ModelCheckpoint(str(tmp_path / "{epoch}-{val_acc}.npz"))
    with pytest.raises(KeyError, match="val_acc"):
        fit(FakeModel(), [ckpt], val_losses(1.0))
    with pytest.raises(ValueError, match="save_freq"):
        C.ModelCheckpoint("x.npz", save_freq="batch")
    with pytest.warns(UserWarning, match="val_loss"):
        fit(FakeModel(), [C.ModelCheckpoint(str(tmp_path / "m.npz"), save_best_only=True)],
            [{"loss": 1.0}])
    assert os.path.exists(tmp_path / "m.npz")  # saved anyway, as Keras


# --------------------------------------------------------------------------------------------
# LearningRateScheduler
# --------------------------------------------------------------------------------------------


def test_learning_rate_scheduler_sets_the_optimizer_rate():
    model = FakeModel()
    seen = []
    sched = C.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch > 0 else lr)
    spy = C.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(
        model.optimizer.learning_rate))
    cbl, _ = fit(model, [sched, spy], val_losses(1.0, 1.0, 1.0))
    assert seen == [0.1, 0.05, 0.025]
    assert cbl.history.history["learning_rate"] == [0.1, 0.05, 0.025]


def test_learning_rate_scheduler_one_argument_form_and_errors(capsys):
    model = FakeModel()
    fit(model, [C.LearningRateScheduler(lambda epoch: 1.0 / (epoch + 1), verbose=1)],
        val_losses(1.0, 1.0))
    assert model.optimizer.learning_rate == 0.5
    assert "setting learning rate to 0.5" in capsys.readouterr().out
    with pytest.raises(ValueError, match="schedule returned"):
        fit(FakeModel(), [C.LearningRateScheduler(lambda e, lr: "fast")], val_losses(1.0))
    model = FakeModel()
    model.optimizer = None
    with pytest.raises(ValueError, match="learning_rate"):
        fit(model, [C.LearningRateScheduler(lambda e, lr: lr)], val_losses(1.0))


# --------------------------------------------------------------------------------------------
# ProgressBar
# --------------------------------------------------------------------------------------------

LINE = re.compile(r"^Epoch (\d+)/(\d+) - \d+\.\ds - (.*)$")


def test_progress_plain_lines_when_stdout_is_not_a_tty(capsys):
    logs = [{"loss": 0.5, "accuracy": 0.25, "val_loss": 0.123456},
            {"loss": 0.00001, "accuracy": 0.5, "val_loss": 0.1}]
    cbl, _ = fit(FakeModel(), [], logs, verbose=1)
    assert cbl.progbar._use_tqdm is False  # captured stdout is not a terminal
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    m0, m1 = LINE.match(lines[0]), LINE.match(lines[1])
    assert m0 and m1, lines
    assert m0.group(1, 2) == ("1", "2")
    assert m0.group(3) == "loss: 0.5000 - accuracy: 0.2500 - val_loss: 0.1235"
    assert m1.group(3) == "loss: 1.0000e-05 - accuracy: 0.5000 - val_loss: 0.1000"


def test_progress_verbose_2_is_plain_and_verbose_0_prints_nothing(capsys):
    fit(FakeModel(), [], val_losses(0.5), verbose=2)
    out = capsys.readouterr().out
    assert LINE.match(out.strip())
    fit(FakeModel(), [], val_losses(0.5), verbose=0)
    assert capsys.readouterr().out == ""


def test_progress_evaluate_outside_fit_prints_one_line():
    stream = io.StringIO()
    bar = C.ProgressBar(verbose=1, stream=stream)
    bar.on_test_begin()
    bar.on_test_end({"loss": 0.25, "accuracy": 0.75})
    assert re.fullmatch(r"\d+\.\ds - loss: 0\.2500 - accuracy: 0\.7500\n", stream.getvalue())


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_uses_tqdm_on_a_terminal():
    require_peer("tqdm")
    stream = FakeTTY()
    bar = C.ProgressBar(verbose=1, stream=stream)
    fit(FakeModel(), [bar], val_losses(0.5, 0.25), steps=3)
    assert bar._use_tqdm is True
    out = stream.getvalue()
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "3/3" in out
    assert "val_loss: 0.2500" in out
    assert not LINE.search(out.replace("\r", "\n"))  # not the plain format


def test_progress_verbose_2_on_a_terminal_stays_plain():
    stream = FakeTTY()
    bar = C.ProgressBar(verbose=2, stream=stream)
    fit(FakeModel(), [bar], val_losses(0.5))
    assert bar._use_tqdm is False and LINE.match(stream.getvalue().strip())
    with pytest.raises(ValueError, match="verbose"):
        C.ProgressBar(verbose=0)
