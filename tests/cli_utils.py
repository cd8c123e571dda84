"""Programs run in this process: a program's ``run()`` under the ``sys.argv`` its command line gives it.

Help and bad-input tests need no process of their own: starting Python, importing jax and the program
costs seconds each. The runs that must be real processes (a whole run, Ctrl-C, two processes, the
studio server, the converter script) stay subprocesses in their tests.
"""
import dataclasses
import importlib
import importlib.util
import pathlib
import runpy
import sys

from absl import app, flags


@dataclasses.dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run_script(path: str) -> None:
    """``python path``: the script's folder first on sys.path (its sibling modules import)."""
    sys.path.insert(0, str(pathlib.Path(path).parent))
    try:
        runpy.run_path(path, run_name="__main__")
    finally:
        sys.path.remove(str(pathlib.Path(path).parent))


def run_program(capfd, target: str, *args: str, argv0: str = None) -> Result:
    """``python -m MODULE ARGS`` for target ``MODULE`` (a package: its ``__main__``); ``python FILE.py ARGS`` for a script of the
    repository (``convert/torch_to_flax.py``); ``MODULE:FUNCTION`` calls that function (a console
    script's entry point) with ``argv0`` as the started file. Every program calls ``cli.common.run``,
    which defines its flags; they are removed again afterwards, so the next program can define its own."""
    if target.endswith(".py"):
        script = str(ROOT / target)
        module, argv0 = None, script
        start = lambda: _run_script(script)                               # noqa: E731
    else:
        module_name, _, function = target.partition(":")
        if importlib.util.find_spec(module_name).submodule_search_locations is not None:
            module_name += ".__main__"            # python -m PACKAGE runs PACKAGE/__main__.py
        module = importlib.import_module(module_name)
        start = getattr(module, function or "run")
    app.define_help_flags()                    # once per process, as app.run does; kept
    defined = set(flags.FLAGS)
    saved = sys.argv, sys.modules["__main__"]
    sys.argv = [argv0 or module.__file__, *args]
    if module is not None:
        sys.modules["__main__"] = module       # absl's --help prints the started module's docstring
    capfd.readouterr()
    code = 0
    try:
        start()
    except SystemExit as e:
        code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)        # what the interpreter prints for sys.exit("message")
    finally:
        sys.argv, sys.modules["__main__"] = saved
        for name in set(flags.FLAGS) - defined:
            delattr(flags.FLAGS, name)
        flags.FLAGS.unparse_flags()
    out, err = capfd.readouterr()
    return Result(code, out, err)
