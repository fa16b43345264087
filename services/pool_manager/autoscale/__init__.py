"""Azure Batch's autoscale formula language: compile a formula, evaluate it on a snapshot of a
pool and its sample histories, get the run Azure would report. Pure: no I/O, no clock.

    formula = compile_formula(text)            # FormulaError(INVALID_FORMULA) if it cannot run
    run = evaluate(formula, snapshot)          # AutoScaleRun: results, error, the new target

docs/autoscale.md describes the language and where Shoal differs from Azure.
"""

from services.pool_manager.autoscale.errors import AutoScaleRunError, ErrorCode, FormulaError
from services.pool_manager.autoscale.evaluate import AutoScaleRun, evaluate, evaluate_text
from services.pool_manager.autoscale.formula import compile_formula
from services.pool_manager.autoscale.parser import MAX_BYTES, MAX_DEPTH, MAX_STATEMENTS
from services.pool_manager.autoscale.samples import PoolSnapshot, Sample
from services.pool_manager.autoscale.syntax import Formula

__all__ = [
    "MAX_BYTES", "MAX_DEPTH", "MAX_STATEMENTS", "AutoScaleRun", "AutoScaleRunError", "ErrorCode",
    "Formula", "FormulaError", "PoolSnapshot", "Sample", "compile_formula", "evaluate",
    "evaluate_text",
]
