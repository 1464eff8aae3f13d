"""A partially correct submission, the kind a student hands in half-way through the sheet.

Correct: Add, Mul, Exp, Dot, Linear, LeakyReLU, MSELoss.
Wrong (each marked `# mistake:`): Sigmoid, Sum, MySoftMax, MyMatVec, MyDropOutTraining, ParamReLU.
Not attempted: Conv1d, CrossEntropy.
"""

import torch
from torch.autograd import Function


class Add(Function):
    @staticmethod
    def forward(ctx, x, y):
        return x + y

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, grad_output


class Mul(Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        return grad_output * y, grad_output * x


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output * y


class Sum(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sum()

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        # mistake: ignores grad_output; the local derivative is 1 everywhere, but it still has
        # to be multiplied by the upstream gradient (this is only right when grad_output == 1)
        return torch.ones_like(x)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        y = 1 / (1 + torch.exp(-x))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        # mistake: sign error, the derivative is +y (1 - y)
        return -grad_output * y * (1 - y)


class Dot(Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return torch.dot(x, y)

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        return grad_output * y, grad_output * x


class MyMatVec(Function):
    @staticmethod
    def forward(ctx, A, x):
        ctx.save_for_backward(A, x)
        return torch.mv(A, x)

    @staticmethod
    def backward(ctx, grad_output):
        A, x = ctx.saved_tensors
        grad_A = grad_output[:, None] @ x[None, :]
        grad_x = A.T @ grad_output
        # mistake: gradients returned in the wrong order; they must follow forward's (A, x)
        return grad_x, grad_A


class MySoftMax(Function):
    @staticmethod
    def forward(ctx, x):
        x = x - x.max()  # for stability
        exp_vals = torch.exp(x)
        res = exp_vals / torch.sum(exp_vals)
        ctx.save_for_backward(x, res)
        return res

    @staticmethod
    def backward(ctx, grad_output):
        x, res = ctx.saved_tensors
        # mistake: placeholder left in, the backward was never written
        return torch.ones_like(x)


class MyDropOutTraining(Function):
    @staticmethod
    def forward(ctx, x, mask, p=0.1):
        ctx.save_for_backward(mask)
        return x * mask / (1 - p)

    @staticmethod
    def backward(ctx, grad_output):
        (mask,) = ctx.saved_tensors
        # mistake: forgets the 1 / (1 - p) scale that forward applied
        return grad_output * mask, None, None


class LeakyReLU(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.max(x, x * 0.01)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        grad_input = grad_output.clone()
        grad_input[x < 0] *= 0.01
        return grad_input


class ParamReLU(Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return torch.max(x, x * alpha)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        grad_input = grad_output.clone()
        grad_input[x < 0] *= ctx.alpha
        # mistake: forward took two arguments (x, alpha), so backward must return two values
        # (grad_input, None); returning one is an error
        return grad_input


class Linear(Function):
    @staticmethod
    def forward(ctx, x, W, b):
        ctx.save_for_backward(x, W)
        return x @ W.T + b

    @staticmethod
    def backward(ctx, grad_output):
        x, W = ctx.saved_tensors
        return grad_output @ W, grad_output.T @ x, grad_output.sum(0)


class MSELoss(Function):
    @staticmethod
    def forward(ctx, pred, target):
        diff = pred - target
        ctx.save_for_backward(diff)
        return (diff**2).mean()

    @staticmethod
    def backward(ctx, grad_output):
        (diff,) = ctx.saved_tensors
        return 2 * diff / diff.numel() * grad_output, None


# Conv1d: not attempted
# CrossEntropy: not attempted
