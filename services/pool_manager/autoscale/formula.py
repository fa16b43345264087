"""Compiling a formula: parse it, then check every name it uses before it ever runs, so that
enabling autoscale with a misspelt variable or function fails at once, as in Azure, rather
than at the first evaluation."""

from __future__ import annotations

from services.pool_manager.autoscale.errors import ErrorCode, FormulaError
from services.pool_manager.autoscale.functions import ARITY
from services.pool_manager.autoscale.parser import parse
from services.pool_manager.autoscale.samples import METHODS
from services.pool_manager.autoscale.syntax import (
    Call,
    Expr,
    Formula,
    Member,
    Method,
    Name,
    children,
)
from services.pool_manager.autoscale.values import TIMESTAMP_MEMBERS
from services.pool_manager.autoscale.variables import SAMPLED, is_defined, is_read_only


def _invalid(detail: str, expr: Expr, *values: tuple[str, str]) -> FormulaError:
    return FormulaError(ErrorCode.INVALID_FORMULA, detail, expr.pos, values)


def _arity(what: str, given: int, bounds: tuple[int, int | None], expr: Expr) -> None:
    fewest, most = bounds
    if given < fewest or (most is not None and given > most):
        wanted = (f"{fewest}" if fewest == most else
                  f"{fewest} or more" if most is None else f"{fewest} to {most}")
        raise _invalid(f"{what} takes {wanted} arguments, got {given}", expr,
                       ("Arguments", str(given)))


def _check(expr: Expr, assigned: set[str]) -> None:
    match expr:
        case Name(name=name) if not (is_defined(name) or name in assigned):
            raise _invalid(f"unknown variable {name}", expr, ("Variable", name))
        case Call(function=function, args=args):
            if function not in ARITY:
                raise _invalid(f"unknown function {function}()", expr, ("Function", function))
            _arity(f"{function}()", len(args), ARITY[function], expr)
        case Method(target=Name(name=name) as target) if not (is_defined(name) or name in assigned):
            raise _invalid(f"unknown variable {name}", target, ("Variable", name))
        case Method(target=target, name=method, args=args):
            if not (isinstance(target, Name) and target.name in SAMPLED):
                raise _invalid(f"{method}() is a method of the sampled variables "
                               f"($CPUPercent, $PendingTasks...) only", expr, ("Method", method))
            if method not in METHODS:
                raise _invalid(f"unknown method {method}() of {target.name}", expr,
                               ("Method", method))
            _arity(f"{target.name}.{method}()", len(args), METHODS[method], expr)
        case Member(name=name) if name not in TIMESTAMP_MEMBERS:
            raise _invalid(f"unknown member .{name} (a timestamp has "
                           f"{', '.join(TIMESTAMP_MEMBERS)})", expr, ("Member", name))
    for child in children(expr):
        _check(child, assigned)


def _calls_stop(expr: Expr) -> bool:
    if isinstance(expr, Call) and expr.function == "stop":
        return True
    return any(_calls_stop(child) for child in children(expr))


def compile_formula(text: str) -> Formula:
    """`text` parsed and checked, or FormulaError(INVALID_FORMULA) saying where and why not."""
    statements = parse(text)
    assigned: set[str] = set()
    for statement in statements:
        _check(statement.expr, assigned)
        if statement.target is None:
            # Only stop() has an effect without an assignment; anything else is most likely a
            # slip (`$TargetDedicatedNodes == 5;`) that would otherwise do nothing, silently.
            if not _calls_stop(statement.expr):
                raise FormulaError(ErrorCode.INVALID_FORMULA,
                                   "the statement assigns nothing (an assignment is NAME = value)",
                                   statement.pos)
            continue
        if is_read_only(statement.target):
            raise FormulaError(ErrorCode.INVALID_FORMULA,
                               f"{statement.target} is read-only: it cannot be assigned",
                               statement.pos, (("Variable", statement.target),))
        assigned.add(statement.target)
    return Formula(text, statements)
