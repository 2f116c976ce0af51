"""Read a config text without executing it.

A checkpoint saved by MMEngine's ``Runner`` stores its config as text in ``meta['cfg']`` (``Config.pretty_text``:
lines such as ``model = dict(type='MDETR', num_queries=100, ...)``). ``Config.fromstring`` would *execute* that
text as Python, so a checkpoint that is otherwise plain data (it passes ``torch.load(weights_only=True)``)
could still run any command through a crafted ``meta['cfg']``. :func:`config_from_text` parses the text with
:mod:`ast` and evaluates only literal data:

* top-level assignments to a plain name (``name = value``), one target each;
* values: numbers, strings, ``True``/``False``/``None``, list/tuple/set/dict displays, ``dict(key=value, ...)``
  calls with keyword arguments (and at most one dict display before them, as ``pretty_text`` writes a dict
  whose keys are not identifiers), ``set()``, and a unary minus or plus on a number; nested freely.

Anything else (imports, attribute access, other calls, names, f-strings, comprehensions, lambdas, operators,
``_base_`` inheritance, ...) is refused with an :class:`UnsafeConfigError` that names what was found and its
line, and asks for a config file instead.
"""
import ast
from typing import Any, Optional

from mmengine.config import Config

__all__ = ['UnsafeConfigError', 'config_from_text', 'literal_config_dict']

_CONSTANT_TYPES = (str, int, float, complex, bool, type(None))


class UnsafeConfigError(ValueError):
    """A config text holds something other than literal data (it is never executed)."""


def _describe(node: ast.AST) -> str:
    """A short name of what a node is, for error messages."""
    names = {
        ast.Import: 'an import', ast.ImportFrom: 'an import', ast.Attribute: 'an attribute access',
        ast.Name: 'a name', ast.Call: 'a function call', ast.JoinedStr: 'an f-string',
        ast.Lambda: 'a lambda', ast.ListComp: 'a list comprehension', ast.SetComp: 'a set comprehension',
        ast.DictComp: 'a dict comprehension', ast.GeneratorExp: 'a generator expression',
        ast.BinOp: 'an operator expression', ast.BoolOp: 'a boolean expression', ast.Compare: 'a comparison',
        ast.IfExp: 'a conditional expression', ast.Subscript: 'a subscript', ast.Starred: 'a starred expression',
        ast.FunctionDef: 'a function definition', ast.AsyncFunctionDef: 'a function definition',
        ast.ClassDef: 'a class definition', ast.Expr: 'an expression statement', ast.AugAssign: 'an augmented '
        'assignment', ast.AnnAssign: 'an annotated assignment', ast.NamedExpr: 'an assignment expression',
        ast.Await: 'an await', ast.Yield: 'a yield', ast.YieldFrom: 'a yield', ast.Constant: 'the constant',
    }
    for kind, text in names.items():
        if isinstance(node, kind):
            break
    else:
        text = f'a {type(node).__name__} node'
    try:
        snippet = ast.unparse(node)
    except Exception:  # pragma: no cover - unparse of odd nodes
        snippet = ''
    if len(snippet) > 60:
        snippet = snippet[:57] + '...'
    return f'{text} ({snippet})' if snippet else text


class _LiteralEvaluator:
    """Evaluate the allowed literal subset of Python expressions; refuse everything else."""

    def __init__(self, source: str) -> None:
        self.source = source

    def refuse(self, node: ast.AST, what: Optional[str] = None) -> UnsafeConfigError:
        line = getattr(node, 'lineno', '?')
        return UnsafeConfigError(
            f'refused to read the config {self.source}: line {line} holds {what or _describe(node)}, which is '
            'not literal data. A stored config is never executed; only assignments of literals, lists, tuples, '
            'dicts and dict(key=value) calls are read. Pass a config file instead (e.g. the config the model was '
            'trained with).')

    def __call__(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            if type(node.value) not in _CONSTANT_TYPES:
                raise self.refuse(node, f'the constant {node.value!r}')
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self(node.operand)
            if isinstance(operand, bool) or not isinstance(operand, (int, float, complex)):
                raise self.refuse(node, f'a sign on a non-number ({ast.unparse(node)})')
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.List):
            return [self(e) for e in node.elts]
        if isinstance(node, ast.Tuple):
            return tuple(self(e) for e in node.elts)
        if isinstance(node, ast.Set):
            return {self(e) for e in node.elts}
        if isinstance(node, ast.Dict):
            out = {}
            for key, value in zip(node.keys, node.values):
                if key is None:  # ``{**other}``
                    raise self.refuse(value, f'a dict unpacking (**{ast.unparse(value)})')
                out[self(key)] = self(value)
            return out
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id == 'set' and not node.args and not node.keywords:
                return set()  # how ``pretty_text`` writes an empty set
            if not (isinstance(node.func, ast.Name) and node.func.id == 'dict'):
                raise self.refuse(node)
            # ``pretty_text`` writes a nested dict with keys that are not identifiers as ``dict({...})``.
            if len(node.args) > 1 or (node.args and not isinstance(node.args[0], ast.Dict)):
                raise self.refuse(node, 'dict() with positional arguments other than one dict display '
                                  f'({_describe(node.args[0])})')
            out = self(node.args[0]) if node.args else {}
            for keyword in node.keywords:
                if keyword.arg is None:  # ``dict(**other)``
                    raise self.refuse(node, f'a dict unpacking (**{ast.unparse(keyword.value)})')
                out[keyword.arg] = self(keyword.value)
            return out
        raise self.refuse(node)


def literal_config_dict(text: str, source: str = "stored in the checkpoint's meta['cfg']") -> dict:
    """The variables of a config text made only of literal assignments, as plain Python objects.

    Args:
        text (str): Config text, e.g. ``Config.pretty_text`` (``meta['cfg']`` of an MMEngine checkpoint).
        source (str): What the text is, for error messages.

    Returns:
        dict: ``{name: value}`` of the top-level assignments, in order (a later assignment wins).

    Raises:
        UnsafeConfigError: The text is not Python, or it holds anything but literal assignments.
    """
    if not isinstance(text, str):
        raise UnsafeConfigError(f'refused to read the config {source}: expected a string, got '
                                f'{type(text).__name__}. Pass a config file instead.')
    evaluate = _LiteralEvaluator(source)
    try:
        tree = ast.parse(text, mode='exec')
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        where = f' (line {err.lineno})' if isinstance(err, SyntaxError) and err.lineno else ''
        raise UnsafeConfigError(f'refused to read the config {source}: it is not a Python config{where}: '
                                f'{type(err).__name__}: {err}. Pass a config file instead.') from None
    variables: dict = {}
    for statement in tree.body:
        if not isinstance(statement, ast.Assign):
            raise evaluate.refuse(statement)
        if len(statement.targets) != 1 or not isinstance(statement.targets[0], ast.Name):
            raise evaluate.refuse(statement, f'an assignment to {ast.unparse(statement.targets[0])!r} (only '
                                  '"name = value" is read)' if len(statement.targets) == 1 else
                                  'a chained assignment')
        name = statement.targets[0].id
        if name == '_base_':
            raise evaluate.refuse(statement, 'a _base_ inheritance (a stored config is read flat)')
        try:
            variables[name] = evaluate(statement.value)
        except RecursionError:
            raise evaluate.refuse(statement, 'a value nested too deeply') from None
    return variables


def config_from_text(text: str, source: str = "stored in the checkpoint's meta['cfg']") -> Config:
    """An MMEngine ``Config`` from a config text, read without executing it (see the module docstring).

    ``config_from_text(cfg.pretty_text).to_dict() == cfg.to_dict()`` for a config of literal data.

    Args:
        text (str): Config text, e.g. ``meta['cfg']`` of a checkpoint.
        source (str): What the text is, for error messages (e.g. ``"of checkpoint 'x.pth' (meta['cfg'])"``).

    Returns:
        Config: The config.

    Raises:
        UnsafeConfigError: The text holds anything but literal assignments.
    """
    variables = literal_config_dict(text, source)
    try:
        return Config(variables)
    except Exception as err:  # e.g. a reserved key such as 'filename'
        raise UnsafeConfigError(f'refused to read the config {source}: {type(err).__name__}: {err}. Pass a '
                                'config file instead.') from None
