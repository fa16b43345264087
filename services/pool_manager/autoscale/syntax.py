"""The tree a formula parses into: statements of expressions, each node with its position."""

from __future__ import annotations

from dataclasses import dataclass

from services.pool_manager.autoscale.errors import Position


@dataclass(frozen=True, slots=True)
class Number:
    value: float
    pos: Position


@dataclass(frozen=True, slots=True)
class String:
    value: str
    pos: Position


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    pos: Position


@dataclass(frozen=True, slots=True)
class Vector:
    items: tuple[Expr, ...]
    pos: Position


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    """`-` or `!`."""
    operand: Expr
    pos: Position


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    """An arithmetic, comparison or logical operator as written."""
    left: Expr
    right: Expr
    pos: Position


@dataclass(frozen=True, slots=True)
class Conditional:
    test: Expr
    then: Expr
    otherwise: Expr
    pos: Position


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Expr, ...]
    pos: Position


@dataclass(frozen=True, slots=True)
class Member:
    """`stamp.hour`."""

    target: Expr
    name: str
    pos: Position


@dataclass(frozen=True, slots=True)
class Method:
    """`$CPUPercent.GetSample(...)`."""

    target: Expr
    name: str
    args: tuple[Expr, ...]
    pos: Position


Expr = Number | String | Name | Vector | Unary | Binary | Conditional | Call | Member | Method


@dataclass(frozen=True, slots=True)
class Statement:
    target: str | None
    """The variable assigned; None for an expression evaluated for its effect (`stop();`)."""
    expr: Expr
    pos: Position


@dataclass(frozen=True)
class Formula:
    """A compiled formula: parsed and checked, ready to evaluate any number of times."""

    text: str
    statements: tuple[Statement, ...]


def children(expr: Expr) -> tuple[Expr, ...]:
    match expr:
        case Unary():
            return (expr.operand,)
        case Binary():
            return (expr.left, expr.right)
        case Conditional():
            return (expr.test, expr.then, expr.otherwise)
        case Member():
            return (expr.target,)
        case Method():
            return (expr.target, *expr.args)
        case Call() | Vector():
            return expr.args if isinstance(expr, Call) else expr.items
    return ()


def depth(expr: Expr) -> int:
    """How deep the tree under `expr` goes, found without recursion."""
    deepest = 0
    stack = [(expr, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children(node))
    return deepest
