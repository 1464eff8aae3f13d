"""Mutation benchmark: does gradegrad catch every wrong Function, and pass every right one?

From a reference solution of each exercise (the templates below), it generates
(a) wrong variants, each with the check and the diagnosis code that should name it:
    - generic ones: sign flip, dropped grad_output, grad_output applied twice, swapped return order,
      transposed gradient, constant factor, None for a needed gradient, a gradient hard-coded to
      float32, a forward hard-coded to float32;
    - per exercise: missing term, off-by-one slice, a Jacobian-building backward (right values,
      wasteful memory), in-place writes (to grad_output, to forward's output, to an input, to a
      saved tensor), unstable formulas (overflow in float64, or in float32 only), a wrong scalar
      forward, and realistic single mistakes of students (`mistakes`);
(b) right variants written differently: the reference itself, other formulas (sigmoid's
    derivative through exp, softmax through log-softmax, conv1d through unfold and through
    conv_transpose1d, ...), in-place writes on the Function's own copies, a float64 gradient for
    float32 inputs (autograd casts it back), gradients returned for arguments that need none.
One file per variant kind holds one class per exercise it applies to. Every file is graded with
`gradegrad.grading.grade` and the built-in `all` rubric; a mutant is caught when its exercise
does not pass, and its diagnosis is right when the check that should see it gives the expected
code. Prints a table per exercise and a summary; the README records one run.

Notebook mutants (`--notebooks`: a right class in a notebook whose later cell raises, and the
like) need the cell-by-cell notebook intake of issue 12 item 10; until it is merged they are not
run by default (see NOTEBOOK_KINDS).

    python benchmarks/mutants.py                       # everything (a few minutes)
    python benchmarks/mutants.py -e softmax -e conv1d  # some exercises
    python benchmarks/mutants.py --markdown            # the summary as a Markdown table
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping

from gradegrad.catalog import load_catalog, resolve_rubric, select_exercises
from gradegrad.grading import grade
from gradegrad.options import Options
from gradegrad.report import ExerciseResult
from gradegrad.sandbox.process import Limits

HEADER = "import torch\nimport torch.nn.functional as F\nfrom torch.autograd import Function\n"


@dataclass(frozen=True)
class Body:
    """A Function's code: forward's body, backward's first lines, and one gradient per argument."""

    forward: str
    setup: str
    grads: tuple[tuple[str, str], ...]  # (argument, expression), in forward's order; "None" for none

    def with_grads(self, **changes: str) -> "Body":
        return Body(self.forward, self.setup, tuple((a, changes.get(a, e)) for a, e in self.grads))


@dataclass(frozen=True)
class Solution:
    """The reference solution of one exercise, and the variants that need its own code."""

    exercise: str
    class_name: str
    body: Body
    differentiable: tuple[str, ...]
    special: Mapping[str, Body] = field(default_factory=dict)  # kind -> body (missing_term, off_by_one, ...)
    right: tuple[Body, ...] = ()  # other right formulas
    mistakes: tuple["Mistake", ...] = ()  # realistic single mistakes, each with the diagnosis it deserves

    def source(self, body: Body, prelude: str = "", order: tuple[str, ...] | None = None) -> str:
        args = [a for a, _ in body.grads]
        order = order or tuple(args)
        grads = "".join(f"grad_{a} = {e}\n" for a, e in body.grads)
        back = textwrap.indent(prelude + body.setup.strip() + "\n" + grads, " " * 8)
        return (f"\n\nclass {self.class_name}(Function):\n    @staticmethod\n"
                f"    def forward(ctx, {', '.join(args)}):\n{textwrap.indent(body.forward.strip(), ' ' * 8)}\n\n"
                f"    @staticmethod\n    def backward(ctx, grad_output):\n{back}"
                f"        return {', '.join('grad_' + a for a in order)}\n")


def _b(forward: str, setup: str, **grads: str) -> Body:
    return Body(textwrap.dedent(forward), textwrap.dedent(setup), tuple(grads.items()))


@dataclass(frozen=True)
class Mistake:
    """One realistic mistake of a student in one exercise, and how gradegrad should name it."""

    name: str
    body: Body
    check: str = "backward"
    code: str | None = None  # None: any failure of the exercise is right (e.g. code that raises)


def _m(name: str, body: Body, check: str = "backward", code: str | None = None) -> Mistake:
    return Mistake(name, body, check, code)


SAVE_XY = "ctx.save_for_backward(x, y)\n"
DROPOUT = "scaled = mask / (1 - p)\nctx.save_for_backward(scaled)\nreturn x * scaled"
PRELU = "ctx.save_for_backward(x)\nctx.alpha = alpha\nreturn torch.where(x > 0, x, alpha * x)"
LINEAR = "ctx.save_for_backward(x, W)\nreturn x @ W.t() + b"
MSE = "diff = pred - target\nctx.save_for_backward(diff)\nreturn (diff * diff).mean()"
SOFTMAX_CE = """
    probs = torch.softmax(logits, dim=1)
    ctx.save_for_backward(probs, targets)
    return -torch.log(probs.gather(1, targets[:, None])).mean()"""
SOLUTIONS = [
    Solution("add", "Add", _b("return x + y", "", x="grad_output", y="grad_output"), ("x", "y"),
             right=(_b("return torch.add(x, y)", "", x="grad_output.clone()", y="grad_output * 1.0"),)),
    Solution("mul", "Mul", _b(SAVE_XY + "return x * y", "x, y = ctx.saved_tensors", x="grad_output * y",
                              y="grad_output * x"), ("x", "y"),
             special={"missing_term": _b(SAVE_XY + "return x * y", "x, y = ctx.saved_tensors", x="grad_output",
                                         y="grad_output * x")},
             right=(_b(SAVE_XY + "return torch.mul(x, y)", "x, y = ctx.saved_tensors",
                       x="torch.mul(y, grad_output)", y="torch.mul(x, grad_output)"),)),
    Solution("exp", "Exp", _b("y = torch.exp(x)\nctx.save_for_backward(y)\nreturn y", "(y,) = ctx.saved_tensors",
                              x="grad_output * y"), ("x",),
             special={"missing_term": _b("y = torch.exp(x)\nctx.save_for_backward(y)\nreturn y",
                                         "(y,) = ctx.saved_tensors", x="grad_output  # forgets the factor y")},
             right=(_b("ctx.save_for_backward(x)\nreturn torch.exp(x)", "(x,) = ctx.saved_tensors",
                       x="torch.exp(x) * grad_output"),)),
    Solution("sum", "Sum", _b("ctx.shape = x.shape\nreturn x.sum()", "", x="grad_output.expand(ctx.shape)"), ("x",),
             right=(_b("ctx.save_for_backward(x)\nreturn torch.sum(x)", "(x,) = ctx.saved_tensors",
                       x="torch.ones_like(x) * grad_output"),)),
    Solution("sigmoid", "Sigmoid",
             _b("""
                z = torch.exp(-x.abs())
                y = torch.where(x >= 0, 1 / (1 + z), z / (1 + z))
                ctx.save_for_backward(y)
                return y""", "(y,) = ctx.saved_tensors", x="grad_output * y * (1 - y)"), ("x",),
             special={"missing_term": _b("""
                z = torch.exp(-x.abs())
                y = torch.where(x >= 0, 1 / (1 + z), z / (1 + z))
                ctx.save_for_backward(y)
                return y""", "(y,) = ctx.saved_tensors", x="grad_output * y  # forgets (1 - y)")},
             right=(_b("""
                ctx.save_for_backward(x)
                z = torch.exp(-x.abs())
                return torch.where(x >= 0, 1 / (1 + z), z / (1 + z))""",
                       "(x,) = ctx.saved_tensors\ne = torch.exp(-x.abs())  # the derivative through exp",
                       x="grad_output * e / (1 + e) ** 2"),)),
    Solution("dot", "Dot", _b(SAVE_XY + "return (x * y).sum()", "x, y = ctx.saved_tensors",
                              x="grad_output * y", y="grad_output * x"), ("x", "y"),
             special={"jacobian": _b(SAVE_XY + "return (x * y).sum()",
                                     "x, y = ctx.saved_tensors\neye = torch.eye(x.shape[0], dtype=x.dtype)",
                                     x="grad_output * (eye @ y)", y="grad_output * (eye @ x)"),
                      "off_by_one": _b(SAVE_XY + "return (x * y).sum()", "x, y = ctx.saved_tensors",
                                       x="grad_output * torch.roll(y, 1)", y="grad_output * x")},
             right=(_b(SAVE_XY + "return torch.dot(x, y)", "x, y = ctx.saved_tensors",
                       x="y * grad_output", y="x.mul(grad_output)"),)),
    Solution("matvec", "MatVec", _b("ctx.save_for_backward(A, x)\nreturn A @ x", "A, x = ctx.saved_tensors",
                                    A="torch.outer(grad_output, x)", x="A.t() @ grad_output"), ("A", "x"),
             special={"jacobian": _b("ctx.save_for_backward(A, x)\nreturn A @ x", """
                        A, x = ctx.saved_tensors
                        m, n = A.shape
                        dy_dA = torch.eye(m, dtype=A.dtype)[:, :, None] * x  # (m, m, n): dy_i / dA_kj""",
                                     A="torch.einsum('i,ikj->kj', grad_output, dy_dA)", x="A.t() @ grad_output"),
                      "off_by_one": _b("ctx.save_for_backward(A, x)\nreturn A @ x", "A, x = ctx.saved_tensors",
                                       A="torch.outer(grad_output, torch.roll(x, 1))", x="A.t() @ grad_output")},
             right=(_b("ctx.save_for_backward(A, x)\nreturn torch.mv(A, x)", "A, x = ctx.saved_tensors",
                       A="grad_output[:, None] * x[None, :]", x="torch.mv(A.t(), grad_output)"),
                    _b("ctx.save_for_backward(A, x)\nreturn torch.einsum('ij,j->i', A, x)", "A, x = ctx.saved_tensors",
                       A="torch.einsum('i,j->ij', grad_output, x)", x="torch.einsum('ij,i->j', A, grad_output)"))),
    Solution("softmax", "Softmax",
             _b("e = torch.exp(x - x.max())\ny = e / e.sum()\nctx.save_for_backward(y)\nreturn y",
                "(y,) = ctx.saved_tensors", x="y * (grad_output - (grad_output * y).sum())"), ("x",),
             special={"missing_term": _b("e = torch.exp(x - x.max())\ny = e / e.sum()\nctx.save_for_backward(y)\n"
                                         "return y", "(y,) = ctx.saved_tensors", x="y * grad_output"),
                      "off_by_one": _b("e = torch.exp(x - x.max())\ny = e / e.sum()\nctx.save_for_backward(y)\n"
                                       "return y", "(y,) = ctx.saved_tensors",
                                       x="y * (grad_output - (grad_output[1:] * y[1:]).sum())"),
                      "jacobian": _b("e = torch.exp(x - x.max())\ny = e / e.sum()\nctx.save_for_backward(y)\nreturn y",
                                     "(y,) = ctx.saved_tensors\njacobian = torch.diag(y) - torch.outer(y, y)",
                                     x="jacobian @ grad_output")},
             right=(_b("""
                log_y = x - x.max() - torch.log(torch.exp(x - x.max()).sum())  # through log-softmax
                y = torch.exp(log_y)
                ctx.save_for_backward(y)
                return y""", "(y,) = ctx.saved_tensors", x="y * grad_output - y * torch.dot(y, grad_output)"),
                    _b("y = torch.softmax(x, dim=0)\nctx.save_for_backward(y)\nreturn y", "(y,) = ctx.saved_tensors",
                       x="y * grad_output - y * (y @ grad_output)"))),
    Solution("dropout", "Dropout",
             _b(DROPOUT, "(scaled,) = ctx.saved_tensors",
                x="grad_output * scaled", mask="None", p="None"), ("x",),
             special={"missing_term": _b("ctx.save_for_backward(mask)\nreturn x * mask / (1 - p)",
                                         "(mask,) = ctx.saved_tensors", x="grad_output * mask", mask="None", p="None")},
             right=(_b("ctx.save_for_backward(mask)\nctx.p = p\nreturn x * mask / (1 - p)",
                       "(mask,) = ctx.saved_tensors",
                       x="grad_output * mask / (1 - ctx.p)", mask="None", p="None"),)),
    Solution("leaky_relu", "LeakyReLU",
             _b("ctx.save_for_backward(x)\nreturn torch.where(x > 0, x, 0.01 * x)", "(x,) = ctx.saved_tensors",
                x="torch.where(x > 0, grad_output, 0.01 * grad_output)"), ("x",),
             special={"missing_term": _b("ctx.save_for_backward(x)\nreturn torch.where(x > 0, x, 0.01 * x)",
                                         "(x,) = ctx.saved_tensors",
                                         x="torch.where(x > 0, grad_output, torch.zeros_like(grad_output))")},
             right=(_b("ctx.save_for_backward(x)\nreturn F.leaky_relu(x, 0.01)", "(x,) = ctx.saved_tensors",
                       x="grad_output * ((x > 0).to(x.dtype) * 0.99 + 0.01)"),)),
    Solution("param_relu", "ParamReLU",
             _b(PRELU, "(x,) = ctx.saved_tensors", x="torch.where(x > 0, grad_output, ctx.alpha * grad_output)",
                alpha="None"), ("x",),
             special={"missing_term": _b(PRELU, "(x,) = ctx.saved_tensors",
                                         x="torch.where(x > 0, grad_output, 0 * grad_output)",
                                         alpha="None")},
             right=(_b("ctx.save_for_backward(x)\nctx.alpha = alpha\nreturn torch.maximum(x, alpha * x) if alpha < 1 "
                       "else torch.where(x > 0, x, alpha * x)", "(x,) = ctx.saved_tensors\n"
                       "slope = torch.where(x > 0, torch.ones_like(x), torch.full_like(x, ctx.alpha))",
                       x="grad_output * slope", alpha="None"),)),
    Solution("conv1d", "Conv1d",
             _b("ctx.save_for_backward(x, w)\nreturn x.unfold(0, w.shape[0], 1) @ w", """
                x, w = ctx.saved_tensors
                k, n_out = w.shape[0], grad_output.shape[0]
                gx = x.new_zeros(x.shape)
                for j in range(k):
                    gx[j:j + n_out] += w[j] * grad_output""", x="gx", w="x.unfold(0, n_out, 1) @ grad_output"),
             ("x", "w"),
             special={"off_by_one": _b("ctx.save_for_backward(x, w)\nreturn x.unfold(0, w.shape[0], 1) @ w", """
                        x, w = ctx.saved_tensors
                        k, n_out = w.shape[0], grad_output.shape[0]
                        gx = x.new_zeros(x.shape)
                        for j in range(1, k):  # off by one: skips the first tap
                            gx[j:j + n_out] += w[j] * grad_output""", x="gx", w="x.unfold(0, n_out, 1) @ grad_output"),
                      "missing_term": _b("ctx.save_for_backward(x, w)\nreturn x.unfold(0, w.shape[0], 1) @ w", """
                        x, w = ctx.saved_tensors
                        n_out = grad_output.shape[0]
                        gx = x.new_zeros(x.shape)
                        gx[:n_out] = w[0] * grad_output  # only the first tap's term""",
                                         x="gx", w="x.unfold(0, n_out, 1) @ grad_output"),
                      "jacobian": _b("ctx.save_for_backward(x, w)\nreturn x.unfold(0, w.shape[0], 1) @ w", """
                        x, w = ctx.saved_tensors
                        n, k, n_out = x.shape[0], w.shape[0], grad_output.shape[0]
                        toeplitz = x.new_zeros(n_out, n)  # the Jacobian of the output with respect to x
                        for j in range(k):
                            toeplitz.diagonal(j)[:] = w[j]""", x="toeplitz.t() @ grad_output",
                                     w="x.unfold(0, n_out, 1) @ grad_output")},
             right=(_b("ctx.save_for_backward(x, w)\nreturn F.conv1d(x[None, None], w[None, None])[0, 0]", """
                        x, w = ctx.saved_tensors
                        k = w.shape[0]
                        padded = F.pad(grad_output, (k - 1, k - 1))  # full convolution through unfold""",
                       x="padded.unfold(0, k, 1) @ w.flip(0)", w="x.unfold(0, grad_output.shape[0], 1) @ grad_output"),
                    _b("ctx.save_for_backward(x, w)\nreturn x.unfold(0, w.shape[0], 1) @ w", "x, w = ctx.saved_tensors",
                       x="F.conv_transpose1d(grad_output[None, None], w[None, None])[0, 0]",
                       w="F.conv1d(x[None, None], grad_output[None, None])[0, 0]"))),
    Solution("linear", "Linear",
             _b(LINEAR, "x, W = ctx.saved_tensors",
                x="grad_output @ W", W="grad_output.t() @ x", b="grad_output.sum(dim=0)"), ("x", "W", "b"),
             special={"off_by_one": _b(LINEAR, "x, W = ctx.saved_tensors",
                                       x="grad_output @ W", W="grad_output.t() @ x", b="grad_output[1:].sum(dim=0)"),
                      "missing_term": _b(LINEAR, "x, W = ctx.saved_tensors",
                                         x="grad_output @ W", W="grad_output.t() @ x", b="grad_output[0]"),
                      "jacobian": _b(LINEAR, """
                        x, W = ctx.saved_tensors
                        n = x.shape[0]
                        jacobian = torch.kron(torch.eye(n, dtype=x.dtype), W)  # d vec(Y) / d vec(x)""",
                                     x="(grad_output.reshape(-1) @ jacobian).reshape(x.shape)", W="grad_output.t() @ x",
                                     b="grad_output.sum(dim=0)")},
             right=(_b("ctx.save_for_backward(x, W)\nreturn F.linear(x, W, b)", "x, W = ctx.saved_tensors",
                       x="torch.einsum('no,oi->ni', grad_output, W)", W="torch.einsum('no,ni->oi', grad_output, x)",
                       b="torch.ones(grad_output.shape[0], dtype=grad_output.dtype) @ grad_output"),)),
    Solution("mse_loss", "MSELoss",
             _b(MSE, "(diff,) = ctx.saved_tensors",
                pred="grad_output * 2 * diff / diff.numel()", target="None"), ("pred",),
             special={"off_by_one": _b(MSE, "(diff,) = ctx.saved_tensors",
                                       pred="grad_output * 2 * diff / (diff.numel() - 1)",
                                       target="None"),
                      "missing_term": _b("ctx.save_for_backward(pred, target)\nreturn ((pred - target) ** 2).mean()",
                                         "pred, target = ctx.saved_tensors",
                                         pred="grad_output * 2 * pred / pred.numel()",
                                         target="None")},
             right=(_b("ctx.save_for_backward(pred, target)\nreturn F.mse_loss(pred, target)",
                       "pred, target = ctx.saved_tensors",
                       pred="2 * (pred - target) * grad_output / pred.numel()", target="None"),)),
    Solution("cross_entropy", "CrossEntropy",
             _b("""
                log_probs = logits - logits.max(dim=1, keepdim=True).values
                log_probs = log_probs - torch.log(torch.exp(log_probs).sum(dim=1, keepdim=True))
                ctx.save_for_backward(torch.exp(log_probs), targets)
                return -log_probs.gather(1, targets[:, None]).mean()""", """
                probs, targets = ctx.saved_tensors
                onehot = F.one_hot(targets, probs.shape[1]).to(probs.dtype)""",
                logits="(probs - onehot) / probs.shape[0] * grad_output", targets="None"), ("logits",),
             special={"missing_term": _b(SOFTMAX_CE, "probs, targets = ctx.saved_tensors",
                                         logits="probs / probs.shape[0] * grad_output", targets="None"),
                      "off_by_one": _b(SOFTMAX_CE, """
                        probs, targets = ctx.saved_tensors
                        onehot = F.one_hot(targets, probs.shape[1]).to(probs.dtype)""",
                                       logits="(probs - onehot) / (probs.shape[0] - 1) * grad_output", targets="None"),
                      "jacobian": _b(SOFTMAX_CE, """
                        probs, targets = ctx.saved_tensors
                        n, c = probs.shape
                        jac = torch.diag_embed(probs) - probs[:, :, None] * probs[:, None, :]  # each row's c x c
                        dlogp = -F.one_hot(targets, c).to(probs.dtype) / probs""",
                                     logits="grad_output * torch.einsum('nc,ncd->nd', dlogp, jac) / n",
                                     targets="None")},
             right=(_b("ctx.save_for_backward(logits, targets)\nreturn F.cross_entropy(logits, targets)", """
                        logits, targets = ctx.saved_tensors
                        probs = torch.exp(torch.log_softmax(logits, dim=1))  # through log-softmax
                        grad = probs.scatter_add(1, targets[:, None], -torch.ones_like(probs[:, :1]))""",
                       logits="grad * (grad_output / logits.shape[0])", targets="None"),)),
]


# --------------------------------------------------------------------------- issue 12: in-place writes,
# dtypes, stability, scalar results, and students' own single mistakes (written for this benchmark)

SIGMOID_Y = """
    z = torch.exp(-x.abs())
    y = torch.where(x >= 0, 1 / (1 + z), z / (1 + z))
    ctx.save_for_backward(y)
    return y"""
SIGMOID_X = """
    ctx.save_for_backward(x)
    z = torch.exp(-x.abs())
    return torch.where(x >= 0, 1 / (1 + z), z / (1 + z))"""
SOFTMAX_Y = "e = torch.exp(x - x.max())\ny = e / e.sum()\nctx.save_for_backward(y)\nreturn y"
LEAKY_X = "ctx.save_for_backward(x)\nreturn torch.where(x > 0, x, 0.01 * x)"
CONV = "ctx.save_for_backward(x, w)\nreturn x.unfold(0, w.shape[0], 1) @ w"
CE_SAVED = """
    log_probs = logits - logits.max(dim=1, keepdim=True).values
    log_probs = log_probs - torch.log(torch.exp(log_probs).sum(dim=1, keepdim=True))
    ctx.save_for_backward(torch.exp(log_probs), targets)
    return -log_probs.gather(1, targets[:, None]).mean()"""
CE_BACK = """
    probs, targets = ctx.saved_tensors
    onehot = F.one_hot(targets, probs.shape[1]).to(probs.dtype)"""

MORE_SPECIAL: dict[str, dict[str, Body]] = {
    "mul": {"inplace_grad_output": _b(SAVE_XY + "return x * y", "x, y = ctx.saved_tensors\ngrad_x = grad_output * y",
                                      x="grad_x", y="grad_output.mul_(x)  # in the caller's tensor")},
    "exp": {"inplace_input": _b("ctx.save_for_backward(x)\nreturn torch.exp(x)",
                                "(x,) = ctx.saved_tensors\nx.exp_()  # in the caller's x", x="grad_output * x"),
            "inplace_output": _b("y = torch.exp(x)\nctx.save_for_backward(y)\nreturn y",
                                 "(y,) = ctx.saved_tensors\ny.mul_(grad_output)  # overwrites the output", x="y")},
    "sigmoid": {"inplace_output": _b(SIGMOID_Y, "(y,) = ctx.saved_tensors\ny.mul_(1 - y)  # overwrites the output",
                                     x="grad_output * y"),
                "inplace_input": _b(SIGMOID_X, "(x,) = ctx.saved_tensors\nx.abs_().neg_().exp_()  # in the caller's x",
                                    x="grad_output * x / (1 + x) ** 2"),
                "unstable": _b("e = torch.exp(x)\ny = e / (1 + e)  # inf / inf past x = 709\nctx.save_for_backward(y)\n"
                               "return y", "(y,) = ctx.saved_tensors", x="grad_output * y * (1 - y)"),
                "unstable_2": _b(SIGMOID_X, "(x,) = ctx.saved_tensors\n"
                                 "e = torch.exp(-x.clamp(-700, 700))  # fine in float64, inf in float32",
                                 x="grad_output * e / (1 + e) ** 2")},
    "softmax": {"inplace_grad_output": _b(SOFTMAX_Y, "(y,) = ctx.saved_tensors\n"
                                          "grad_output -= (grad_output * y).sum()  # in the caller's tensor",
                                          x="y * grad_output"),
                "inplace_output": _b(SOFTMAX_Y, "(y,) = ctx.saved_tensors\n"
                                     "y.mul_(grad_output - (grad_output * y).sum())  # overwrites the output", x="y"),
                "inplace_input": _b("x -= x.max()  # in the caller's x\ne = torch.exp(x)\ny = e / e.sum()\n"
                                    "ctx.save_for_backward(y)\nreturn y", "(y,) = ctx.saved_tensors",
                                    x="y * (grad_output - (grad_output * y).sum())"),
                "unstable": _b("e = torch.exp(x)  # no maximum subtracted\ny = e / e.sum()\nctx.save_for_backward(y)\n"
                               "return y", "(y,) = ctx.saved_tensors", x="y * (grad_output - (grad_output * y).sum())"),
                "unstable_2": _b("e = torch.exp(x - x.mean())  # the mean, not the maximum\ny = e / e.sum()\n"
                                 "ctx.save_for_backward(y)\nreturn y", "(y,) = ctx.saved_tensors",
                                 x="y * (grad_output - (grad_output * y).sum())")},
    "dropout": {"inplace_grad_output": _b(DROPOUT, "(scaled,) = ctx.saved_tensors\n"
                                          "grad_output.mul_(scaled)  # in the caller's tensor",
                                          x="grad_output", mask="None", p="None")},
    "leaky_relu": {"inplace_grad_output": _b(LEAKY_X, "(x,) = ctx.saved_tensors\n"
                                             "grad_output[x <= 0] *= 0.01  # in the caller's tensor", x="grad_output")},
    "mse_loss": {"inplace_saved": _b(MSE, "(diff,) = ctx.saved_tensors\n"
                                     "diff.mul_(2 * grad_output / diff.numel())  # overwrites a saved tensor",
                                     pred="diff", target="None")},
    "cross_entropy": {"inplace_saved": _b(CE_SAVED, "probs, targets = ctx.saved_tensors\n"
                                          "probs -= F.one_hot(targets, probs.shape[1]).to(probs.dtype)  # a saved tensor",
                                          logits="probs / probs.shape[0] * grad_output", targets="None"),
                      "wrong_forward": _b("ctx.save_for_backward(logits, targets)\n"
                                          "return torch.logsumexp(logits, dim=0).mean() - "
                                          "logits.gather(1, targets[:, None]).mean()  # logsumexp over the batch",
                                          "logits, targets = ctx.saved_tensors\nprobs = torch.softmax(logits, dim=1)\n"
                                          "onehot = F.one_hot(targets, probs.shape[1]).to(probs.dtype)",
                                          logits="(probs - onehot) / probs.shape[0] * grad_output", targets="None")},
    "dot": {"wrong_forward": _b(SAVE_XY + "return (x * y).mean()  # a mean, not a sum", "x, y = ctx.saved_tensors",
                                x="grad_output * y", y="grad_output * x")},
}

MORE_RIGHT: dict[str, tuple[Body, ...]] = {
    "mul": (_b(SAVE_XY + "return x * y", "x, y = ctx.saved_tensors\ngrad_y = grad_output.clone()\n"
               "grad_y.mul_(x)  # in place, on its own copy", x="grad_output * y", y="grad_y"),),
    "sigmoid": (_b(SIGMOID_Y, "(y,) = ctx.saved_tensors\nd = y.clone()\nd.mul_(1 - y)  # in place, on its own copy",
                   x="grad_output * d"),),
    "leaky_relu": (_b(LEAKY_X, "(x,) = ctx.saved_tensors\ng = grad_output.clone()\ng[x <= 0] *= 0.01  # its own copy",
                      x="g"),
                   _b("ctx.save_for_backward(x)\nreturn torch.where(x >= 0, x, 0.01 * x)", "(x,) = ctx.saved_tensors",
                      x="torch.where(x >= 0, grad_output, 0.01 * grad_output)")),
    "dropout": (_b("ctx.save_for_backward(x, mask)\nctx.p = p\nreturn x * mask / (1 - p)", "x, mask = ctx.saved_tensors",
                   x="grad_output * mask / (1 - ctx.p)", mask="grad_output * x / (1 - ctx.p)  # not needed: ignored",
                   p="None"),),
    "mse_loss": (_b(MSE, "(diff,) = ctx.saved_tensors", pred="grad_output * 2 * diff / diff.numel()",
                    target="-grad_output * 2 * diff / diff.numel()  # not needed: ignored"),),
    "softmax": (_b(SOFTMAX_Y, "(y,) = ctx.saved_tensors\ng = grad_output.clone()\ng -= (g * y).sum()  # its own copy",
                   x="y * g"),),
    "sum": (_b("ctx.shape = x.shape\nreturn x.sum()", "",
               x="grad_output * torch.ones(ctx.shape, dtype=grad_output.dtype)"),),
}

MISTAKES: dict[str, tuple[Mistake, ...]] = {
    "sigmoid": (_m("one_plus_y", _b(SIGMOID_Y, "(y,) = ctx.saved_tensors", x="grad_output * y * (1 + y)"),
                   code="known_mistake"),
                _m("of_the_input", _b(SIGMOID_X, "(x,) = ctx.saved_tensors", x="grad_output * x * (1 - x)"),
                   code="known_mistake")),
    "softmax": (_m("softmax_as_sigmoid", _b(SOFTMAX_Y, "(y,) = ctx.saved_tensors", x="grad_output * y * (1 - y)"),
                   code="known_mistake"),
                _m("unweighted_sum", _b(SOFTMAX_Y, "(y,) = ctx.saved_tensors",
                                        x="y * (grad_output - grad_output.sum())"), code="known_mistake")),
    "cross_entropy": (_m("ce_forgets_the_mean", _b(CE_SAVED, CE_BACK, logits="(probs - onehot) * grad_output",
                                                   targets="None"), code="known_mistake"),
                      _m("no_onehot", _b(CE_SAVED, CE_BACK, logits="probs * grad_output / probs.shape[0]",
                                         targets="None"), code="known_mistake")),
    "linear": (_m("bias_not_summed", _b(LINEAR, "x, W = ctx.saved_tensors", x="grad_output @ W",
                                        W="grad_output.t() @ x", b="grad_output"), code="wrong_shape"),
               _m("weight_transposed", _b(LINEAR, "x, W = ctx.saved_tensors", x="grad_output @ W",
                                          W="x.t() @ grad_output", b="grad_output.sum(dim=0)"), code="wrong_shape"),
               _m("bias_mean", _b(LINEAR, "x, W = ctx.saved_tensors", x="grad_output @ W", W="grad_output.t() @ x",
                                  b="grad_output.mean(dim=0)"), code="known_mistake")),
    "conv1d": (_m("unflipped_kernel", _b(CONV, "x, w = ctx.saved_tensors\nk = w.shape[0]\n"
                                         "padded = F.pad(grad_output, (k - 1, k - 1))",
                                         x="padded.unfold(0, k, 1) @ w  # forgets to flip w",
                                         w="x.unfold(0, grad_output.shape[0], 1) @ grad_output"), code="known_mistake"),),
    "matvec": (_m("x_without_transpose", _b("ctx.save_for_backward(A, x)\nreturn A @ x", "A, x = ctx.saved_tensors",
                                            A="torch.outer(grad_output, x)", x="A @ grad_output  # raises")),),
    "leaky_relu": (_m("slope_0.1", _b(LEAKY_X, "(x,) = ctx.saved_tensors",
                                      x="torch.where(x > 0, grad_output, 0.1 * grad_output)"), code="wrong_branch"),
                   _m("swapped_slopes", _b(LEAKY_X, "(x,) = ctx.saved_tensors",
                                           x="torch.where(x > 0, 0.01 * grad_output, grad_output)"),
                      code="swapped_branches"),
                   _m("relu_derivative", _b(LEAKY_X, "(x,) = ctx.saved_tensors",
                                            x="(x > 0).to(grad_output.dtype) * grad_output"), code="known_mistake")),
    "dropout": (_m("times_keep_probability", _b("ctx.save_for_backward(mask)\nctx.p = p\nreturn x * mask / (1 - p)",
                                                "(mask,) = ctx.saved_tensors", x="grad_output * mask * (1 - ctx.p)",
                                                mask="None", p="None"), code="scale_error"),
                _m("no_mask", _b("ctx.p = p\nreturn x * mask / (1 - p)", "", x="grad_output / (1 - ctx.p)",
                                 mask="None", p="None"), code="known_mistake")),
    "mse_loss": (_m("forgets_the_2", _b(MSE, "(diff,) = ctx.saved_tensors", pred="grad_output * diff / diff.numel()",
                                        target="None"), code="scale_error"),
                 _m("sum_not_mean", _b("diff = pred - target\nctx.save_for_backward(diff)\nreturn (diff * diff).sum()",
                                       "(diff,) = ctx.saved_tensors", pred="grad_output * 2 * diff / diff.numel()",
                                       target="None"), check="forward", code="scale_error"),
                 _m("not_divided", _b(MSE, "(diff,) = ctx.saved_tensors", pred="grad_output * 2 * diff",
                                      target="None"), code="scale_error")),
    "sum": (_m("not_expanded", _b("ctx.shape = x.shape\nreturn x.sum()", "", x="grad_output"), code="wrong_shape"),),
}

SOLUTIONS = [replace(s, special={**s.special, **MORE_SPECIAL.get(s.exercise, {})},
                     right=s.right + MORE_RIGHT.get(s.exercise, ()), mistakes=MISTAKES.get(s.exercise, ()))
             for s in SOLUTIONS]


@dataclass(frozen=True)
class Kind:
    """A kind of variant: wrong (a mutant, with the check and code that should name it) or right."""

    name: str
    wrong: bool
    check: str = "backward"
    code: str | None = None  # None: any failure is the right diagnosis (no specific code applies)
    family: str = ""  # for the summary: in-place, dtype, stability, scalar, mistake


RIGHT_FORMS = 3  # rewritten, rewritten_2, ... : the right formulas of a Solution
MISTAKE_FILES = 3  # mistake_1, ... : a Solution's own mistakes, the i-th of each exercise in one file

KINDS = (
    Kind("sign_flip", True, code="sign_error"),
    Kind("drop_grad_output", True, code="ignores_grad_output"),
    Kind("grad_output_twice", True, code="grad_output_twice", family="scalar"),
    Kind("swapped_order", True, code="swapped_gradients"),
    Kind("transposed", True, code="wrong_shape"),
    Kind("constant_factor", True, code="scale_error"),
    Kind("missing_term", True),
    Kind("off_by_one", True),
    Kind("returns_none", True, code="missing_gradient"),
    Kind("jacobian", True, check="efficiency", code="inefficient_backward"),
    Kind("wrong_forward", True, check="forward", code="wrong_values", family="scalar"),
    Kind("float32_gradient", True, code="wrong_dtype", family="dtype"),
    Kind("float32_forward", True, check="forward", code="wrong_dtype", family="dtype"),
    Kind("inplace_grad_output", True, check="inputs_unchanged", code="mutates_grad_output", family="in-place"),
    Kind("inplace_output", True, check="inputs_unchanged", code="mutates_output", family="in-place"),
    Kind("inplace_input", True, check="inputs_unchanged", code="mutates_input", family="in-place"),
    Kind("inplace_saved", True, check="inputs_unchanged", code="mutates_saved", family="in-place"),
    Kind("unstable", True, check="stability", code="not_finite", family="stability"),
    Kind("unstable_2", True, check="stability", code="not_finite", family="stability"),
    *(Kind(f"mistake_{i}", True, family="mistake") for i in range(1, MISTAKE_FILES + 1)),
    Kind("reference", False),
    *(Kind("rewritten" if i == 1 else f"rewritten_{i}", False) for i in range(1, RIGHT_FORMS + 1)),
    Kind("upcast_gradient", False, family="dtype"),
)
# A notebook of the seeds' kind, graded through the submission intake (gradegrad.intake): a right
# class in a cell, a later cell that raises (or a placeholder cell), and a wrong class. They need the
# cell-by-cell notebook intake of issue 12 item 10 (robust's); `--notebooks` runs them.
NOTEBOOK_KINDS = (
    Kind("notebook_later_cell_raises", False, family="notebook"),
    Kind("notebook_wrong_class", True, code="sign_error", family="notebook"),
)


def expected(sol: Solution, kind: Kind) -> Kind:
    """The kind as graded for this exercise: a `mistake_i` becomes that exercise's own mistake."""
    if kind.family == "mistake" and kind.name.startswith("mistake_"):
        i = int(kind.name.split("_")[1]) - 1
        if i < len(sol.mistakes):
            m = sol.mistakes[i]
            return Kind(m.name, True, m.check, m.code, "mistake")
    return kind


def _last_return(forward: str, wrap: str) -> str:
    """`forward` with its last `return X` made `return wrap(X)` (wrap has one {})."""
    lines = forward.strip().split("\n")
    last = max(i for i, line in enumerate(lines) if line.lstrip().startswith("return "))
    indent, value = lines[last].split("return ", 1)
    value, _, comment = value.partition("  #")
    lines[last] = f"{indent}return {wrap.format(value.strip())}"
    return "\n".join(lines)


def variant(sol: Solution, kind: Kind, shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    """The class source of `kind` for one exercise, or None where the kind does not apply."""
    body, first = sol.body, sol.differentiable[0]
    expr = dict(body.grads)
    if kind.name == "sign_flip":
        return sol.source(body.with_grads(**{first: f"-({expr[first]})"}))
    if kind.name == "drop_grad_output":
        return sol.source(body, prelude="grad_output = torch.ones_like(grad_output)  # mutant\n")
    if kind.name == "swapped_order":
        if len(sol.differentiable) < 2 or sol.exercise == "add":  # add's two gradients are equal
            return None
        a, b = sol.differentiable[:2]
        order = tuple(b if x == a else a if x == b else x for x, _ in body.grads)
        return sol.source(body, order=order)
    if kind.name == "transposed":
        wide = [a for a in sol.differentiable if len(shapes[a]) == 2 and shapes[a][0] != shapes[a][1]]
        return sol.source(body.with_grads(**{wide[0]: f"({expr[wide[0]]}).t()"})) if wide else None
    if kind.name == "constant_factor":
        return sol.source(body.with_grads(**{first: f"2 * ({expr[first]})"}))
    if kind.name == "grad_output_twice":
        return sol.source(body, prelude="grad_output = grad_output * grad_output  # mutant\n")
    if kind.name == "float32_gradient":
        return sol.source(body.with_grads(**{first: f"({expr[first]}).float()  # mutant"}))
    if kind.name == "upcast_gradient":
        return sol.source(body.with_grads(**{first: f"({expr[first]}).double()  # autograd casts it back"}))
    if kind.name == "float32_forward":
        return sol.source(Body(_last_return(body.forward, "({}).float()  # mutant"), body.setup, body.grads))
    if kind.family == "mistake":
        i = int(kind.name.split("_")[1]) - 1
        return sol.source(sol.mistakes[i].body) if i < len(sol.mistakes) else None
    if kind.name == "returns_none":
        return sol.source(body.with_grads(**{first: "None"}))
    if kind.name == "reference":
        return sol.source(body)
    if kind.name.startswith("rewritten"):
        i = int(kind.name.split("_")[1]) - 1 if "_" in kind.name else 0
        return sol.source(sol.right[i]) if i < len(sol.right) else None
    special = sol.special.get(kind.name)
    return sol.source(special) if special is not None else None


@dataclass(frozen=True)
class Outcome:
    exercise: str
    kind: Kind
    status: str  # the exercise's status
    decisive: str  # "check: code" of the first check that did not pass, or ""
    code: str | None  # the diagnosis of the kind's own check

    @property
    def ok(self) -> bool:
        """Caught with the right diagnosis (a mutant), or passed (a right variant)."""
        if not self.kind.wrong:
            return self.status == "passed"
        return self.caught and (self.kind.code is None or self.code == self.kind.code)

    @property
    def caught(self) -> bool:
        return self.status != "passed"


def write_files(exercises: Iterable[str], kinds: Iterable[Kind], folder: Path) -> dict[str, list[str]]:
    """One file per kind, one class per exercise it applies to; returns kind -> exercises in it."""
    catalog = load_catalog()
    chosen = [s for s in SOLUTIONS if s.exercise in set(exercises)]
    written: dict[str, list[str]] = {}
    for kind in kinds:
        parts, ids = [HEADER], []
        for sol in chosen:
            shapes = {s.name: s.shape for s in catalog[sol.exercise].inputs}
            code = variant(sol, kind, shapes)
            if code is not None:
                parts.append(code)
                ids.append(sol.exercise)
        if ids:
            (folder / f"{kind.name}.py").write_text("".join(parts))
            written[kind.name] = ids
    return written


def _outcome(result: ExerciseResult, kind: Kind) -> Outcome:
    problem = result.first_problem
    decisive = f"{problem.id}: {problem.diagnosis or problem.status}" if problem else ""
    own = next((c for c in result.checks if c.id == kind.check), None)
    code = own.diagnosis if own is not None and own.status != "passed" else None
    return Outcome(result.id, kind, result.status, decisive, code)


def run(exercises: Iterable[str], kinds: Iterable[Kind] = KINDS, folder: Path | None = None,
        seed: int = 0) -> list[Outcome]:
    """Write the variants, grade every file with the `all` rubric, and return one outcome each."""
    catalog = load_catalog()
    kinds = list(kinds)
    solutions = {s.exercise: s for s in SOLUTIONS}
    with tempfile.TemporaryDirectory(prefix="gradegrad-mutants-") as tmp:
        folder = folder or Path(tmp)
        written = write_files(exercises, [k for k in kinds if k.family != "notebook"], folder)
        outcomes = []
        for kind in kinds:
            if kind.family == "notebook":
                outcomes += run_notebook(kind, exercises, folder, seed)
                continue
            if kind.name not in written:
                continue
            rubric = select_exercises(resolve_rubric("all", catalog), written[kind.name], catalog)
            report = grade(folder / f"{kind.name}.py", rubric, catalog, Options(seed, "cpu", Limits(60.0)))
            outcomes += [_outcome(r, expected(solutions[r.id], kind)) for r in report.exercises]
    return outcomes


def notebook(cells: list[str]) -> str:
    """A minimal .ipynb with one code cell per source."""
    import json

    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": cell.splitlines(keepends=True)} for cell in cells]})


def run_notebook(kind: Kind, exercises: Iterable[str], folder: Path, seed: int = 0) -> list[Outcome]:
    """The notebook mutants: one notebook per exercise, graded like `gradegrad check lab.ipynb`.

    The hook for the notebook intake (issue 12 item 10): with the intake that stops a notebook at its
    first failing cell, `notebook_later_cell_raises` is graded 0 (a false failure); with cell-by-cell
    intake it passes."""
    from gradegrad.batch import grade_source
    from gradegrad.intake import source_for

    catalog = load_catalog()
    outcomes = []
    for sol in [s for s in SOLUTIONS if s.exercise in set(exercises)]:
        body = sol.body if not kind.wrong else sol.body.with_grads(
            **{sol.differentiable[0]: f"-({dict(sol.body.grads)[sol.differentiable[0]]})"})
        cells = [HEADER, sol.source(body), "check_my_work()  # a cell that raises NameError, as in the seeds"]
        path = folder / f"{kind.name}_{sol.exercise}.ipynb"
        path.write_text(notebook(cells))
        rubric = select_exercises(resolve_rubric("all", catalog), [sol.exercise], catalog)
        report = grade_source(source_for(path), rubric, catalog, Options(seed, "cpu", Limits(60.0)))
        outcomes += [_outcome(r, kind) for r in report.exercises]
    return outcomes


def exercise_table(exercise: str, outcomes: list[Outcome]) -> str:
    rows = [o for o in outcomes if o.exercise == exercise]
    wrong, right = [o for o in rows if o.kind.wrong], [o for o in rows if not o.kind.wrong]
    lines = [f"{exercise}: mutants caught {sum(o.caught for o in wrong)}/{len(wrong)}, right diagnosis "
             f"{sum(o.ok for o in wrong)}/{len(wrong)}, right answers passed {sum(o.ok for o in right)}/{len(right)}"]
    for o in rows:
        verdict = ("caught" if o.caught else "MISSED") if o.kind.wrong else ("passed" if o.ok else "FALSE FAILURE")
        expected = f"{o.kind.check}: {o.kind.code or 'any'}" if o.kind.wrong else "passes"
        mark = "ok" if o.ok else "WRONG"
        lines.append(f"  {o.kind.name:<17} {verdict:<14} {o.decisive or '-':<44} expected {expected:<36} {mark}")
    return "\n".join(lines)


def summary(outcomes: list[Outcome]) -> list[tuple[str, int, int, int, int, int]]:
    """Per exercise: (id, caught, right diagnosis, mutants, right answers passed, right answers)."""
    rows = []
    for ex in dict.fromkeys(o.exercise for o in outcomes):
        mine = [o for o in outcomes if o.exercise == ex]
        wrong, right = [o for o in mine if o.kind.wrong], [o for o in mine if not o.kind.wrong]
        rows.append((ex, sum(o.caught for o in wrong), sum(o.ok for o in wrong), len(wrong),
                     sum(o.ok for o in right), len(right)))
    return rows


def markdown(outcomes: list[Outcome]) -> str:
    rows = summary(outcomes)
    lines = ["| exercise | mutants caught | right diagnosis | right answers passed |", "|---|---|---|---|"]
    lines += [f"| {ex} | {c}/{n} | {d}/{n} | {p}/{r} |" for ex, c, d, n, p, r in rows]
    totals = [sum(r[i] for r in rows) for i in range(1, 6)]
    lines.append(f"| **all** | **{totals[0]}/{totals[2]}** | **{totals[1]}/{totals[2]}** | "
                 f"**{totals[3]}/{totals[4]}** |")
    return "\n".join(lines)


def _status(o: Outcome) -> str:
    """What the kind's own check said when it gave no code: error (raised), passed (caught elsewhere)."""
    return o.decisive.split(": ", 1)[1] if o.decisive.startswith(o.kind.check + ":") else "passed"


def kind_markdown(outcomes: list[Outcome]) -> str:
    """Per kind: how many exercises it applies to, how many were caught, and the diagnoses its own
    check gave. The students' own mistakes (a different one per exercise) share one row."""
    lines = ["| variant | exercises | caught / passed | diagnosis given |", "|---|---|---|---|"]
    label = lambda k: "own mistakes (see the tables per exercise)" if k.family == "mistake" else k.name  # noqa: E731
    for name in dict.fromkeys(label(o.kind) for o in outcomes):
        mine = [o for o in outcomes if label(o.kind) == name]
        wrong = mine[0].kind.wrong
        good = sum(o.caught for o in mine) if wrong else sum(o.ok for o in mine)
        codes = sorted({f"{o.kind.check}: {o.code or _status(o)}" for o in mine}) if wrong else []
        given = ", ".join(f"`{c}`" for c in codes) or "passes"
        lines.append(f"| {name}{'' if wrong else ' (right)'} | {len(mine)} | {good}/{len(mine)} | {given} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-e", "--exercise", action="append", help="only these exercises (repeatable)")
    parser.add_argument("--markdown", action="store_true", help="print the summary as a Markdown table only")
    parser.add_argument("--keep", type=Path, help="write the generated files to this folder")
    parser.add_argument("--seed", type=int, default=0, help="the grading seed (inputs, upstream gradients)")
    parser.add_argument("--notebooks", action="store_true", help="also the notebook mutants (they need the "
                        "cell-by-cell notebook intake, issue 12 item 10)")
    args = parser.parse_args(argv)
    exercises = args.exercise or [s.exercise for s in SOLUTIONS]
    start = time.perf_counter()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    outcomes = run(exercises, KINDS + (NOTEBOOK_KINDS if args.notebooks else ()), folder=args.keep, seed=args.seed)
    if not args.markdown:
        for ex in dict.fromkeys(o.exercise for o in outcomes):
            print(exercise_table(ex, outcomes), end="\n\n")
    print(markdown(outcomes), kind_markdown(outcomes), sep="\n\n")
    wrong = [o for o in outcomes if o.kind.wrong]
    right = [o for o in outcomes if not o.kind.wrong]
    caught, diagnosed = sum(o.caught for o in wrong), sum(o.ok for o in wrong)
    print(f"\n{caught}/{len(wrong)} mutants caught ({100 * caught / max(1, len(wrong)):.0f}%), {diagnosed}/{len(wrong)} "
          f"with the right diagnosis ({100 * diagnosed / max(1, len(wrong)):.0f}%); {sum(not o.ok for o in right)} "
          f"false failures out of {len(right)} right answers; {time.perf_counter() - start:.0f} s")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
