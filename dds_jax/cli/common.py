"""The one wrapper every program runs under: flags, then ``main``; a user error is one line and exit 2,
Ctrl-C one line (with the command that resumes, where the program can resume) and exit 130."""
import os
import shlex
import sys
from typing import Callable, Optional

from absl import app

# What a program raises for bad input (a wrong flag value, a missing or corrupt file, a run that does
# not match): every library error type derives from one of these (ConversionError, CorruptCheckpointError,
# UploadError, NoResultsError are ValueErrors). FloatingPointError: a training run that diverged;
# PermissionError: an output folder (or input) the user may not write (read).
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, FloatingPointError,
               PermissionError)


def error_message(e: BaseException) -> str:
    """The one line a user error prints: its message; an OS error names its file and the remedy."""
    if isinstance(e, PermissionError) and e.filename:
        return (f"{e.filename}: permission denied; choose a folder you may write (or fix its permissions) "
                "and run the command again")
    return str(e)


def fail(message: str) -> None:
    """Print ``error: message`` and exit 2 (bad input; nothing to clean up)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def resume_command(argv, program: str, flag: str) -> str:
    """The command that continues this run: the same arguments with ``flag`` (e.g. ``--resume``) added."""
    name = flag.split("=", 1)[0]
    args = [a for a in argv[1:] if not a.startswith(name)]
    return " ".join([program] + [shlex.quote(a) for a in args] + [flag])


def interrupted(hint: Optional[str], note: Optional[str] = None) -> None:
    """Ctrl-C: one line, exit 130. Every output is written atomically, so nothing is half-written; we
    leave without interpreter teardown, which can crash while XLA still runs the interrupted step."""
    print("\ninterrupted" + (f"; resume with: {hint}" if hint else f"; {note}" if note else ""), file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _list_flags_in_help(module_name: str) -> None:
    """absl's ``--help`` lists only the flags of the file that was started; when that is a wrapper (the
    dds-* console scripts, ``python -m dds_jax.demo_models``, ``convert/torch_to_flax.py``), list the
    flags of the program module that defined them as its own."""
    from absl import flags
    started = sys.argv[0]
    for flag in flags.FLAGS.get_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(started, flag)


def run(main: Callable, define_flags: Optional[Callable] = None, flags_parser: Optional[Callable] = None,
        resume: Optional[Callable] = None, interrupt_note: Optional[str] = None,
        errors: tuple = USER_ERRORS) -> None:
    """Define the program's flags (only now, so two programs never collide in one process) and run
    ``main(argv)`` under absl. ``resume(argv) -> str`` names the command that continues an interrupted
    run; ``interrupt_note`` is said instead where there is nothing to resume. ``errors``: the exception
    types that are the user's (one line, exit 2)."""
    if define_flags is not None:
        define_flags()
        _list_flags_in_help(define_flags.__module__)

    def guarded(argv):
        try:
            return main(argv)
        except KeyboardInterrupt:
            interrupted(resume(sys.argv) if resume else None, interrupt_note)
        except errors as e:
            fail(error_message(e))

    app.run(guarded, flags_parser=flags_parser or parse_flags)


def parse_flags(argv):
    """absl ``flags_parser``: a bad flag (unknown, an --enum value not listed, ...) is ONE line naming
    it, exit 2 (absl's own parser prints a FATAL block and exits 1)."""
    from absl import flags
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(str(e).splitlines()[0])


# --------------------------------------------------------------------------------------------------
# --config=FILE[:arg] and --config.<field>=value, with one-line errors
# --------------------------------------------------------------------------------------------------
def _config_args(argv, flag: str):
    """(config file arguments, override field names) found in ``argv``."""
    files, fields = [], []
    for i, a in enumerate(argv[1:], 1):
        if a == f"--{flag}" and i + 1 < len(argv):
            files.append(argv[i + 1])
        elif a.startswith(f"--{flag}="):
            files.append(a.split("=", 1)[1])
        elif a.startswith(f"--{flag}."):
            fields.append(a[len(flag) + 3:].split("=", 1)[0].split(".", 1)[0])
    return files, fields


def config_help(what: str = "Experiment config file (configs/*.py)") -> str:
    """``--config``'s help: the file, then every field that ``--config.<field>=value`` may set, with its
    default (absl lists no field of a config file by itself)."""
    from dds_jax.dds import config as config_lib
    fields = ", ".join(f"{k}={v!r}" for k, v in sorted(config_lib.base_config().items()))
    return f"{what}. Override any field with --config.<field>=value; fields (base defaults): {fields}"


def parse_config_flags(argv, flag: str = "config"):
    """absl ``flags_parser`` for a program whose ``--config`` is a DDS experiment file: unknown fields
    (listing the valid ones), a missing config file and unparsable values print ONE line and exit 2."""
    from absl import flags
    from dds_jax.dds import config as config_lib

    files, fields = _config_args(argv, flag)
    for f in files:
        path = f.split(":", 1)[0]
        if not os.path.isfile(path):
            fail(f"config file not found: {path} (--{flag}={f}); pass one of configs/*.py")
    valid = set(config_lib.base_config().keys())
    unknown = sorted(set(n for n in fields if n not in valid))
    if unknown:
        fail(config_lib.unknown_field_message(unknown, valid))
    try:
        return parse_flags(argv)
    except Exception as e:         # a config file that fails to load or to take an override
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        fail(f"--{flag}: {type(e).__name__}: {lines[-1].strip() if lines else ''}")
