"""Formula text -> syntax tree, with lark (LALR) and the grammar below; never `eval`.

The tree is built without recursion, and its depth is checked before anything walks it
recursively: an 8 KB formula of nested parentheses or of `1+1+...+1` gets a clear error instead
of exhausting Python's stack.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from lark import (
    Lark,
    Token,
    Transformer_NonRecursive,
    Tree,
    UnexpectedCharacters,
    UnexpectedInput,
    v_args,
)
from lark.exceptions import UnexpectedEOF, UnexpectedToken

from services.pool_manager.autoscale.errors import ErrorCode, FormulaError, Position
from services.pool_manager.autoscale.syntax import (
    Binary,
    Call,
    Conditional,
    Expr,
    Member,
    Method,
    Name,
    Number,
    Statement,
    String,
    Unary,
    Vector,
    depth,
)

MAX_BYTES = 8 * 1024
MAX_STATEMENTS = 100
MAX_DEPTH = 100
"""How deep one statement's expression may go, counting each operator, call and member (Shoal's
limit; Azure publishes none)."""

GRAMMAR = r"""
formula: [statement] (";" [statement])*
statement: NAME "=" expr
         | expr -> expression_statement

?expr: or_expr
     | or_expr "?" expr ":" expr -> conditional
?or_expr: and_expr (OR and_expr)*
?and_expr: equality (AND equality)*
?equality: relational ((EQ | NE) relational)*
?relational: additive ((LE | GE | LT | GT) additive)*
?additive: multiplicative ((PLUS | MINUS) multiplicative)*
?multiplicative: unary ((STAR | SLASH) unary)*
?unary: postfix
      | (MINUS | BANG)+ postfix -> unary
?postfix: atom
        | atom trailer+ -> postfix
trailer: "." NAME -> member
       | "." NAME "(" [args] ")" -> method
?atom: NUMBER -> number
     | STRING -> string
     | NAME -> name
     | NAME "(" [args] ")" -> call
     | "[" [args] "]" -> vector
     | "(" expr ")"
args: expr ("," expr)*

OR: "||"
AND: "&&"
EQ: "=="
NE: "!="
LE: "<="
GE: ">="
LT: "<"
GT: ">"
PLUS: "+"
MINUS: "-"
STAR: "*"
SLASH: "/"
BANG: "!"
NAME: /\$?[A-Za-z_][A-Za-z0-9_]*/
NUMBER: /(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/
STRING: /"[^"\n]*"/
COMMENT: /\/\/[^\n]*/
%ignore COMMENT
%ignore /\s+/
"""


@cache
def _lark() -> Lark:
    return Lark(GRAMMAR, start="formula", parser="lalr", maybe_placeholders=True,
                propagate_positions=True)


def _pos(item: Token | Tree[Any] | Expr) -> Position:
    if isinstance(item, Token):
        return Position(item.line or 1, item.column or 1)
    if isinstance(item, Tree):
        return Position(item.meta.line, item.meta.column)
    return item.pos


def _args(node: tuple[Expr, ...] | None) -> tuple[Expr, ...]:
    return () if node is None else node


class _ToSyntax(Transformer_NonRecursive):
    def _chain(self, children: list[Any]) -> Expr:
        left: Expr = children[0]
        for op, right in zip(children[1::2], children[2::2], strict=True):
            left = Binary(str(op), left, right, _pos(op))
        return left

    or_expr = and_expr = equality = relational = additive = multiplicative = _chain

    def formula(self, children: list[Statement | None]) -> tuple[Statement, ...]:
        return tuple(s for s in children if s is not None)

    def statement(self, children: list[Any]) -> Statement:
        name, expr = children
        return Statement(str(name), expr, _pos(name))

    @v_args(meta=True)
    def expression_statement(self, meta: Any, children: list[Expr]) -> Statement:
        return Statement(None, children[0], Position(meta.line, meta.column))

    @v_args(meta=True)
    def conditional(self, meta: Any, children: list[Expr]) -> Expr:
        test, then, otherwise = children
        return Conditional(test, then, otherwise, Position(meta.line, meta.column))

    def unary(self, children: list[Any]) -> Expr:
        operand: Expr = children[-1]
        for op in reversed(children[:-1]):
            operand = Unary(str(op), operand, _pos(op))
        return operand

    def postfix(self, children: list[Any]) -> Expr:
        target: Expr = children[0]
        for trailer in children[1:]:
            kind, name, args = trailer
            if kind == "member":
                target = Member(target, str(name), _pos(name))
            else:
                target = Method(target, str(name), args, _pos(name))
        return target

    def member(self, children: list[Any]) -> tuple[str, Token, tuple[Expr, ...]]:
        return ("member", children[0], ())

    def method(self, children: list[Any]) -> tuple[str, Token, tuple[Expr, ...]]:
        return ("method", children[0], _args(children[1]))

    def number(self, children: list[Token]) -> Expr:
        return Number(float(children[0]), _pos(children[0]))

    def string(self, children: list[Token]) -> Expr:
        return String(str(children[0])[1:-1], _pos(children[0]))

    def name(self, children: list[Token]) -> Expr:
        return Name(str(children[0]), _pos(children[0]))

    def call(self, children: list[Any]) -> Expr:
        return Call(str(children[0]), _args(children[1]), _pos(children[0]))

    @v_args(meta=True)
    def vector(self, meta: Any, children: list[Any]) -> Expr:
        return Vector(_args(children[0]), Position(meta.line, meta.column))

    def args(self, children: list[Expr]) -> tuple[Expr, ...]:
        return tuple(children)


def _syntax_error(err: UnexpectedInput) -> FormulaError:
    position = Position(err.line if err.line > 0 else 1, err.column if err.column > 0 else 1)
    if isinstance(err, UnexpectedCharacters):
        detail = f"unexpected character {err.char!r}"
    elif isinstance(err, UnexpectedEOF) or (
            isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        detail = "the formula ends in the middle of a statement"
    elif isinstance(err, UnexpectedToken):
        detail = f"unexpected {str(err.token)!r}"
    else:
        detail = "syntax error"
    return FormulaError(ErrorCode.INVALID_FORMULA, detail, position)


def parse(text: str) -> tuple[Statement, ...]:
    """The statements of `text`, or FormulaError(INVALID_FORMULA) saying where and why not."""
    size = len(text.encode())
    if size > MAX_BYTES:
        raise FormulaError(ErrorCode.INVALID_FORMULA,
                           f"the formula is {size} bytes; at most {MAX_BYTES} are allowed",
                           values=(("Size", str(size)), ("Limit", str(MAX_BYTES))))
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as err:
        raise _syntax_error(err) from None
    statements = [c for c in tree.children if c is not None]
    if len(statements) > MAX_STATEMENTS:
        raise FormulaError(
            ErrorCode.INVALID_FORMULA,
            f"the formula has {len(statements)} statements; at most {MAX_STATEMENTS} are allowed",
            _pos(statements[MAX_STATEMENTS]),
            (("Statements", str(len(statements))), ("Limit", str(MAX_STATEMENTS))),
        )
    result: tuple[Statement, ...] = _ToSyntax().transform(tree)
    for statement in result:
        if depth(statement.expr) > MAX_DEPTH:
            raise FormulaError(
                ErrorCode.INVALID_FORMULA,
                f"the expression is more than {MAX_DEPTH} operations deep",
                statement.pos,
                (("Limit", str(MAX_DEPTH)),),
            )
    return result
