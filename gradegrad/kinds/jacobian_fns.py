"""The functions whose Jacobians the `jacobian` kind asks for: plain torch, imported by both sides.

Each maps x in R^n to f(x) in R^m. `wide` (2 x 3) and `tall` (4 x 2) make the orientation
visible in the shape; `square` (3 x 3) has a Jacobian far from symmetric, so J and Jᵀ differ in
their values too.
"""

from __future__ import annotations

import torch


def wide(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([x[0] * x[1] + torch.sin(x[2]), x[0] ** 2 - x[2] * x[1]])


def square(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([x[0] * x[1], torch.exp(x[2]) + 3 * x[0], x[1] ** 3 - 2 * x[2]])


def tall(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([x[0] + x[1], x[0] * x[1], torch.tanh(x[0]), 2 * x[1] ** 2])


FUNCTIONS = {"wide": (wide, 3), "square": (square, 3), "tall": (tall, 2)}  # name -> (f, n)
