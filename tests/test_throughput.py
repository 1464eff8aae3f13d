"""benchmarks/throughput.py: the interval it prints around the cluster's overhead."""

import importlib.util
import random
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "throughput.py"


@pytest.fixture(scope="module")
def throughput():
    spec = importlib.util.spec_from_file_location("throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("n, ranks, coverage", [(6, (1, 6), 62 / 64), (10, (2, 9), 1002 / 1024),
                                                (12, (3, 10), 3938 / 4096)])
def test_the_median_interval_is_the_narrowest_of_ninety_percent_between_order_statistics(throughput, n, ranks,
                                                                                          coverage):
    values = [float(v) for v in range(n, 0, -1)]  # n..1: the k-th smallest is k
    assert throughput.median_interval(values) == (ranks[0], ranks[1], pytest.approx(coverage))


def test_the_median_interval_holds_the_median_as_often_as_it_says(throughput):
    rng, hits = random.Random(0), 0
    for _ in range(4000):
        low, high, coverage = throughput.median_interval([rng.gauss(0.05, 0.09) for _ in range(10)])
        hits += low <= 0.05 <= high
    assert abs(hits / 4000 - coverage) < 0.015


def test_too_few_values_get_the_whole_range(throughput):
    assert throughput.median_interval([0.3, -0.1]) == (-0.1, 0.3, 0.5)


@pytest.mark.parametrize("cluster_first, order", [(False, ["jobs", "cluster"]), (True, ["cluster", "jobs"])])
def test_a_pair_runs_both_modes_back_to_back_in_the_order_asked(throughput, monkeypatch, tmp_path, cluster_first,
                                                                order):
    ran = []
    monkeypatch.setattr(throughput, "gradegrad_batch", lambda folder, jobs, out: ran.append("jobs") or 20.0)
    monkeypatch.setattr(throughput, "cluster_batch", lambda folder, jobs, out: ran.append("cluster") or 21.0)
    assert throughput.pair(tmp_path, 100, 2, tmp_path, cluster_first) == (20.0, 21.0)
    assert ran == order
