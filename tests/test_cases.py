"""Seeded inputs: deterministic, in their domains, and upstream gradients never all ones."""

import torch

from gradegrad.cases import make_grad_output, make_inputs


def test_same_seed_same_inputs_other_seed_other_inputs(catalog):
    ex = catalog["matvec"]
    a, b = make_inputs(ex, ex.cases[0], 0), make_inputs(ex, ex.cases[0], 0)
    c = make_inputs(ex, ex.cases[0], 1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    assert a[0].shape == (5, 7) and a[0].dtype == torch.float64


def test_float32_inputs_are_the_float64_values_cast(catalog):
    ex = catalog["sigmoid"]
    x64, = make_inputs(ex, ex.cases[0], 0)
    x32, = make_inputs(ex, ex.cases[0], 0, "float32")
    assert x32.dtype == torch.float32 and torch.equal(x32, x64.float())


def test_domains(catalog):
    x, mask, p = make_inputs(catalog["dropout"], catalog["dropout"].cases[0], 0)
    assert set(mask.tolist()) <= {0.0, 1.0} and p == 0.1
    x, = make_inputs(catalog["leaky_relu"], catalog["leaky_relu"].cases[0], 0)
    assert (x.abs() >= 0.05).all()
    logits, targets = make_inputs(catalog["cross_entropy"], catalog["cross_entropy"].cases[0], 0)
    assert targets.dtype == torch.int64 and targets.min() >= 0 and targets.max() < 5
    large = next(c for c in catalog["sigmoid"].cases if c.stability)
    x, = make_inputs(catalog["sigmoid"], large, 0)
    assert x.abs().max() > 100


def test_upstream_gradient_is_random_and_never_all_ones():
    vec = make_grad_output(torch.zeros(7, dtype=torch.float64), 0, "x")
    assert not torch.equal(vec, torch.ones(7, dtype=torch.float64))
    for seed in range(20):
        scalar = make_grad_output(torch.zeros((), dtype=torch.float64), seed, "loss")
        assert 1.5 <= abs(float(scalar)) <= 3.0
