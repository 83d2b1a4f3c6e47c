"""mutmut 2.x hooks (found through PYTHONPATH=tests/mutation, set by run.py).

Skip mutants that only change type annotations in modules using
`from __future__ import annotations` (never evaluated: equivalent mutants,
e.g. `x: str | None = None` -> `x: str & None = None`).
"""
import ast


def _without_annotations(source):
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign):
            node.annotation = ast.Constant(None)
        elif isinstance(node, ast.arg):
            node.annotation = None
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.returns = None
    return ast.dump(tree)


def pre_mutation(context):
    from mutmut import Context, mutate  # lazy: mutmut imports this module mid-import

    source = context.source
    if "from __future__ import annotations" not in source:
        return
    mutant = Context(source=source, mutation_id=context.mutation_id,
                     filename=context.filename, dict_synonyms=context.dict_synonyms)
    mutated, _ = mutate(mutant)
    try:
        if _without_annotations(source) == _without_annotations(mutated):
            context.skip = True
    except SyntaxError:
        pass
