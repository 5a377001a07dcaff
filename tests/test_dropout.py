"""Dropout in inner steps (``arch_args`` ``dropout`` of textconvnet, the text paper's
TextConvNet1): masks only in the passes of inner steps, exact hypergradients with ``autograd``,
refused where steps are recomputed, and evaluations that repeat."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from softdistill.cli import main
from softdistill.config import Config, ConfigError
from softdistill.core import SyntheticSet, forward, hypergradient, inner_pass, inner_step, unroll
from softdistill.distillation import choose_hypergrad
from softdistill.models import build, init_params
from test_text import FILLER, NEG, POS, write_glove, write_sentiment

ARGS = {"widths": [2, 3], "maps": 3}


def _problem(dropout: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = build("textconvnet", (6, 4), 3, dropout=dropout, **ARGS).double()
    params0 = init_params(model, generator=g, dtype=torch.float64)
    syn = SyntheticSet.create(
        (6, 4), 3, n_batches=2, n_epochs=2, init_lr=0.2, label_init="smoothed",
        generator=g, dtype=torch.float64,
    )  # fmt: skip
    x = torch.randn(10, 6, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (10,), generator=g)

    def outer_loss(p):
        return F.cross_entropy(forward(model, p, x), y)

    return model, params0, syn, outer_loss, x


def test_masks_only_in_inner_passes_and_from_the_global_rng():
    model, params0, syn, _, x = _problem(0.5)
    plain = build("textconvnet", (6, 4), 3, **ARGS).double()
    assert torch.equal(forward(model, params0, x), forward(plain, params0, x))  # real-data pass
    with inner_pass(model):
        a = forward(model, params0, x)
    assert not model.inner_pass  # restored
    assert not torch.allclose(a, forward(plain, params0, x))
    xs, ys, lr = syn.detached_steps()[0]
    torch.manual_seed(3)
    s1, _ = inner_step(model, params0, xs, ys, lr)
    torch.manual_seed(3)
    s2, _ = inner_step(model, params0, xs, ys, lr)
    s3, _ = inner_step(model, params0, xs, ys, lr)
    s0, _ = inner_step(plain, params0, xs, ys, lr)
    w = "classifier.weight"
    assert torch.equal(s1[w], s2[w]) and not torch.equal(s1[w], s3[w])
    assert not torch.allclose(s1[w], s0[w])
    # the repr (a key of the baseline cache) names the dropout only when it is set
    assert "dropout=0.5" in repr(model) and "dropout" not in repr(plain)
    with pytest.raises(ValueError, match="dropout must be in"):
        build("textconvnet", (6, 4), 3, dropout=1.0)


def test_autograd_hypergradient_is_exact_under_the_same_masks():
    """float64 central differences of the loss with the RNG seeded as for the hypergradient
    (the same masks): autograd's gradient is the derivative of what the run trains."""
    model, params0, syn, outer_loss, _ = _problem(0.5)
    with pytest.raises(ValueError, match="recomputes inner steps"):
        hypergradient(model, params0, syn, outer_loss, method="reverse")
    torch.manual_seed(7)
    res = hypergradient(model, params0, syn, outer_loss, method="autograd")
    model0, params00, syn0, outer_loss0, _ = _problem(0.0)
    plain = hypergradient(model0, params00, syn0, outer_loss0, method="autograd")
    assert not torch.allclose(res.grads[0], plain.grads[0])  # the masks change the gradient
    h = 1e-6
    for tensor, grad in zip(syn.parameters(), res.grads):
        flat = tensor.data.view(-1)
        for i in (int(grad.abs().argmax()), 0):
            old, vals = flat[i].item(), []
            for v in (old + h, old - h):
                flat[i] = v
                torch.manual_seed(7)
                with torch.no_grad():
                    vals.append(outer_loss(unroll(model, params0, syn.detached_steps())[-1]).item())
            flat[i] = old
            numeric, analytic = (vals[0] - vals[1]) / (2 * h), grad.view(-1)[i].item()
            assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)) + 1e-9, (i, numeric)


def test_the_outer_loop_takes_autograd_and_refuses_the_rest():
    model, params0, syn, _, _ = _problem(0.5)
    method, why = choose_hypergrad(Config(arch="textconvnet"), model, syn, params0)
    assert method == "autograd" and "dropout" in why
    for bad, match in (
        ({"hypergrad": "reverse"}, "hypergrad 'reverse' recomputes"),
        ({"hypergrad": "truncated", "window": 1}, "hypergrad 'truncated' recomputes"),
        ({"batched_nets": True, "n_nets": 2}, "batched_nets"),
    ):
        with pytest.raises(ConfigError, match=match):
            choose_hypergrad(Config(arch="textconvnet", **bad), model, syn, params0)
    plain = _problem(0.0)[0]
    cfg = Config(arch="textconvnet", hypergrad="reverse")
    assert choose_hypergrad(cfg, plain, syn, params0)[0] == "reverse"


def test_a_dropout_run_repeats_and_its_evaluation_repeats(tmp_path):
    folder = write_sentiment(tmp_path / "data")
    glove = tmp_path / "g.txt"
    write_glove(glove, POS + NEG + FILLER[:4], dim=6)

    def run(out, *extra):
        argv = [
            "distill", "--quiet", "--dataset", f"tsv:{folder}", "--embeddings", f"glove:{glove}",
            "--maxlen", "8", "--arch", "textconvnet",
            "--arch_args", '{"widths": [2, 3], "maps": 4, "dropout": 0.5}',
            "--outer_steps", "4", "--batch_size", "16", "--n_epochs", "2",
            "--baselines", "random", "--baseline_lrs", "0.1", "0.3", "--no-baseline_cache",
            "--out", str(out), *extra,
        ]  # fmt: skip
        assert main(argv) == 0
        return json.loads((out / "eval.json").read_text())

    a, b = run(tmp_path / "a"), run(tmp_path / "b")
    assert a["distilled"] == b["distilled"] and a["baselines"] == b["baselines"]
    syn_a, syn_b = (load_file(tmp_path / r / "synthetic.safetensors") for r in "ab")
    assert syn_a.keys() == syn_b.keys() and all(torch.equal(syn_a[k], syn_b[k]) for k in syn_a)
    # a re-evaluation (another process state of the global RNG) gives the run's numbers
    torch.manual_seed(12345)
    assert main(["evaluate", "--quiet", str(tmp_path / "a")]) == 0
    again = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert again["distilled"] == a["distilled"] and again["baselines"] == a["baselines"]
