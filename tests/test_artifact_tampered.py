"""Damaged and hostile model files: each is refused with one ModelFileError line.

A hostile ``model.json`` may also carry a matching ``weights_sha256`` (the
checksum guards against accidents, not against an author), so the tampered
weights below get their digest rewritten: what stops them is the header check.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

import tabresnet
from tabresnet import artifact
from tabresnet.errors import ModelFileError

TINY = dict(num_blocks=[1], c_hidden=[8], max_epochs=1, progress="none", report=False)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One small trained run; each test works on a copy of its two files."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=80), "c": rng.choice(list("pqrstuvw"), 80)})
    df["y"] = df.a * 2
    out = tmp_path_factory.mktemp("tampered") / "run"
    # onehot_max_cardinality=2 puts "c" in an embedding, so the weights hold one.
    tabresnet.fit(df, "y", out=out, onehot_max_cardinality=2, **TINY)
    return {name: (out / name).read_bytes() for name in ("model.json", "model.safetensors")}


@pytest.fixture
def model_dir(saved, tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    for name, data in saved.items():
        (d / name).write_bytes(data)
    return d


def _meta(d: Path) -> dict:
    return json.loads((d / "model.json").read_text())


def _write_meta(d: Path, meta: dict) -> None:
    (d / "model.json").write_text(json.dumps(meta))


def _refused(d: Path, match: str) -> str:
    with pytest.raises(ModelFileError, match=match) as info:
        tabresnet.load(d)
    message = str(info.value)
    assert "\n" not in message
    return message


def _set(meta: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        meta = meta[p]
    if value is _DELETE:
        del meta[last]
    else:
        meta[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("format_version", "abc", "format_version must be a positive integer"),
        ("format_version", None, "format_version must be a positive integer"),
        ("format_version", 1.5, "format_version must be a positive integer"),
        ("format_version", True, "format_version must be a positive integer"),
        ("format_version", 0, "format_version must be a positive integer"),
        ("weights", 5, "weights must be a file name"),
        ("weights", "", "weights must be a file name"),
        ("weights_sha256", None, "weights_sha256 must be 64 hexadecimal digits"),
        ("weights_sha256", _DELETE, "weights_sha256 must be 64 hexadecimal digits"),
        ("config", None, "config must be an object"),
        ("schema", [], "schema must be an object"),
        ("preprocessor", "x", "preprocessor must be an object"),
        ("preprocessor.target", None, "preprocessor.target must be the target"),
        ("network", None, "network must be an object"),
        ("network.n_num", "3", "network.n_num must be a non-negative integer"),
        ("network.output_dim", 0, "network.output_dim must be a positive integer"),
        ("network.cardinalities", [0], "network.cardinalities must be a list of positive"),
        ("network.cardinalities", "9", "network.cardinalities must be a list of positive"),
        ("network.members", 0, "network.members must be a positive integer"),
        ("network.members", "2", "network.members must be a positive integer"),
        ("metrics", [1], "metrics must be an object"),
        ("preprocessor.target.mean", [1.0, 2.0], "preprocessing state is corrupted"),
        ("preprocessor.median", "x", "preprocessing state is corrupted"),
        ("schema.targets", "y", "schema is corrupted"),
        ("config.model.num_blocks", "many", "inconsistent"),
        ("network.n_num", 3, "inconsistent: network widths"),
        ("network.cardinalities", [4], "inconsistent: network widths"),
        ("schema.numeric", ["a", "zzz"], "the schema and the preprocessing disagree"),
    ],
)
def test_a_field_of_the_wrong_type_or_value_is_one_line(model_dir, field, value, match):
    meta = _meta(model_dir)
    _set(meta, field, value)
    _write_meta(model_dir, meta)
    _refused(model_dir, match)


@pytest.mark.parametrize("name", ["/etc/passwd", "../model.safetensors", "sub/../../x.bin"])
def test_weights_outside_the_model_directory_are_not_read(model_dir, name, monkeypatch):
    read = []
    original = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: read.append(p) or original(p))
    meta = _meta(model_dir)
    meta["weights"] = name
    _write_meta(model_dir, meta)
    _refused(model_dir, "outside its directory")
    assert read == []


@pytest.mark.parametrize("name", ["a\x00b", "x" * 5000, "sub/" * 2000 + "x"])
def test_a_weights_name_the_file_system_cannot_take_is_refused(model_dir, name):
    meta = _meta(model_dir)
    meta["weights"] = name
    _write_meta(model_dir, meta)
    _refused(model_dir, "unusable weights file")


def test_a_symlink_out_of_the_model_directory_is_refused(model_dir, tmp_path):
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes((model_dir / "model.safetensors").read_bytes())
    (model_dir / "link.safetensors").symlink_to(outside)
    meta = _meta(model_dir)
    meta["weights"] = "link.safetensors"
    _write_meta(model_dir, meta)
    _refused(model_dir, "outside its directory")


def test_weights_in_a_subfolder_of_the_model_directory_still_load(model_dir):
    (model_dir / "w").mkdir()
    (model_dir / "model.safetensors").rename(model_dir / "w" / "net.safetensors")
    meta = _meta(model_dir)
    meta["weights"] = "w/net.safetensors"
    _write_meta(model_dir, meta)
    assert tabresnet.load(model_dir).n_members == 1


# -- sizes in the config that the weights cannot hold: refused before building ----------


@pytest.fixture
def no_real_build(monkeypatch):
    """Fail the test if a network is built anywhere but on the meta device."""
    import torch

    original = artifact._build

    def guarded(*args):
        assert torch.empty(0).device.type == "meta", "a real network was built"
        return original(*args)

    monkeypatch.setattr(artifact, "_build", guarded)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("config.model.num_blocks", [1_000_000_000], r"needs at least 1000000\d* tensors"),
        ("network.members", 1_000_000_000, r"members=1000000000"),
    ],
)
def test_absurd_counts_are_refused_from_the_header_alone(model_dir, field, value, match,
                                                         monkeypatch):
    calls = []
    monkeypatch.setattr(artifact, "_build", lambda *a: calls.append(a))
    meta = _meta(model_dir)
    _set(meta, field, value)
    meta["format_version"] = 2
    _write_meta(model_dir, meta)
    _refused(model_dir, match)
    assert calls == []


def test_a_huge_width_is_refused_with_the_key_and_both_shapes(model_dir, no_real_build):
    meta = _meta(model_dir)
    meta["config"]["model"]["c_hidden"] = [30000]
    _write_meta(model_dir, meta)
    message = _refused(model_dir, r"inconsistent with its weights")
    assert "'backbone." in message  # the offending key
    assert "[8, " in message and "[30000, " in message


def test_a_bag_member_count_beyond_the_weights_is_refused(model_dir, no_real_build):
    meta = _meta(model_dir)
    meta["network"]["members"] = 2
    meta["format_version"] = 2
    _write_meta(model_dir, meta)
    _refused(model_dir, "members")


# -- tampered weights with a matching checksum -------------------------------------------


def _split(raw: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _join(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def _write_weights(d: Path, raw: bytes) -> None:
    (d / "model.safetensors").write_bytes(raw)
    meta = _meta(d)
    meta["weights_sha256"] = hashlib.sha256(raw).hexdigest()
    _write_meta(d, meta)


def _first_matrix(header: dict) -> str:
    return next(k for k, v in header.items() if k != "__metadata__" and len(v["shape"]) == 2
                and v["shape"][0] != v["shape"][1])


def test_a_transposed_shape_names_the_key_and_both_shapes(model_dir):
    header, data = _split((model_dir / "model.safetensors").read_bytes())
    key = _first_matrix(header)
    shape = header[key]["shape"]
    header[key]["shape"] = shape[::-1]
    _write_weights(model_dir, _join(header, data))
    message = _refused(model_dir, "inconsistent with its weights")
    assert repr(key) in message and str(shape[::-1]) in message and str(shape) in message


def test_a_changed_dtype_is_refused(model_dir):
    header, data = _split((model_dir / "model.safetensors").read_bytes())
    key = _first_matrix(header)
    header[key]["dtype"] = "I32"
    _write_weights(model_dir, _join(header, data))
    message = _refused(model_dir, "inconsistent with its weights")
    assert "I32" in message and "F32" in message


def test_a_renamed_tensor_is_refused(model_dir):
    header, data = _split((model_dir / "model.safetensors").read_bytes())
    key = _first_matrix(header)
    header["not." + key] = header.pop(key)
    _write_weights(model_dir, _join(header, data))
    _refused(model_dir, f"lacks tensor '{key}'")


def test_an_extra_tensor_is_refused(model_dir):
    header, data = _split((model_dir / "model.safetensors").read_bytes())
    header["extra"] = {"dtype": "U8", "shape": [0], "data_offsets": [len(data), len(data)]}
    _write_weights(model_dir, _join(header, data))
    _refused(model_dir, "unexpected tensor 'extra'")


def test_a_shape_larger_than_its_bytes_is_refused(model_dir):
    header, data = _split((model_dir / "model.safetensors").read_bytes())
    key = _first_matrix(header)
    header[key]["shape"] = [100_000, 100_000]
    _write_weights(model_dir, _join(header, data))
    _refused(model_dir, f"tensor '{key}' of shape .* does not match its byte size")


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"", "shorter than a safetensors header"),
        (b"\xff" * 8 + b"{}", "its header claims"),
        (struct.pack("<Q", 4) + b"\xfe\xfe{}", "header is not valid JSON"),
        (struct.pack("<Q", 2) + b"[]", "header is not an object"),
        (_join({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8), "malformed entry"),
        (_join({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 99]}}, b"\0" * 8),
         "malformed entry"),
    ],
)
def test_a_broken_safetensors_header_is_refused(model_dir, raw, match):
    _write_weights(model_dir, raw)
    _refused(model_dir, match)


def test_truncated_weights_with_a_matching_checksum_are_refused(model_dir):
    raw = (model_dir / "model.safetensors").read_bytes()
    _write_weights(model_dir, raw[: len(raw) - 16])
    _refused(model_dir, "corrupted")


# -- files that cannot be read -------------------------------------------------------------


def test_model_json_that_is_not_text_or_nested_too_deep(model_dir):
    (model_dir / "model.json").write_bytes(b"\xff\xfe\x00binary")
    _refused(model_dir, "not valid JSON")
    (model_dir / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    _refused(model_dir, "not valid JSON|not a tabresnet model file")


def test_weights_that_are_a_directory(model_dir):
    (model_dir / "model.safetensors").unlink()
    (model_dir / "model.safetensors").mkdir()
    _refused(model_dir, "weights file missing")


def test_the_cli_answers_a_damaged_model_with_one_error_line_and_exit_2(model_dir, tmp_path,
                                                                         capsys):
    from tabresnet.cli import main

    meta = _meta(model_dir)
    meta["format_version"] = "abc"
    _write_meta(model_dir, meta)
    data = tmp_path / "x.csv"
    data.write_text("a,c\n1.0,p\n")
    assert main(["predict", str(model_dir), str(data)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "format_version" in err
