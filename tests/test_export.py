"""``softdistill export`` and ``train_on``: the synthetic set outside its run folder."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

import softdistill as sd
from softdistill.cli import main
from softdistill.data import load
from softdistill.evaluation import accuracy
from softdistill.export import ExportError
from softdistill.models import LeNet, init_params
from softdistill.seeds import stream


def _tiny_mnist(folder):
    """A Keras-style mnist.npz of scikit-learn digits blown up to 28x28 (300 train, 120 test)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (np.kron(d.images, np.ones((3, 3))) * 255 / 16).astype(np.uint8)  # (1797, 24, 24)
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))  # (1797, 28, 28)
    y = d.target.astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / "mnist.npz", x_train=x[:300], y_train=y[:300], x_test=x[300:420], y_test=y[300:420]
    )
    return folder


LENET = ["--dataset", "mnist", "--arch", "lenet", "--outer_steps", "3", "--batch_size", "64"]
LENET += ["--n_batches", "2", "--n_epochs", "2", "--quiet", "--baseline_lrs", "0.1"]


@pytest.fixture(scope="module")
def lenet_runs(tmp_path_factory):
    """A known-init and a random-init LeNet run on tiny 28x28 digits, evaluated by the CLI."""
    base = tmp_path_factory.mktemp("lenet")
    data = _tiny_mnist(base / "data")
    fixed, rand = base / "fixed", base / "random"
    assert main(["distill", "--out", str(fixed), "--data-dir", str(data), *LENET]) == 0
    argv = ["--out", str(rand), "--data-dir", str(data), *LENET, "--nets", "random"]
    assert main(["distill", *argv, "--test_n_nets", "2", "--init_lr", "0.05"]) == 0
    assert main(["evaluate", str(fixed), "--quiet"]) == 0  # the numbers to reproduce
    return data, fixed, rand


def test_npz_recipe_trains_a_fresh_lenet_to_the_evaluated_accuracy(lenet_runs, capsys):
    """Acceptance: the documented recipe on an exported .npz == `softdistill evaluate`."""
    data_dir, run, _ = lenet_runs
    assert main(["export", str(run), "--format", "npz", "--quiet"]) == 0
    path = run / "export" / "synthetic.npz"
    assert str(path) in capsys.readouterr().out
    test = load("mnist", data_dir).test
    evaluated = json.loads((run / "eval.json").read_text())["distilled"]["per_net"]

    # --- the README recipe
    syn = sd.load_exported(path)
    model = syn.init_(LeNet(1, 10))  # the initial weights the set was learned for
    sd.train_on(model, syn)
    # ---
    with torch.no_grad():
        acc = (model(test.x[:]).argmax(-1) == test.y).float().mean().item()  # x[:]: a tensor
    assert acc == pytest.approx(evaluated[0], abs=1e-9)
    assert not torch.equal(model.fc3.weight, syn.init[0]["fc3.weight"])  # it trained


def test_random_init_run_reproduces_evaluate_with_the_same_seeds(lenet_runs):
    data_dir, _, run = lenet_runs
    path = sd.export_run(run, "pt")
    syn = sd.load_exported(path)
    assert syn.init == [] and syn.meta["nets"] == "random"
    with pytest.raises(ExportError, match="random initialisations"):
        syn.init_(LeNet(1, 10))
    cfg = json.loads((run / "config.json").read_text())
    test = load("mnist", data_dir).test
    g = stream(cfg["seed"], "test_nets")  # the evaluation nets' seed stream
    accs = []
    for _ in range(cfg["test_n_nets"]):
        model = LeNet(1, 10)
        theta0 = init_params(model, cfg["init"], cfg["init_param"], generator=g)
        model.load_state_dict(theta0)
        sd.train_on(model, syn)
        accs.append(accuracy(model, dict(model.named_parameters()), test))
    evaluated = json.loads((run / "eval.json").read_text())["distilled"]["per_net"]
    assert accs == pytest.approx(evaluated, abs=1e-9)  # eval.json of distill = evaluate's


def test_npz_and_pt_hold_the_same_set(lenet_runs, tmp_path):
    _, run, _ = lenet_runs
    a = sd.load_exported(sd.export_run(run, "npz", tmp_path / "s.npz"))
    b = sd.load_exported(sd.export_run(run, "pt", tmp_path / "s.pt"))
    loaded = sd.load(run)
    assert torch.equal(a.x, loaded.syn.x_syn.flatten(0, 1))
    assert torch.equal(a.y_soft, loaded.syn.y_soft.flatten(0, 1))
    assert torch.equal(a.lrs, loaded.syn.lrs)
    assert a.step_batch.tolist() == [0, 1, 0, 1] and a.batch.tolist() == [0] * 10 + [1] * 10
    for k in ("x", "y_soft", "lrs", "step_batch", "batch", "label_class"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    assert a.class_names == b.class_names == [str(i) for i in range(10)]
    assert a.mean == pytest.approx(b.mean) and a.meta["arch"] == b.meta["arch"] == "lenet"
    assert all(torch.equal(a.init[0][k], b.init[0][k]) for k in a.init[0])
    # TensorDataset-compatible
    x, y, batch = b.dataset()[3]
    assert x.shape == (1, 28, 28) and y.shape == (10,) and int(batch) == 0
    # npz needs no pickle
    with np.load(tmp_path / "s.npz", allow_pickle=False) as f:
        assert f["x"].shape == (20, 1, 28, 28) and f["lrs"].shape == (4,)


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_png_tree_with_labels_csv(lenet_runs, tmp_path):
    _, run, _ = lenet_runs
    out = tmp_path / "png"
    assert main(["export", str(run), "--format", "png", "--out", str(out), "--quiet"]) == 0
    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) == 20
    assert (out / "batch_01" / "3" / "0013.png").is_file()
    with Image.open(pngs[0]) as im:
        assert im.size == (28, 28) and im.mode == "L"
    rows = _csv(out / "labels.csv")
    assert len(rows) == 20 and rows[13]["file"] == "batch_01/3/0013.png"
    y = sd.load(run).syn.y_soft.flatten(0, 1)
    assert float(rows[13]["y_7"]) == pytest.approx(y[13, 7].item())
    lrs = _csv(out / "lrs.csv")
    assert [int(r["batch"]) for r in lrs] == [0, 1, 0, 1]


def test_export_errors(lenet_runs, tmp_path, capsys):
    _, run, _ = lenet_runs
    assert main(["export", str(run), "--format", "jpg", "--quiet"]) == 2
    assert "invalid choice: 'jpg'" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope"), "--quiet"]) == 1
    assert "run folder not found" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ExportError, match="corrupt, truncated"):
        sd.load_exported(bad)

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ExportError, match="corrupt, truncated or not ours"):
        sd.load_exported(tmp_path / "evil.pt")  # weights_only: never runs code from the file
    assert "code ran" not in capsys.readouterr().out


def test_png_export_refuses_text_sets(tmp_path, capsys):
    from test_report import _text_run

    _text_run(tmp_path / "t")
    assert main(["export", str(tmp_path / "t"), "--format", "png", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "png export is for image sets" in err and "npz or pt" in err
    s = sd.load_exported(sd.export_run(tmp_path / "t", "npz"))
    assert s.x.shape == (6, 5, 4) and s.meta["modality"] == "text"
