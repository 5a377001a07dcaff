"""``softdistill report``: the HTML page and markdown summary of one or several runs."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import pytest
import torch
from PIL import Image

from softdistill import io
from softdistill.cli import main
from softdistill.config import Config
from softdistill.core import SyntheticSet
from softdistill.report import write_report

FAST = [
    "--arch",
    "mlp",
    "--arch_args",
    "hidden=[16]",
    "--batch_size",
    "64",
    "--quiet",
    "--baseline_lrs",
    "0.1",
]
SECTIONS = (
    "evaluation",
    "curves",
    "schedule",
    "examples",
    "labels",
    "perclass",
    "evolution",
    "config",
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished digits runs (snapshots every 2 steps, test accuracy in the metrics)."""
    base = tmp_path_factory.mktemp("runs")
    a, b = base / "a", base / "b"
    common = [*FAST, "--outer_steps", "4", "--snapshot_every", "2", "--eval_every", "2"]
    assert main(["distill", "--out", str(a), *common, "--n_batches", "2"]) == 0
    assert main(["distill", "--out", str(b), *common, "--per_class", "2", "--init_lr", "0.05"]) == 0
    return a, b


@pytest.fixture(scope="module")
def report_a(runs):
    """The report of run a, written once."""
    return write_report([runs[0]])


def _inline_images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/\w+;base64,([^"]+)"', page)]


def test_single_run_report_has_every_section_inlined(runs, report_a):
    a, _ = runs
    rep = report_a
    assert rep.html == a / "report" / "index.html"
    page = rep.html.read_text()
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in page, sid
    # self-contained: no reference to anything outside the file
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    images = _inline_images(page)
    # 20 examples (2 batches x 10), 20 real ones (2 per class), curves, lrs, labels heat map,
    # confusion matrix, evolution GIF
    assert len(images) == 20 + 20 + 5
    assert all(i[:4] in (b"\x89PNG", b"GIF8") for i in images)
    # top-3 soft labels under each example, with the steps and lrs of each batch; real ones
    assert page.count("<figcaption>") == 20 + 20
    assert "batch 1: inner steps t=1 (lr" in page and "Real training examples" in page
    ev = json.loads((a / "eval.json").read_text())
    assert f"<td>{100 * ev['distilled']['mean']:.2f} (1 net)</td>" in page  # no ± of one net
    assert "baseline: random real examples" in page and "&quot;per_class&quot;: 1" in page
    # the researcher's first questions: command, wall time, threads, per-class accuracy
    assert "softdistill distill --out" in page and "wall time (command)" in page
    assert "threads / CPUs" in page and "Per-class test accuracy" in page
    # two batches: two k-means centroids per class, not the class average; both shown
    assert "baseline: k-means centroids" in page and "baseline: class averages" in page
    # baselines in the reader's order: random real examples first
    assert page.index("random real examples") < page.index("k-means centroids")


def test_kmeans_equal_to_class_averages_is_shown_once_with_why(tmp_path):
    run = tmp_path / "one"
    assert main(["distill", "--out", str(run), *FAST, "--outer_steps", "2"]) == 0
    page = write_report([run]).html.read_text()
    assert "baseline: k-means = class averages" in page
    assert "baseline: class averages" not in page and "single k-means centroid" in page


def test_evolution_gif_has_one_frame_per_snapshot(runs, report_a):
    a, _ = runs
    steps = [s.step for s in io.load_snapshots(a)]
    assert steps == [0, 2, 4]
    with Image.open(a / "report" / "evolution.gif") as gif:
        assert gif.n_frames == len(steps)
        first = gif.convert("L").copy()
        gif.seek(gif.n_frames - 1)
        assert first.tobytes() != gif.convert("L").tobytes()  # the images changed


def test_summary_md_links_files_that_exist(report_a):
    rep = report_a
    md = rep.md.read_text()
    assert "| test accuracy (%) | a |" in md and "| dataset | digits |" in md
    assert "## Resolved configuration" in md and "## Per-class test accuracy" in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    files = {"curves.png", "lrs.png", "synthetic.png", "labels.png", "evolution.gif"}
    assert files | {"confusion.png"} <= set(links)
    assert all((rep.folder / link).is_file() for link in links)


def _text_run(path, with_eval=False):
    """A tiny run folder of a text set: 2 batches of 3 sentences of 5 words x 4 dims."""
    g = torch.Generator().manual_seed(0)
    syn = SyntheticSet.create(
        (5, 4), 3, n_batches=2, n_epochs=2, label_init="stdnormal", generator=g
    )
    path.mkdir()
    io.save_json(path / io.CONFIG, Config(dataset="digits", arch="mlp").to_dict())
    meta = {"dataset": "toytext", "classes": ["neg", "neu", "pos"], "modality": "text"}
    io.save_synthetic(path / io.SYNTHETIC, syn, {**meta, "outer_steps": 2})
    io.save_snapshot(path, 0, syn)
    with torch.no_grad():
        syn.label_params.mul_(2)
    io.save_snapshot(path, 2, syn)
    for step, loss in ((1, 1.2), (2, 0.9)):
        io.append_jsonl(path / io.METRICS, {"step": step, "loss": loss})
    return syn


def test_text_run_shows_decoded_words(tmp_path):
    _text_run(tmp_path / "t")

    def decoder(rd):
        assert rd.modality == "text"
        return lambda x: [f"word{i} and more" for i in range(x.shape[0])]

    rep = write_report([tmp_path / "t"], text_decoder=decoder)
    page = rep.html.read_text()
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in page, sid
    assert page.count("<td class=words>word2 and more</td>") == 2  # one per batch
    assert "nearest words" in page and "not evaluated" in page
    assert "word1 and more" in rep.md.read_text()
    # the first sentence decoded at each snapshot
    evo = page[page.index('<section id="evolution">') : page.index('<section id="config">')]
    assert evo.count("<tr><td>") == 2 and "<td class=words>word0 and more</td>" in evo
    # text evolution animates the soft labels
    with Image.open(rep.folder / "evolution.gif") as gif:
        assert gif.n_frames == 2


def test_text_run_without_decoder_says_so(tmp_path):
    _text_run(tmp_path / "t")
    page = write_report([tmp_path / "t"], text_decoder=None).html.read_text()
    assert "No word decoder is available" in page and "<td class=words>" not in page


def test_report_cli_compares_several_runs(runs, tmp_path, capsys):
    a, b = runs
    out = tmp_path / "cmp"
    assert main(["report", str(a), str(b), "--out", str(out), "--quiet"]) == 0
    assert str(out / "index.html") in capsys.readouterr().out
    page = (out / "index.html").read_text()
    table = page[page.index('<section id="evaluation">') : page.index('<section id="curves">')]
    # methods as rows, runs as columns
    assert "<tr><th>test accuracy (%)</th><th>a</th><th>b</th></tr>" in table
    row = re.search(r"<tr><td>distilled set</td>(.*?)</tr>", table).group(1)
    assert row.count("<td>") == 2
    assert "<h3>a</h3>" in page and "<h3>b</h3>" in page
    cfg = page[page.index('<section id="config">') :]
    assert "<td>per_class</td><td>1</td><td>2</td>" in cfg
    assert "<td>n_batches</td><td>2</td><td>1</td>" in cfg
    assert (out / "a_evolution.gif").is_file() and (out / "b_labels.png").is_file()
    assert "### a" in (out / "summary.md").read_text()
    assert main(["report", str(tmp_path / "nope"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "run folder not found" in err and "Traceback" not in err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_headless_browser_renders_every_section(report_a, tmp_path):
    rep = report_a
    url = rep.html.resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=60
    ).stdout
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in dom, sid
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, *flags, "--window-size=1200,2400", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=60,
    )
    with Image.open(shot) as im:
        img = im.convert("L")
    lo, hi = img.getextrema()
    assert img.size == (1200, 2400) and hi - lo > 200  # not a blank page


def test_knn_below_chance_is_explained_and_one_point_curve_says_so(runs, tmp_path):
    import shutil

    run = tmp_path / "r"
    shutil.copytree(runs[0], run)
    ev = json.loads((run / "eval.json").read_text())
    ev["baselines"]["knn"]["mean"] = 0.05  # below chance for 10 classes
    (run / "eval.json").write_text(json.dumps(ev))
    metrics = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    seen = False
    keep = []
    for m in metrics:  # keep one test-accuracy point only
        if "test_acc" in m and seen:
            m.pop("test_acc")
        seen |= "test_acc" in m
        keep.append(json.dumps(m))
    (run / "metrics.jsonl").write_text("\n".join(keep) + "\n")
    page = write_report([run], out=tmp_path / "rep").html.read_text()
    assert "below chance" in page and "not to be class prototypes" in page
    assert "test accuracy was measured once" in page
