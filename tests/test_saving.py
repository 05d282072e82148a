"""gatedrnn.saving: round trips, exact paths, atomic replacement, clear errors, no pickle."""

import json
import os
import sys
import zipfile

import numpy as np
import pytest

from conftest import require_peer
from gatedrnn import saving

CONFIG = {"model": {"name": "seq", "layers": [{"class_name": "LSTM", "units": 8}]},
          "lr": 0.001, "flags": [True, None], "text": "héllo"}


def make_arrays():
    rng = np.random.default_rng(0)
    return {
        "weights/0000": rng.standard_normal((4, 3)).astype(np.float32),
        "lstm/weight_hh": rng.standard_normal((8, 2)),
        "optimizer/iterations": np.array(7, dtype=np.int64),
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 5), np.float32),
        "fortran": np.asfortranarray(rng.standard_normal((3, 2))),
    }


def assert_same_arrays(got, want):
    assert list(got) == list(want)  # order kept
    for k in want:
        assert got[k].dtype == want[k].dtype, k
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


@pytest.mark.parametrize("name", ["model.npz", "model.bin", "model", "ckpt-03-0.25.gdr"])
def test_roundtrip_at_exactly_the_path_given(tmp_path, name):
    path = tmp_path / name
    arrays = make_arrays()
    saving.write_archive(path, CONFIG, arrays)
    assert sorted(os.listdir(tmp_path)) == [name]  # no ".npz" appended, no temp left
    config, got = saving.read_archive(str(path))
    assert config == CONFIG
    assert_same_arrays(got, arrays)


def test_file_is_a_plain_npz_readable_without_pickle(tmp_path):
    path = tmp_path / "m.bin"
    saving.write_archive(path, CONFIG, {"a": np.arange(3)})
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {"a", "__gatedrnn_format__", "__gatedrnn_version__",
                                  "__gatedrnn_config__"}
        assert str(npz["__gatedrnn_format__"]) == "gatedrnn-model"
        assert int(npz["__gatedrnn_version__"]) == 1
        assert json.loads(npz["__gatedrnn_config__"].tobytes().decode()) == CONFIG
        np.testing.assert_array_equal(npz["a"], np.arange(3))


def test_overwrite_replaces_and_keeps_mode(tmp_path):
    path = tmp_path / "m.npz"
    saving.write_archive(path, {"v": 1}, {"a": np.zeros(2)})
    os.chmod(path, 0o640)
    saving.write_archive(path, {"v": 2}, {"b": np.ones(3)})
    config, arrays = saving.read_archive(path)
    assert config == {"v": 2} and list(arrays) == ["b"]
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_new_file_gets_umask_mode_not_0600(tmp_path):
    path = tmp_path / "m.npz"
    old = os.umask(0o022)
    try:
        saving.write_archive(path, {}, {})
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644


def _failing_writer(fileobj, members):
    fileobj.write(b"PK\x03\x04 partial archive bytes")
    raise RuntimeError("disk on fire")


def test_failure_mid_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    saving.write_archive(path, CONFIG, make_arrays())
    before = path.read_bytes()
    monkeypatch.setattr(saving, "_write_npz", _failing_writer)
    with pytest.raises(RuntimeError, match="disk on fire"):
        saving.write_archive(path, {"other": True}, {"x": np.ones(4)})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]  # the temporary file was removed
    monkeypatch.undo()
    config, _ = saving.read_archive(path)
    assert config == CONFIG


def test_failure_without_previous_file_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(saving, "_write_npz", _failing_writer)
    with pytest.raises(RuntimeError):
        saving.write_archive(tmp_path / "new.npz", {}, {"x": np.ones(1)})
    assert os.listdir(tmp_path) == []


def test_failure_in_replace_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    saving.write_archive(path, {"v": 1}, {"a": np.zeros(1)})
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("replace failed")

    monkeypatch.setattr(saving.os, "replace", broken_replace)
    with pytest.raises(OSError, match="replace failed"):
        saving.write_archive(path, {"v": 2}, {"a": np.ones(1)})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]


# --------------------------------------------------------------------------------------------
# Reading bad files
# --------------------------------------------------------------------------------------------


@pytest.fixture
def good_bytes(tmp_path):
    path = tmp_path / "good.npz"
    saving.write_archive(path, CONFIG, make_arrays())
    return path.read_bytes()


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, good_bytes, cut):
    path = tmp_path / "cut.npz"
    path.write_bytes(good_bytes[:int(len(good_bytes) * cut)])
    with pytest.raises(ValueError, match=r"cut\.npz.*not a gatedrnn file"):
        saving.read_archive(path)


@pytest.mark.parametrize("content", [b"", b"hello, world\n" * 10, os.urandom(1000),
                                     b"\x93NUMPY garbage"])
def test_garbage_file(tmp_path, content):
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"junk\.npz.*not a gatedrnn file"):
        saving.read_archive(path)


def test_corrupted_member_data(tmp_path, good_bytes):
    # flip bytes inside the first member's data: the zip CRC check must catch it
    data = bytearray(good_bytes)
    start = data.index(b"\x93NUMPY") + 200
    data[start:start + 16] = b"\xff" * 16
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a gatedrnn file"):
        saving.read_archive(path)


def test_plain_npz_and_npy_are_rejected(tmp_path):
    with open(tmp_path / "plain.npz", "wb") as f:
        np.savez(f, a=np.zeros(3))
    with pytest.raises(ValueError, match="marker.*missing"):
        saving.read_archive(tmp_path / "plain.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match="not a gatedrnn file"):
        saving.read_archive(tmp_path / "single.npy")


def _write_raw_npz(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in members.items():
            with zf.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, np.asarray(arr), allow_pickle=True)


def _raw_members(**overrides):
    members = {"__gatedrnn_format__": np.array("gatedrnn-model"),
               "__gatedrnn_version__": np.array(1, np.int64),
               "__gatedrnn_config__": np.frombuffer(b"{}", np.uint8)}
    members.update(overrides)
    return members


def test_wrong_marker_newer_version_bad_config(tmp_path):
    path = tmp_path / "x.npz"
    _write_raw_npz(path, _raw_members(__gatedrnn_format__=np.array("keras-model")))
    with pytest.raises(ValueError, match="marker.*keras-model"):
        saving.read_archive(path)
    _write_raw_npz(path, _raw_members(__gatedrnn_version__=np.array(2, np.int64)))
    with pytest.raises(ValueError, match="version 2.*newer"):
        saving.read_archive(path)
    _write_raw_npz(path, _raw_members(__gatedrnn_config__=np.frombuffer(b"{not json", np.uint8)))
    with pytest.raises(ValueError, match="JSON"):
        saving.read_archive(path)
    _write_raw_npz(path, _raw_members())
    assert saving.read_archive(path) == ({}, {})


def test_pickled_member_is_never_unpickled(tmp_path):
    path = tmp_path / "evil.npz"
    _write_raw_npz(path, _raw_members(payload=np.array([{"a": 1}, None], dtype=object)))
    with pytest.raises(ValueError, match="not a gatedrnn file"):
        saving.read_archive(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        saving.read_archive(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        saving.write_archive(tmp_path / "missing_dir" / "m.npz", {}, {})
    with pytest.raises(IsADirectoryError):
        saving.read_archive(tmp_path)


# --------------------------------------------------------------------------------------------
# Refusing what cannot be stored safely
# --------------------------------------------------------------------------------------------


def test_object_arrays_config_and_names_are_checked(tmp_path):
    path = tmp_path / "m.npz"
    with pytest.raises(TypeError, match=r"arrays\['bad'\].*object"):
        saving.write_archive(path, {}, {"bad": np.array([1, "a", None], dtype=object)})
    with pytest.raises(TypeError, match="object"):
        saving.write_archive(path, {}, {"ragged": np.array([np.zeros(2), np.zeros(3)],
                                                            dtype=object)})
    with pytest.raises(TypeError, match="config.*JSON"):
        saving.write_archive(path, {"arr": np.zeros(2)}, {})
    with pytest.raises(TypeError, match="config"):
        saving.write_archive(path, [1, 2], {})
    with pytest.raises(ValueError, match="reserved"):
        saving.write_archive(path, {}, {"__gatedrnn_config__": np.zeros(1)})
    with pytest.raises(TypeError, match="keys"):
        saving.write_archive(path, {}, {3: np.zeros(1)})
    assert not os.path.exists(path)


# --------------------------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------------------------


def test_safetensors_roundtrip(tmp_path):
    require_peer("safetensors")
    path = tmp_path / "model.safetensors"
    arrays = {k: v for k, v in make_arrays().items()}
    saving.write_archive(path, CONFIG, arrays)
    assert os.listdir(tmp_path) == ["model.safetensors"]
    config, got = saving.read_archive(path)
    assert config == CONFIG
    assert_same_arrays(got, arrays)
    import safetensors.numpy as st  # an ordinary safetensors file, readable by the package
    assert set(st.load_file(str(path))) == set(arrays)
    with pytest.raises(TypeError, match="safetensors"):
        saving.write_archive(path, {}, {"c": np.zeros(2, np.complex64)})


def test_safetensors_foreign_file_rejected(tmp_path):
    st = require_peer("safetensors.numpy")
    path = tmp_path / "other.safetensors"
    st.save_file({"a": np.zeros(2, np.float32)}, str(path))
    with pytest.raises(ValueError, match="marker"):
        saving.read_archive(path)
    path.write_bytes(b"\x05")
    with pytest.raises(ValueError, match="not a gatedrnn file"):
        saving.read_archive(path)


def test_safetensors_missing_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    path = tmp_path / "m.safetensors"
    with pytest.raises(ImportError, match="pip install safetensors"):
        saving.write_archive(path, {}, {"a": np.zeros(1)})
    assert os.listdir(tmp_path) == []
    path.write_bytes(b"anything")
    with pytest.raises(ImportError, match="pip install safetensors"):
        saving.read_archive(path)
