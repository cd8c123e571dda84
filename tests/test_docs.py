"""The commands that README.md, BENCHMARKS.md and docs/*.md show exist and take the flags they show.

Each program named (``python -m MODULE``, ``python convert/…py``, ``python bench/…py``) prints its
``--help`` in this process; every ``--flag`` that a quoted command passes it is in that help, and every
``--config.<field>`` override is a field of the program's config. One console script also starts as a
real process (the installed entry point).
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

from demo_utils import ROOT

DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"\bpython (?:-m ([\w.]+)|((?:convert|bench)/\w+\.py))([^\n]*)")


def _snippets(text):
    """Code blocks (one command per line, backslash continuations joined) and inline code spans."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    for block in blocks:
        yield from block.replace("\\\n", " ").splitlines()
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    yield from (span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose))


def documented_commands():
    """{program: set of flag names passed to it anywhere in the docs}."""
    programs = {}
    for doc in DOCS:
        for snippet in _snippets(doc.read_text()):
            for module, script, args in COMMAND.findall(snippet):
                if module == "pytest":
                    continue
                args = args.split(" #")[0]
                names = {a[2:].split("=", 1)[0] for a in args.split() if a.startswith("--")}
                programs.setdefault(module or script, set()).update(names - {"help", "helpfull"})
    return programs


COMMANDS = documented_commands()


def test_the_docs_name_the_main_programs():
    for program in ("dds_jax.main", "dds_jax.cli.segment", "dds_jax.cli.benchmark", "dds_jax.studio",
                    "convert/torch_to_flax.py"):
        assert program in COMMANDS, program


def _config_fields(program):
    if program == "dds_jax.cli.benchmark":
        from dds_jax.eval import benchmark
        return set(benchmark.default_config().keys())
    from dds_jax.dds import config
    return set(config.base_config().keys())


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_documented_program_takes_the_documented_flags(name, program):
    r = program(name, "--helpfull")          # the flags of every module the program uses
    assert "\n  --" in r.stdout, (r.stdout[-1000:], r.stderr[-1000:])
    for flag in sorted(COMMANDS[name]):
        if flag.startswith("config."):
            assert flag.split(".")[1] in _config_fields(name), (name, flag)
        else:
            assert re.search(rf"--(\[no\])?{re.escape(flag)}:", r.stdout), (name, flag)


def test_a_console_script_starts_as_its_own_process():
    exe = shutil.which("dds-sample", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("dds-sample is not installed (pip install -e .)")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert "--seeds" in r.stdout and "--truncation" in r.stdout, (r.stdout[-1000:], r.stderr[-1000:])
