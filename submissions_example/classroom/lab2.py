"""Starter file for Lab 2: activations, layers and losses (rubric lab2).

Replace every `raise NotImplementedError` with your code, then check your work with

    gradegrad check lab2.py --rubric lab2

Exercises: softmax, dropout, leaky_relu, param_relu, conv1d, linear, mse_loss, cross_entropy.
"""

import torch
from torch.autograd import Function


class Softmax(Function):
    """softmax: y_i = exp(x_i) / sum_j exp(x_j)

    The softmax Jacobian couples every output to every input, so its vector-Jacobian product is
    y * (g - <g, y>), and the forward must subtract the maximum to avoid overflow.

    forward(ctx, x):
        x: float tensor of shape (7,)
    backward(ctx, grad_output): one gradient per argument of forward, in order (x).
    """

    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError


class Dropout(Function):
    """dropout: y = x * mask / (1 - p)

    Dropout's backward applies the same mask and the same 1 / (1 - p) scale as its forward, and
    gives no gradient to the mask or to p.

    forward(ctx, x, mask, p):
        x: float tensor of shape (7,)
        mask: float tensor of shape (7,) (no gradient)
        p: a Python float, e.g. 0.1
    backward(ctx, grad_output): one gradient per argument of forward, in order (x, mask, p); None for mask, p.
    """

    @staticmethod
    def forward(ctx, x, mask, p):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError


class LeakyReLU(Function):
    """leaky_relu: y = x if x > 0 else 0.01 x

    A piecewise-linear activation has a piecewise-constant derivative, chosen by the sign of the
    input saved in forward.

    forward(ctx, x):
        x: float tensor of shape (8,)
    backward(ctx, grad_output): one gradient per argument of forward, in order (x).
    """

    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError


class ParamReLU(Function):
    """param_relu: y = x if x > 0 else alpha x

    A non-tensor argument such as alpha is stored on ctx for backward and gets None as its
    gradient.

    forward(ctx, x, alpha):
        x: float tensor of shape (8,)
        alpha: a Python float, e.g. 0.25
    backward(ctx, grad_output): one gradient per argument of forward, in order (x, alpha); None for alpha.
    """

    @staticmethod
    def forward(ctx, x, alpha):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError


class Conv1d(Function):
    """conv1d: g_i = sum_j w_j x_(i+j)  (valid cross-correlation, output length n - k + 1)

    The gradient of a valid cross-correlation is a cross-correlation of the input with the
    upstream gradient for the kernel, and a full convolution of the upstream gradient with the
    kernel for the input.

    forward(ctx, x, w):
        x: float tensor of shape (10,)
        w: float tensor of shape (3,)
    backward(ctx, grad_output): one gradient per argument of forward, in order (x, w).
    """

    @staticmethod
    def forward(ctx, x, w):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError


class Linear(Function):
    """linear: Y = X W^T + b

    For a batched affine map the weight gradient sums outer products over the batch, and the
    bias gradient sums the upstream gradient over the batch.

    forward(ctx, x, W, b):
        x: float tensor of shape (4, 3)
        W: float tensor of shape (2, 3)
        b: float tensor of shape (2,)
    backward(ctx, grad_output): one gradient per argument of forward, in order (x, W, b).
    """

    @staticmethod
    def forward(ctx, x, W, b):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError


class MSELoss(Function):
    """mse_loss: L = mean((pred - target)^2)

    Averaging a loss over N elements scales every element's gradient by 1 / N, and the target
    receives no gradient.

    forward(ctx, pred, target):
        pred: float tensor of shape (4, 3)
        target: float tensor of shape (4, 3) (no gradient)
    backward(ctx, grad_output): one gradient per argument of forward, in order (pred, target); None for target.
    """

    @staticmethod
    def forward(ctx, pred, target):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError


class CrossEntropy(Function):
    """cross_entropy: L = -(1/N) sum_n log softmax(logits_n)[targets_n]

    The gradient of softmax cross-entropy with respect to the logits is the softmax minus the
    one-hot targets, divided by the batch size.

    forward(ctx, logits, targets):
        logits: float tensor of shape (4, 5)
        targets: integer (long) tensor of shape (4,) (no gradient)
    backward(ctx, grad_output): one gradient per argument of forward, in order (logits, targets); None for targets.
    """

    @staticmethod
    def forward(ctx, logits, targets):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError
