"""The console script: start the fork server first, so that its `import torch` runs while this
process imports its own (the grader needs torch for references and gradcheck), keep the garbage
collector off torch's objects, and skip the interpreter's slow teardown of torch at the end."""

import gc
import os
import sys


def main() -> None:
    gc.disable()  # importing torch would run several full collections over its own objects
    grading = len(sys.argv) > 1 and sys.argv[1] in ("check", "grade", "gradescope", "validate")
    if grading:
        from gradegrad.sandbox.environment import limit_malloc_arenas
        from gradegrad.sandbox.zygote import prestart

        limit_malloc_arenas()
        prestart()
    from gradegrad.cli import main as cli_main

    gc.freeze()  # what is imported lives as long as the process: later collections skip it
    gc.enable()

    try:
        cli_main()
    except KeyboardInterrupt:  # Ctrl-C: the children were stopped on the way out (finally blocks)
        sys.stderr.write("gradegrad: interrupted\n")
        _fast_exit(130)
    except SystemExit as exc:
        if not grading:
            raise
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        _fast_exit(code)


def _fast_exit(code: int) -> None:
    """Stop the fork server, flush what we printed, and leave without finalising torch."""
    from gradegrad.sandbox.zygote import shutdown

    shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
