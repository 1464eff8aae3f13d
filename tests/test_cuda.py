"""On a GPU: every check runs with --device cuda and the device check is graded (skipped without one)."""

import pytest

from conftest import EXAMPLES, SUBMISSIONS, check, exercise

pytestmark = pytest.mark.cuda


def test_complete_submission_passes_on_cuda(graded):
    report = graded(EXAMPLES / "complete.py", device="cuda")
    assert report.device == "cuda" and report.passed, [e.first_problem for e in report.exercises if e.first_problem]
    assert check(report, "matvec", "device").status == "passed"


def test_mistakes_are_diagnosed_the_same_on_cuda(graded):
    report = graded(SUBMISSIONS / "sign_error.py", device="cuda")
    assert exercise(report, "sigmoid").first_problem.diagnosis == "sign_error"


def test_hard_coded_cpu_tensor_fails_device_check(graded, tmp_path):
    path = tmp_path / "cpu_only.py"
    path.write_text(
        "import torch\n"
        "class Exp(torch.autograd.Function):\n"
        "    @staticmethod\n"
        "    def forward(ctx, x):\n"
        "        y = torch.exp(x.cpu())\n"
        "        ctx.save_for_backward(y)\n"
        "        return y\n"
        "    @staticmethod\n"
        "    def backward(ctx, g):\n"
        "        y, = ctx.saved_tensors\n"
        "        return (g.cpu() * y).to(g.device)\n")
    report = graded(path, device="cuda")
    assert check(report, "exp", "device").diagnosis == "wrong_device"
