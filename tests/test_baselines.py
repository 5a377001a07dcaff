"""Baselines: random/kmeans/average sets, kNN, lr modes, best-of-N selection on training data."""

from __future__ import annotations

import pytest
import torch

from helpers import blobs
from softdistill.baselines import (
    average_set,
    best_of,
    evaluate_baselines,
    kmeans_set,
    knn_accuracy,
    knn_predict,
    parse_lr_mode,
    random_set,
)
from softdistill.core import SyntheticSet
from softdistill.data import Split
from softdistill.evaluation import evaluate_steps
from softdistill.models import build, init_params

CLASSES = [0, 1, 2]


def _setup(sample_shape=(1, 8, 8), n_nets=1, per_class=2, n_batches=2, seed=0):
    """blobs data in ``sample_shape``, an MLP, ``n_nets`` inits and a synthetic set."""
    data = blobs(n_per_class=40, seed=seed)
    train = Split(data.train.x.reshape(-1, *sample_shape), data.train.y)
    test = Split(data.test.x.reshape(-1, *sample_shape), data.test.y)
    model = build("mlp", sample_shape, 3, hidden=[16])
    g = torch.Generator().manual_seed(seed)
    nets = [init_params(model, generator=g) for _ in range(n_nets)]
    syn = SyntheticSet.create(
        sample_shape, 3, per_class=per_class, n_batches=n_batches, n_epochs=2, init_lr=0.1,
        generator=g,
    )  # fmt: skip
    return model, nets, syn, train, test


# ----------------------------------------------------------------------------- the sets
def test_random_set_draws_distinct_training_examples_of_each_class():
    _, _, _, train, _ = _setup()
    s = random_set(train, [2, 0], 3, 2, 3, torch.Generator().manual_seed(0))
    assert s.x.shape == (2, 6, 1, 8, 8) and s.y.shape == (2, 6, 3)
    assert torch.equal(s.y[1].argmax(-1), torch.tensor([2, 2, 2, 0, 0, 0]))
    assert torch.equal(s.y.sum(-1), torch.ones(2, 6))  # one-hot
    x, y = s.flat()
    rows = train.x.flatten(1)
    for xi, yi in zip(x.flatten(1), y.argmax(-1)):
        match = (rows == xi).all(1).nonzero().flatten()
        assert len(match) == 1 and train.y[match[0]] == yi  # a real example of its class
    assert len({tuple(r.tolist()) for r in x.flatten(1)}) == 12  # no repeats across batches
    with pytest.raises(ValueError, match="class 0 has 40 training examples, need 82"):
        random_set(train, [0], 41, 2, 3, torch.Generator())


def test_average_set_is_the_class_means():
    _, _, _, train, _ = _setup()
    s = average_set(train, CLASSES, 2, 3, 3)
    assert s.x.shape == (3, 6, 1, 8, 8)
    for b in range(3):
        for j, c in enumerate([0, 0, 1, 1, 2, 2]):
            assert torch.allclose(s.x[b, j], train.x[train.y == c].mean(0), atol=1e-6)
            assert s.y[b, j].argmax() == c


def test_kmeans_centroids_lie_in_their_class_region():
    _, _, _, train, _ = _setup()
    s = kmeans_set(train, CLASSES, 2, 2, 3, seed=0)  # 4 centroids per class
    assert s.x.shape == (2, 6, 1, 8, 8) and s.name == "kmeans"
    x, y = s.flat()
    means = torch.stack([train.x[train.y == c].mean(0).flatten() for c in CLASSES])
    for xi, c in zip(x.flatten(1), y.argmax(-1).tolist()):
        own = train.x[train.y == c].flatten(1)
        # a mean of class members: inside the class's bounding box, nearest to its class mean
        assert (xi >= own.min(0).values - 1e-5).all() and (xi <= own.max(0).values + 1e-5).all()
        assert (means - xi).norm(dim=1).argmin() == c
    centroids = x.flatten(1)[y.argmax(-1) == 0]
    assert len({tuple(r.tolist()) for r in centroids}) == 4  # distinct centroids
    one = kmeans_set(train, CLASSES, 1, 1, 3)  # one centroid per class: the class mean
    assert torch.allclose(one.x, average_set(train, CLASSES, 1, 1, 3).x)


# ----------------------------------------------------------------------------- kNN
def test_knn_known_answers_k_and_p():
    x_ref = torch.tensor([[3.0, 0.0], [2.0, 2.0], [10.0, 10.0], [11.0, 10.0], [10.0, 11.0]])
    y_ref = torch.tensor([0, 1, 2, 2, 1])
    q = torch.zeros(1, 2)
    # from the origin: L1 distances 3, 4 -> class 0; L2 3, 2.83 and Linf 3, 2 -> class 1
    assert knn_predict(x_ref, y_ref, q, k=1, p=1).tolist() == [0]
    assert knn_predict(x_ref, y_ref, q, k=1, p=2).tolist() == [1]
    far = torch.tensor([[10.2, 10.2]])
    assert knn_predict(x_ref, y_ref, far, k=1).tolist() == [2]
    assert knn_predict(x_ref, y_ref, far, k=3).tolist() == [2]  # votes 2, 2, 1
    # soft reference labels vote with their weights
    soft = torch.tensor([[0.0, 0.9, 0.1], [0.0, 0.9, 0.1], [0.0, 0.0, 1.0]])
    pts = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.2, 0.0]])
    assert knn_predict(pts, soft, torch.zeros(1, 2), k=3).tolist() == [1]  # 1.8 vs 1.2
    split = Split(torch.tensor([[0.0, 0.0], [10.2, 10.2]]), torch.tensor([1, 2]))
    assert knn_accuracy(x_ref, y_ref, split, k=1, p=2) == 1.0
    assert knn_accuracy(x_ref, y_ref, split, k=1, p=1) == 0.5
    with pytest.raises(ValueError, match="k=6 must be between 1 and the 5"):
        knn_predict(x_ref, y_ref, q, k=6)


# ----------------------------------------------------------------------------- selection
def test_best_of_and_lr_modes():
    assert best_of([0.2, 0.9, 0.5, 0.9], 2) == [1, 3]
    assert str(parse_lr_mode("tuned")) == "tuned" and parse_lr_mode(0.05).value == 0.05
    assert parse_lr_mode("0.02").name == "fixed"
    for bad in ("fast", -1, "0"):
        with pytest.raises(ValueError, match="baseline lr"):
            parse_lr_mode(bad)


def test_best_of_n_keeps_the_draw_with_the_best_training_score():
    model, nets, syn, train, test = _setup()
    res, sets = evaluate_baselines(
        model, nets, syn, train, test, names=["random"], lr=0.1, draws=6, val_size=10**6
    )  # val_size >= len(train): scores are on the whole training split
    r = res["random"]
    scores = r["train_scores"]
    assert len(scores) == 6 and len(set(scores)) > 1  # the draws differ: the choice matters
    assert r["kept"] == best_of(scores, 5)  # 1 net -> the 5 best draws give 5 trainings
    assert len(r["per_net"]) == 5 and len(sets["random"]) == 5
    lrs = torch.full((syn.n_steps,), 0.1)
    recomputed = evaluate_steps(model, nets, sets["random"][0].steps(lrs), train).mean
    assert recomputed == pytest.approx(max(scores))
    test_acc = evaluate_steps(model, nets, sets["random"][0].steps(lrs), test).mean
    assert r["per_net"][0] == pytest.approx(test_acc)


def test_lr_grid_and_draws_are_chosen_on_training_data_never_on_test():
    model, nets, syn, train, test = _setup()
    grid = (1e-4, 0.3)
    shifted = Split(test.x, (test.y + 1) % 3)  # a test split that rewards *not* learning

    def run(t):
        return evaluate_baselines(
            model, nets, syn, train, t, names=["random", "average"], lr="tuned", lr_grid=grid,
            draws=3,
        )  # fmt: skip

    res_a, sets_a = run(test)
    res_b, _ = run(shifted)
    for name in ("random", "average"):
        assert res_a[name]["lr"] == res_b[name]["lr"] == 0.3
        assert res_a[name]["kept"] == res_b[name]["kept"]
        assert res_a[name]["lr_grid_train_scores"] == res_b[name]["lr_grid_train_scores"]
    # choosing on the shifted test split would have picked the other lr
    on_b = [
        evaluate_steps(model, nets, sets_a["average"][0].steps(torch.full((4,), v)), shifted).mean
        for v in grid
    ]
    assert grid[best_of(on_b, 1)[0]] == 1e-4


def test_learned_and_fixed_lrs_and_knn_references():
    model, nets, syn, train, test = _setup(n_nets=5)
    with torch.no_grad():
        syn.raw_lrs.copy_(torch.linspace(-2.0, 0.5, syn.n_steps))
    res, sets = evaluate_baselines(
        model, nets, syn, train, test, names=["average", "knn"], lr="learned", knn_k=3, knn_p=1
    )
    avg = res["average"]
    assert avg["lr_mode"] == "learned" and "lr" not in avg and len(avg["per_net"]) == 5
    expected = evaluate_steps(model, nets, sets["average"][0].steps(syn.lrs.detach()), test)
    assert avg["per_net"] == expected.per_net
    x_ref, y_ref = syn.x_syn.detach().flatten(0, 1), syn.y_soft.detach().flatten(0, 1)
    assert res["knn"]["per_net"] == [knn_accuracy(x_ref, y_ref, test, k=3, p=1)]
    assert res["knn"]["reference"] == "synthetic" and res["knn"]["n_reference"] == 12
    assert res["knn_average"]["per_net"][0] == pytest.approx(1.0)  # class means on blobs
    fixed, _ = evaluate_baselines(model, nets, syn, train, test, names=["average"], lr="0.05")
    assert fixed["average"]["lr"] == 0.05 and fixed["average"]["lr_mode"] == "fixed"
    with pytest.raises(ValueError, match="knn_k=13 must be between 1 and the 12"):
        evaluate_baselines(model, nets, syn, train, test, names=["knn"], knn_k=13)
    with pytest.raises(ValueError, match="unknown baseline 'mean'"):
        evaluate_baselines(model, nets, syn, train, test, names=["mean"])


def test_baselines_are_generic_over_text_shaped_samples():
    """(N, maxlen, dim) samples, as text embeddings, through every baseline with an MLP."""
    model, nets, syn, train, test = _setup(sample_shape=(4, 16))
    res, sets = evaluate_baselines(
        model, nets, syn, train, test, names=["random", "kmeans", "average", "knn"], lr=0.1,
        draws=2,
    )  # fmt: skip
    for name in ("random", "kmeans", "average"):
        assert sets[name][0].x.shape == (2, 6, 4, 16)
        assert 0 <= res[name]["mean"] <= 1 and res[f"knn_{name}"]["mean"] > 0.9
    assert 0 <= res["knn"]["mean"] <= 1


def test_baselines_are_reused_from_the_cache_for_the_same_inputs(tmp_path):
    from softdistill import api

    kw = dict(
        dataset="digits",
        arch="mlp",
        arch_args={"hidden": [16]},
        outer_steps=2,
        batch_size=64,
        baselines=["random", "kmeans", "knn"],
        baseline_lrs=[0.1],
    )
    first = api.distill(out=tmp_path / "a", **kw).eval
    again = api.distill(out=tmp_path / "b", **kw).eval  # same data, init, budget, seed
    assert first["protocol"]["baselines_cache"] == "miss"
    assert again["protocol"]["baselines_cache"] == "hit"
    for name in ("random", "kmeans", "knn_random", "knn_kmeans"):
        assert again["baselines"][name] == first["baselines"][name], name
    assert list(again["baselines"]) == list(first["baselines"])  # same order
    other = api.distill(out=tmp_path / "c", **{**kw, "seed": 1}).eval  # other init nets
    assert other["protocol"]["baselines_cache"] == "miss"
    off = api.distill(out=tmp_path / "d", **kw, baseline_cache=False).eval
    assert off["protocol"]["baselines_cache"] == "off"
    assert off["baselines"]["random"] == first["baselines"]["random"]  # what the cache held


def test_the_nets_accuracies_before_training_come_from_the_cache_on_a_hit(tmp_path, monkeypatch):
    """A hit skips the test pass of every untrained net (half the evaluation of 20 random inits)
    and gives the same "before"; from an entry without them, they are computed."""
    import json

    from softdistill import api, evaluation

    cache = tmp_path / "cache"
    monkeypatch.setenv("SOFTDISTILL_CACHE", str(cache))
    kw = dict(
        dataset="digits", arch="mlp", arch_args={"hidden": [16]}, nets="random", test_n_nets=3,
        outer_steps=2, batch_size=64, baselines=["random"], baseline_lrs=[0.1],
    )  # fmt: skip
    first = api.distill(out=tmp_path / "a", **kw).eval
    (entry,) = (cache / "baselines").glob("*.json")
    assert json.loads(entry.read_text())[evaluation.BEFORE] == first["before"]["per_net"]
    calls = []
    real = evaluation.accuracy
    monkeypatch.setattr(evaluation, "accuracy", lambda *a: calls.append(1) or real(*a))
    again = api.distill(out=tmp_path / "b", **kw).eval
    assert again["protocol"]["baselines_cache"] == "hit" and not calls
    assert again["before"] == first["before"] and again["baselines"] == first["baselines"]
    old = {k: v for k, v in json.loads(entry.read_text()).items() if k != evaluation.BEFORE}
    entry.write_text(json.dumps(old))  # an entry without them
    third = api.distill(out=tmp_path / "c", **kw).eval
    assert third["protocol"]["baselines_cache"] == "hit"
    assert len(calls) == 3 and third["before"] == first["before"]


def test_the_cache_key_hashes_8_bit_pixels_a_block_at_a_time_with_the_same_digest(monkeypatch):
    """Streaming the rows keeps every key written before (the bytes of the whole subset)."""
    import hashlib

    from softdistill import evaluation
    from softdistill.data import Pixels

    raw = torch.randint(
        0, 256, (50, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    rows = torch.randperm(50, generator=torch.Generator().manual_seed(1))[:37]
    for px, subset in (
        (Pixels(raw, (0.5,), (0.2,)), raw),
        (Pixels(raw, (0.5,), (0.2,), rows=rows), raw[rows]),
    ):
        whole = hashlib.sha256()
        whole.update(f"{subset.dtype}{tuple(subset.shape)}".encode())
        whole.update(subset.contiguous().view(torch.uint8).numpy())
        whole.update(f"{px.mean}{px.std}{px.dtype}".encode())
        monkeypatch.setattr(evaluation, "DIGEST_ROWS", 8)  # 5 blocks, the last one short
        streamed = hashlib.sha256()
        evaluation._digest(streamed, px)
        assert streamed.hexdigest() == whole.hexdigest()


def test_one_default_lr_grid_for_the_setting_and_the_functions():
    import inspect

    from softdistill.baselines import DEFAULT_LR_GRID, evaluate_baselines
    from softdistill.config import DEFAULT_BASELINE_LRS, Config
    from softdistill.evaluation import evaluate_run

    assert DEFAULT_BASELINE_LRS == DEFAULT_LR_GRID == tuple(Config().baseline_lrs)
    assert inspect.signature(evaluate_baselines).parameters["lr_grid"].default is DEFAULT_LR_GRID
    assert inspect.signature(evaluate_run).parameters["baseline_lrs"].default is DEFAULT_LR_GRID


def test_a_new_set_baseline_is_one_registered_function(monkeypatch):
    """@set_baseline("name") is all a new set baseline needs: the run's config accepts the
    name, evaluate_baselines builds, trains and reports it, and its kNN twin comes with it."""
    from softdistill import baselines
    from softdistill.config import Config, ConfigError

    monkeypatch.setattr(baselines, "SET_BASELINES", dict(baselines.SET_BASELINES))

    @baselines.set_baseline("first")
    def first(train, classes, per_class, n_batches, n_classes, *, seed, draws):
        """The first training examples of each class."""
        xs = [train.x[(train.y == c).nonzero().flatten()[: per_class * n_batches]] for c in classes]
        return [baselines._layout("first", xs, classes, per_class, n_batches, n_classes)]

    Config(baselines=["first", "knn"]).validate()
    with pytest.raises(ConfigError, match="unknown baseline 'second'"):
        Config(baselines=["second"]).validate()
    with pytest.raises(ValueError, match="taken by the kNN baselines"):
        baselines.set_baseline("knn_mine")
    model, nets, syn, train, test = _setup()
    results, sets = evaluate_baselines(
        model, nets, syn, train, test, names=("first", "knn"), lr=0.1, val_size=50
    )
    assert set(results) == {"first", "knn", "knn_first"}
    assert 0 <= results["first"]["mean"] <= 1 and results["first"]["draws"] == 1
    assert sets["first"][0].x.shape == syn.x_syn.shape


def test_one_random_real_helper_keeps_the_draws_of_both_former_ones():
    """scoring.random_real_indices serves the random-real baseline (distinct examples) and
    x_init: real (one draw per batch); each gives the examples the former helper drew."""
    from softdistill.scoring import random_real_indices

    _, _, _, train, _ = _setup()
    classes, per_class, n_batches = [2, 0], 3, 2
    pools = {c: (train.y == c).nonzero().flatten() for c in classes}
    g = torch.Generator().manual_seed(4)  # the former random_set: one draw per class
    drawn = {c: pools[c][torch.randperm(len(pools[c]), generator=g)[:6]] for c in classes}
    before = [torch.cat([drawn[c][b * 3 : (b + 1) * 3] for c in classes]) for b in range(2)]
    after = random_real_indices(
        train, classes, per_class, n_batches, torch.Generator().manual_seed(4), distinct=True
    )
    assert all(torch.equal(a, b) for a, b in zip(after, before))
    assert len(set(torch.cat(after).tolist())) == 12  # distinct across batches
    g = torch.Generator().manual_seed(4)  # the former random_real_steps: a draw per batch
    before = [
        torch.cat([pools[c][torch.randperm(len(pools[c]), generator=g)[:3]] for c in classes])
        for _ in range(2)
    ]
    after = random_real_indices(
        train, classes, per_class, n_batches, torch.Generator().manual_seed(4), distinct=False
    )
    assert all(torch.equal(a, b) for a, b in zip(after, before))
    assert [train.y[a].tolist() for a in after] == [[2, 2, 2, 0, 0, 0]] * 2
