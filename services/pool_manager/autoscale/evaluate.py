"""Evaluating a compiled formula against a snapshot of the pool: the run Azure's
EvaluateAutoScale returns and a pool's AutoScaleRun shows, with the target to apply.

Pure: the time, the samples and rand() all come in as arguments. A formula has no loops or
calls of its own, so one evaluation is bounded by its size (8 KB, 100 statements, each at most
100 operations deep) and the samples given.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.pool_manager.autoscale import operators
from services.pool_manager.autoscale.errors import (
    AutoScaleRunError,
    ErrorCode,
    FormulaError,
    Position,
)
from services.pool_manager.autoscale.formula import compile_formula
from services.pool_manager.autoscale.functions import Context, Stop, call
from services.pool_manager.autoscale.samples import PoolSnapshot, call_method, latest
from services.pool_manager.autoscale.syntax import (
    Binary,
    Call,
    Conditional,
    Expr,
    Formula,
    Member,
    Method,
    Name,
    Number,
    String,
    Unary,
    Vector,
)
from services.pool_manager.autoscale.values import (
    DoubleVec,
    Timestamp,
    Value,
    format_value,
    member,
    type_name,
)
from services.pool_manager.autoscale.variables import (
    ALIASES,
    CONSTANTS,
    DEALLOCATION_OPTIONS,
    DEFAULT_DEALLOCATION_OPTION,
    NODE_DEALLOCATION_OPTION,
    POOL_VALUES,
    SAMPLED,
    TARGET_DEDICATED,
    TARGET_DEDICATED_ALIAS,
    TARGET_LOW_PRIORITY,
    TARGET_LOW_PRIORITY_ALIAS,
)


@dataclass(frozen=True)
class AutoScaleRun:
    """One evaluation, as Azure's AutoScaleRun reports it, plus what to apply."""

    timestamp: float
    """When it was evaluated (the snapshot's `now`)."""
    results: str
    """Azure's `results`: `$TargetDedicatedNodes=3;$NodeDeallocationOption=requeue;x=1`, the
    targets first, then $NodeDeallocationOption, then every other variable the formula set, by
    name. When evaluation fails, the values set up to the failure."""
    variables: tuple[tuple[str, str], ...]
    """The same values as (name, value) pairs, in the same order."""
    error: AutoScaleRunError | None
    target_dedicated_nodes: int | None
    """The new target (the formula's value, truncated towards zero); None when it failed."""
    target_low_priority_nodes: int | None
    """Set only when the formula assigns $TargetLowPriorityNodes."""
    node_deallocation_option: str | None
    """requeue, terminate, taskcompletion or retaineddata; None when it failed."""


_OTHER_NAME = {**ALIASES, **{full: alias for alias, full in ALIASES.items()}}
"""A target's other name: until a formula sets one of the two, it reads the other's value."""


class _Evaluator:
    def __init__(self, snapshot: PoolSnapshot, context: Context) -> None:
        self.snapshot = snapshot
        self.context = context
        self.env: dict[str, Value] = {}
        self.where: dict[str, Position] = {}
        """Where each variable was last assigned: the place to blame for an unusable target."""

    def run(self, formula: Formula) -> None:
        try:
            for statement in formula.statements:
                value = self.eval(statement.expr)
                if statement.target is not None:
                    self.env[statement.target] = value
                    self.where[statement.target] = statement.pos
        except Stop:
            pass

    def read(self, name: str) -> Value:
        if name in self.env:
            return self.env[name]
        if name in _OTHER_NAME and _OTHER_NAME[name] in self.env:
            return self.env[_OTHER_NAME[name]]
        if name in (TARGET_DEDICATED, TARGET_DEDICATED_ALIAS):
            return float(self.snapshot.target_dedicated_nodes)
        if name in (TARGET_LOW_PRIORITY, TARGET_LOW_PRIORITY_ALIAS):
            return float(self.snapshot.target_low_priority_nodes)
        if name == NODE_DEALLOCATION_OPTION:
            return DEFAULT_DEALLOCATION_OPTION
        if name in POOL_VALUES:
            return float(getattr(self.snapshot, POOL_VALUES[name]))
        if name in SAMPLED:
            return latest(name, self.snapshot)
        return CONSTANTS[name]

    def eval(self, expr: Expr) -> Value:
        try:
            return self._eval(expr)
        except FormulaError as err:
            raise err.at(expr.pos) from None

    def _eval(self, expr: Expr) -> Value:
        # One method per node type, found by type: a formula is evaluated every few seconds
        # on every autoscaled pool, and a chain of class patterns costs more than a lookup.
        return _HANDLERS[type(expr)](self, expr)

    def _literal(self, expr: Number | String) -> Value:
        return expr.value

    def _name(self, expr: Name) -> Value:
        return self.read(expr.name)

    def _vector(self, expr: Vector) -> Value:
        return DoubleVec(tuple(self._double_items(expr.items)))

    def _unary(self, expr: Unary) -> Value:
        return operators.unary(expr.op, self.eval(expr.operand))

    def _binary(self, expr: Binary) -> Value:
        op = expr.op
        if op in ("&&", "||"):
            decided = operators.truth(op, self.eval(expr.left))
            if decided == (op == "||"):
                return 1.0 if decided else 0.0
            return 1.0 if operators.truth(op, self.eval(expr.right)) else 0.0
        return operators.binary(op, self.eval(expr.left), self.eval(expr.right))

    def _conditional(self, expr: Conditional) -> Value:
        test = operators.truth("?:", self.eval(expr.test))
        return self.eval(expr.then if test else expr.otherwise)

    def _call(self, expr: Call) -> Value:
        return call(expr.function, [self.eval(a) for a in expr.args], self.context)

    def _member(self, expr: Member) -> Value:
        stamp = self.eval(expr.target)
        if not isinstance(stamp, Timestamp):
            raise FormulaError(ErrorCode.TYPE_MISMATCH,
                               f".{expr.name} is a member of timestamps, not of {type_name(stamp)}",
                               values=(("Member", expr.name), ("Type", type_name(stamp))))
        return member(stamp, expr.name)

    def _method(self, expr: Method) -> Value:
        # compile_formula lets methods through only on a sampled variable's name.
        assert isinstance(expr.target, Name)
        args = [self.eval(a) for a in expr.args]
        return call_method(expr.target.name, expr.name, args, self.snapshot)

    def _double_items(self, items: tuple[Expr, ...]) -> list[float]:
        out = []
        for item in items:
            value = self.eval(item)
            if not isinstance(value, float):
                raise FormulaError(ErrorCode.TYPE_MISMATCH,
                                   f"a doubleVec holds doubles, not {type_name(value)}",
                                   item.pos, (("Type", type_name(value)),))
            out.append(value)
        return out


_HANDLERS: dict[type, Callable[[_Evaluator, Any], Value]] = {
    Number: _Evaluator._literal, String: _Evaluator._literal, Name: _Evaluator._name,
    Vector: _Evaluator._vector, Unary: _Evaluator._unary, Binary: _Evaluator._binary,
    Conditional: _Evaluator._conditional, Call: _Evaluator._call, Member: _Evaluator._member,
    Method: _Evaluator._method,
}


def _listing(env: dict[str, Value], snapshot: PoolSnapshot) -> tuple[tuple[str, str], ...]:
    targets = [n for n in (TARGET_DEDICATED, TARGET_DEDICATED_ALIAS) if n in env]
    shown: dict[str, Value] = {n: env[n] for n in targets} or {
        TARGET_DEDICATED: float(snapshot.target_dedicated_nodes)}
    shown.update({n: env[n] for n in (TARGET_LOW_PRIORITY, TARGET_LOW_PRIORITY_ALIAS) if n in env})
    shown[NODE_DEALLOCATION_OPTION] = env.get(NODE_DEALLOCATION_OPTION, DEFAULT_DEALLOCATION_OPTION)
    for name in sorted(env):
        shown.setdefault(name, env[name])
    return tuple((name, format_value(value)) for name, value in shown.items())


def _node_count(evaluator: _Evaluator, full: str, alias: str) -> int | None:
    """The target a formula set (the full name winning over the alias), or None if unset."""
    name = full if full in evaluator.env else alias if alias in evaluator.env else None
    if name is None:
        return None
    value = evaluator.env[name]
    pos = evaluator.where[name]
    if not isinstance(value, float):
        raise FormulaError(ErrorCode.INVALID_RESULT,
                           f"{name} must be a double, got {type_name(value)}",
                           pos, (("Variable", name), ("Value", format_value(value))))
    if not (math.isfinite(value) and value >= 0):
        raise FormulaError(ErrorCode.INVALID_RESULT,
                           f"{name} must be a finite number of 0 or more, got {format_value(value)}",
                           pos, (("Variable", name), ("Value", format_value(value))))
    return int(value)


def _deallocation_option(evaluator: _Evaluator) -> str:
    value = evaluator.env.get(NODE_DEALLOCATION_OPTION, DEFAULT_DEALLOCATION_OPTION)
    if value not in DEALLOCATION_OPTIONS:
        raise FormulaError(
            ErrorCode.INVALID_RESULT,
            f"{NODE_DEALLOCATION_OPTION} must be one of {', '.join(DEALLOCATION_OPTIONS)}, "
            f"got {format_value(value)}",
            evaluator.where[NODE_DEALLOCATION_OPTION],
            (("Variable", NODE_DEALLOCATION_OPTION), ("Value", format_value(value))),
        )
    assert isinstance(value, str)
    return value


def evaluate(
    formula: Formula, snapshot: PoolSnapshot, rand: Callable[[], float] = random.random
) -> AutoScaleRun:
    """Run `formula` on `snapshot`. Never raises for a fault of the formula: the run carries it."""
    evaluator = _Evaluator(snapshot, Context(snapshot.now, rand))
    error: AutoScaleRunError | None = None
    target = low_priority = option = None
    try:
        evaluator.run(formula)
        dedicated = _node_count(evaluator, TARGET_DEDICATED, TARGET_DEDICATED_ALIAS)
        low_priority = _node_count(evaluator, TARGET_LOW_PRIORITY, TARGET_LOW_PRIORITY_ALIAS)
        option = _deallocation_option(evaluator)
        target = snapshot.target_dedicated_nodes if dedicated is None else dedicated
    except FormulaError as err:
        error, low_priority = err.error(), None
    variables = _listing(evaluator.env, snapshot)
    return AutoScaleRun(
        timestamp=snapshot.now,
        results=";".join(f"{name}={value}" for name, value in variables),
        variables=variables,
        error=error,
        target_dedicated_nodes=target,
        target_low_priority_nodes=low_priority,
        node_deallocation_option=option,
    )


def evaluate_text(
    text: str, snapshot: PoolSnapshot, rand: Callable[[], float] = random.random
) -> AutoScaleRun:
    """Compile and run `text`: Azure's EvaluateAutoScale. A formula that does not compile gives
    a run with its error and no target."""
    try:
        formula = compile_formula(text)
    except FormulaError as err:
        variables = _listing({}, snapshot)
        return AutoScaleRun(snapshot.now, ";".join(f"{n}={v}" for n, v in variables), variables,
                            err.error(), None, None, None)
    return evaluate(formula, snapshot, rand)
