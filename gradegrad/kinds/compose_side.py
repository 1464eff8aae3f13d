"""The child side of a composition: a plain function answering a `function` exercise.

Seed 001's hint writes Dot as `def dot(x, y): return Sum.apply(mul(x, y))`. The evaluator's
`find` wraps such a function in `Composition`, which looks like a Function class to the rest of
the child: `apply` calls the function, and the raw `backward` runs the student's own Functions'
backwards through the autograd engine, after checking that every node of the output's graph is a
Function of the submission (a composition of built-in ops, such as `torch.dot`, is refused with
a message naming the op). Facts and exceptions only; the grader judges the numbers.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

STUDENT_MODULE = "submission"
MAX_NODES = 10_000


class CompositionError(Exception):
    """The composition uses built-in operations where the exercise asks for the student's Functions."""


def builtin_nodes(out: torch.Tensor) -> list[str]:
    """The graph nodes of `out` that are neither a Function of the submission nor a leaf."""
    found, seen, stack = [], set(), [out.grad_fn]
    while stack and len(seen) < MAX_NODES:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        cls = getattr(node, "_forward_cls", None)
        if type(node).__name__ != "AccumulateGrad" and getattr(cls, "__module__", None) != STUDENT_MODULE:
            found.append(type(node).__name__)
        stack.extend(fn for fn, _ in node.next_functions)
    return sorted(set(found))[:5]


def composition(fn: Callable[..., Any]) -> type:
    """A Function-like class around `fn`: apply(*args) = fn(*args), backward through the graph."""
    graphs: dict[int, tuple[Any, tuple[Any, ...]]] = {}

    name = str(getattr(fn, "__name__", "composition"))[:100]

    class Composition:
        @staticmethod
        def apply(*args: Any) -> Any:
            out = fn(*args)
            if isinstance(out, torch.Tensor) and out.grad_fn is not None:
                graphs[id(out.grad_fn)] = (out, args)
                while len(graphs) > 256:
                    graphs.pop(next(iter(graphs)))
            return out

        @staticmethod
        def backward(node: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:
            out, args = graphs[id(node)]
            builtin = builtin_nodes(out)
            if builtin:
                raise CompositionError(f"{name} is built from {', '.join(builtin)}, built-in "
                                       "operations: compose your own Functions (e.g. Sum.apply(mul(x, y)))")
            wanted = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
            got = iter(torch.autograd.grad(out, wanted, grad_output, retain_graph=True, allow_unused=True))
            return tuple(next(got) if isinstance(a, torch.Tensor) and a.requires_grad else None for a in args)

    Composition.__name__ = Composition.__qualname__ = name
    return Composition
