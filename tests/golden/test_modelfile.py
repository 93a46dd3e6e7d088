import json

import numpy as np
import pytest

from wrpn_rtl import golden as g
from .test_network import random_network


@pytest.fixture
def network(rng):
    return random_network(rng, weight_bits=2, act_bits=4, width=2.0)


def test_round_trip_preserves_every_output(network, tmp_path, rng):
    network.metadata["note"] = "round trip"
    path = tmp_path / "net.npz"
    g.save_network(network, path)
    loaded = g.load_network(path)
    assert loaded.metadata["note"] == "round trip"
    assert [repr(a) for a in loaded.layers] == [repr(b) for b in network.layers]
    codes = rng.integers(0, 256, (5,) + network.input_shape)
    for a, b in zip(g.execute(network, codes).outputs, g.execute(loaded, codes).outputs):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(network.layers, loaded.layers):
        if getattr(a, "requantizer", None) is not None:
            np.testing.assert_array_equal(a.requantizer.thresholds, b.requantizer.thresholds)
    assert list(tmp_path.iterdir()) == [path]   # no temporary left behind


def rewrite(path, change):
    """Load the archive's arrays, let ``change`` edit them (and the structure), save again."""
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    structure = json.loads(arrays["__structure__"].tobytes())
    change(arrays, structure)
    arrays["__structure__"] = np.frombuffer(json.dumps(structure).encode(), np.uint8)
    np.savez(path, **arrays)


def test_missing_file(tmp_path):
    with pytest.raises(g.ModelFileError, match=r"^model file '.*nope\.npz' does not exist$"):
        g.load_network(tmp_path / "nope.npz")


def test_truncated_file(network, tmp_path):
    path = tmp_path / "net.npz"
    g.save_network(network, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(g.ModelFileError, match=r"is not a readable \.npz archive"):
        g.load_network(path)


def test_a_folder_text_or_pickles_under_a_model_name(tmp_path):
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(g.ModelFileError, match=r"'.*folder\.npz' is a folder, not a model"):
        g.load_network(tmp_path / "folder.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(g.ModelFileError, match=r"is not a \.npz archive \(a zip file, starting "
                                               r"with 'PK'; this one starts with b'hell'\)"):
        g.load_network(tmp_path / "text.npz")
    np.savez(tmp_path / "pickles.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(g.ModelFileError, match=r"holds pickled \(object\) arrays; .* never "
                                               r"unpickles$") as error:
        g.load_network(tmp_path / "pickles.npz")
    assert "allow_pickle" not in str(error.value)


def test_a_missing_structure_key_is_named_with_its_layer(network, tmp_path):
    path = tmp_path / "net.npz"
    g.save_network(network, path)
    rewrite(path, lambda arrays, structure: structure["layers"][0].pop("in_shape"))
    with pytest.raises(g.ModelFileError, match=r"layer '.*': its structure lacks the key "
                                               r"'in_shape'$"):
        g.load_network(path)


def test_weights_with_too_few_output_channels_are_named(network, tmp_path):
    path = tmp_path / "net.npz"
    g.save_network(network, path)
    first = network.layers[0].name

    def drop_a_channel(arrays, structure):
        arrays[f"{first}.weights"] = arrays[f"{first}.weights"][:-1]
    rewrite(path, drop_a_channel)
    count = network.layers[0].out_channels - 1
    with pytest.raises(g.ModelFileError, match=rf"weight_scale must hold one value per output "
                                               rf"channel of the weight codes, which have "
                                               rf"{count} \(codes of shape \({count}, "):
        g.load_network(path)


def test_not_a_model_file(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(3))
    with pytest.raises(g.ModelFileError, match=r"has no __structure__ entry"):
        g.load_network(path)


@pytest.mark.parametrize("change, message", [
    (lambda a, s: s.update(version=99), r"format version must be 1, not 99$"),
    (lambda a, s: s.update(format="onnx"), r"format must be 'wrpn-rtl-network', not 'onnx'$"),
    (lambda a, s: a.pop("layer0.weights"), r"array 'layer0\.weights' is missing$"),
    (lambda a, s: a.update({"layer0.weights": a["layer0.weights"][:, :2]}),
     r"inconsistent: layer1: input shape must be the previous output"),
    (lambda a, s: a.update({"layer0.weight_scale": np.ones(2)}),
     r"inconsistent: layer0: weight_scale must hold one value per output channel of the "
     r"weight codes, which have 6 \(codes of shape \(6, .*not shape \(2,\)$"),
    (lambda a, s: s["layers"][0].update(weight_bits=0),
     r"inconsistent: layer0: weight_bits must be an integer in \[1, 16\], not 0$"),
    (lambda a, s: s["layers"][0]["output"].update(out_bits=17),
     r"inconsistent: out_bits must be an integer in \[1, 16\], not 17$"),
    (lambda a, s: a.update({"layer0.weights": a["layer0.weights"] * 3}),
     r"inconsistent: layer0: 2-bit weight codes must be in \[-1, 1\], not -?3$"),
])
def test_inconsistent_files_name_the_problem(network, tmp_path, change, message):
    path = tmp_path / "net.npz"
    g.save_network(network, path)
    rewrite(path, change)
    with pytest.raises(g.ModelFileError, match=r"^model file '.*net\.npz'(:| is) .*" + message):
        g.load_network(path)


def test_failed_save_leaves_nothing(network, tmp_path, monkeypatch):
    path = tmp_path / "net.npz"
    g.save_network(network, path)
    before = path.read_bytes()
    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        g.save_network(network, path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_written_files_get_ordinary_permissions(network, tmp_path):
    import os
    umask = os.umask(0)
    os.umask(umask)
    path = tmp_path / "net.npz"
    g.save_network(network, path)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
