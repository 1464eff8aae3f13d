"""Measurements beyond values: bytes of new storages (the reference's model), tensors on ctx, second
derivatives, tangents."""

import torch

from gradegrad.sandbox.measure import ByteCounter, forward_tangent, has_jvp, second_order, tensor_attributes

X = torch.randn(64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def test_new_storages_count_views_and_in_place_writes_do_not():
    with ByteCounter() as count:
        y = X * 2  # 512 new bytes
        y.t().reshape(8, 8)[1:]  # views: free
        y.mul_(3)  # in place: free
        torch.outer(X, X)  # 64 x 64 x 8 bytes
    assert count.bytes == 512 + 64 * 64 * 8


def test_temporaries_count_even_when_freed_at_once():
    with ByteCounter() as count:
        for _ in range(10):
            (X + 1).sum()
    assert count.bytes == 10 * (512 + 8)


class Stashing(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.y, ctx.pair, ctx.shape = x.exp(), (x, 1), x.shape
        return ctx.y

    @staticmethod
    def backward(ctx, g):
        return g * ctx.y


def test_tensor_attributes_of_ctx_are_reported_by_name():
    out = Stashing.apply(X.clone().requires_grad_())
    assert tensor_attributes(out.grad_fn) == ["pair", "y"]


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g

    @staticmethod
    def jvp(ctx, t):
        (x,) = ctx.saved_tensors
        return 2 * x * t


def test_second_order_differentiates_backward():
    x, u = X[:5].clone().requires_grad_(), torch.ones(5, dtype=torch.float64)
    v = torch.full((5,), 3.0, dtype=torch.float64)
    connected, second = second_order(Square, [x], v, [u])
    assert connected == [True]
    assert torch.allclose(second[0], 2 * v * u) and torch.allclose(second[1], 2 * x.detach() * u)


def test_second_order_sees_a_detached_backward():
    class Detached(Square):
        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return (2 * x * g).detach()

    connected, second = second_order(Detached, [X[:5].clone().requires_grad_()], torch.ones(5, dtype=torch.float64),
                                     [torch.ones(5, dtype=torch.float64)])
    assert connected == [False] and second == [None, None]


def test_forward_tangent_calls_the_students_jvp():
    x, t = X[:5].clone(), torch.arange(5, dtype=torch.float64)
    assert has_jvp(Square) and not has_jvp(Stashing)
    assert torch.allclose(forward_tangent(Square, [x], [t]), 2 * x * t)
