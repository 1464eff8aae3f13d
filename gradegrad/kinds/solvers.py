"""Reference solvers for the `ode` and `deq` exercises, in plain torch (the manifests' `solvers`).

Trusted code, evaluated in the grader by manifests' reference expressions such as
`solvers.ode_tanh(y0, W, T, steps)`: the reference of an adjoint is backprop through the same
solver unrolled (autograd through every RK4 step), and the reference of a deep equilibrium layer
is its fixed point with the gradient of the implicit-function theorem (a linear solve). The
`deq` diagnoses use `deq_mistakes`: the gradients that the classic mistakes give.
"""

from __future__ import annotations

from typing import Callable

import torch

Field = Callable[[torch.Tensor], torch.Tensor]
DEQ_TOL = 1e-13  # the reference fixed point's residual |f(z) - z|
DEQ_ITERATIONS = 10_000


def rk4(field: Field, y0: torch.Tensor, T: float, steps: int) -> torch.Tensor:
    """y(T) of dy/dt = field(y) from y(0) = y0, by `steps` classic Runge-Kutta steps (differentiable)."""
    h = float(T) / int(steps)
    y = y0
    for _ in range(int(steps)):
        k1 = field(y)
        k2 = field(y + h / 2 * k1)
        k3 = field(y + h / 2 * k2)
        k4 = field(y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y


def ode_tanh(y0: torch.Tensor, W: torch.Tensor, T: float, steps: int) -> torch.Tensor:
    """dy/dt = tanh(W y), integrated by RK4 and differentiated through the unrolled steps."""
    return rk4(lambda y: torch.tanh(W @ y), y0, T, steps)


def ode_linear(y0: torch.Tensor, A: torch.Tensor, T: float) -> torch.Tensor:
    """dy/dt = A y in closed form: y(T) = exp(T A) y0."""
    return torch.matrix_exp(float(T) * A) @ y0


def tanh_layer(z: torch.Tensor, x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """f(z, x) = tanh(W z + x), a contraction in z when the spectral norm of W is below 1."""
    return torch.tanh(W @ z + x)


def fixed_point(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """z* = f(z*, x) by iteration to DEQ_TOL, without a graph."""
    with torch.no_grad():
        z = torch.zeros_like(x)
        for _ in range(DEQ_ITERATIONS):
            nxt = tanh_layer(z, x, W)
            if (nxt - z).abs().max() <= DEQ_TOL:
                return nxt
            z = nxt
    return z


class _Implicit(torch.autograd.Function):
    """The fixed point, with the vjp of the implicit-function theorem:
    g = (I - J^T)^-1 v with J = df/dz = D W, D = diag(1 - z*^2); grad_x = D g, grad_W = (D g) z*^T."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        z = fixed_point(x, W)
        ctx.save_for_backward(z, W)
        return z

    @staticmethod
    def backward(ctx, v: torch.Tensor):
        z, W = ctx.saved_tensors
        d = 1 - z * z
        eye = torch.eye(z.shape[0], dtype=z.dtype)
        g = torch.linalg.solve((eye - d[:, None] * W).T, v)
        dg = d * g
        return dg, torch.outer(dg, z)


def deq_tanh(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """The deep equilibrium layer z* = tanh(W z* + x), differentiable through the linear solve."""
    return _Implicit.apply(x, W)


def deq_mistakes(x: torch.Tensor, W: torch.Tensor, v: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The (grad_x, grad_W) each classic mistake gives for upstream v, by name (float64, no graph)."""
    z = fixed_point(x, W)
    d = 1 - z * z
    eye = torch.eye(z.shape[0], dtype=z.dtype)
    J = d[:, None] * W

    def grads(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return d * g, torch.outer(d * g, z)

    return {
        "untransposed": grads(torch.linalg.solve(eye - J, v)),  # (I - J) g = v where (I - J^T) g = v belongs
        # W D instead of (D W)^T = W^T D; the same numbers as the jvp (I - D W)^-1 D v (push-through identity)
        "w_not_transposed": grads(torch.linalg.solve(eye - W * d[None, :], v)),
        "one_step": grads(v),  # the Jacobian-free gradient: backprop through one application of f
    }
