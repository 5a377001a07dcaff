"""``make gpu-bench``'s script runs end to end with tiny settings on the CPU."""

from __future__ import annotations

import pytest

from helpers import benchmark_module


def _load():
    return benchmark_module("gpu_bench")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # from torch.compile internals
def test_gpu_bench_tiny_on_cpu_writes_complete_tables(tmp_path, capsys):
    assert _load().main([str(tmp_path), "--tiny", "--device", "cpu"]) == 0
    text = (tmp_path / "gpu_bench.md").read_text()
    for heading in ("## A.", "## B.", "## C.", "## D.", "## E."):
        assert heading in text
    assert "failed" not in text and "not run (time budget)" not in text
    assert text.count("\n| ") == 4 + 6 + 5 + 3 + 3  # header, rule and rows of the tables
    assert (tmp_path / "gpu_bench.json").is_file()


def test_gpu_bench_refuses_full_settings_without_cuda(tmp_path, capsys):
    module = _load()
    if module.torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert module.main([str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err
