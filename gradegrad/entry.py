"""The console script: import torch (the grader needs it for references and gradcheck), then
fork the fork server from this process before it reads anything else, so that the two share
torch's pages (`sandbox/forget.py`: what the fork forgets); keep the garbage collector off torch's
objects, and skip the interpreter's slow teardown of torch at the end."""

import gc
import os
import signal
import sys


def main() -> None:
    # Ctrl-C while starting (importing torch) stops here at once: as a KeyboardInterrupt it could be
    # swallowed by a library's bare `except:` around an optional import, or leave a module half-imported
    starting = signal.getsignal(signal.SIGINT) is signal.default_int_handler  # (ignored stays ignored)
    if starting:
        signal.signal(signal.SIGINT, _interrupted_while_starting)
    try:
        _main(starting)
    except KeyboardInterrupt:  # before the handler above was set
        _interrupted()


def _interrupted_while_starting(signum: int, frame: object) -> None:  # noqa: ARG001 - a signal handler's
    _interrupted()


def _interrupted() -> None:
    """Ctrl-C: the children were stopped on the way out (finally blocks); say so, exit 130."""
    workers = sys.modules.get("gradegrad.workers")  # not imported: no grading worker to stop, and an
    if workers is not None:  # import now could meet a module the interrupt left half-imported (numpy)
        workers.stop_all()  # grading workers too, and whatever they left (if a finally block could not run)
    try:
        sys.stderr.flush()
        os.write(2, b"gradegrad: interrupted\n")  # past any wrapper of sys.stderr a progress display left
    except (OSError, ValueError):
        pass
    _fast_exit(130)


def _main(started_handler: bool = False) -> None:
    gc.disable()  # importing torch would run several full collections over its own objects
    grading = len(sys.argv) > 1 and sys.argv[1] in ("check", "grade", "gradescope", "validate") \
        and sys.argv[1:3] != ["gradescope", "bundle"]
    if grading:
        from gradegrad.sandbox.environment import limit_malloc_arenas, single_threaded_blas
        from gradegrad.sandbox.zygote import prestart

        single_threaded_blas()
        limit_malloc_arenas()
        cluster = _on_cluster(sys.argv[1:])
        if cluster:
            from gradegrad import cluster_forkserver

            address = _option(sys.argv[1:], "--cluster")
            if cluster_forkserver.is_local(address):  # its workers' fork server, a fork of this process once
                from gradegrad.cluster_local import start_early  # it has imported torch, and the cluster,

                start_early(address)  # in a thread, while the command reads its options and submissions
        if not cluster:  # on a cluster its workers grade: this process computes no gradient
            warm_up()
        workers = 0 if cluster else _preforks(sys.argv[1:])
        if not cluster and sys.argv[1] == "grade":  # many evaluators to fork: cheaper forks pay for the
            from gradegrad.sandbox import hugepages  # collapse (about 0.1 s; not so for `check`'s one)

            hugepages.collapse()  # before the workers and fork servers are forked, which then share it
        if workers:  # grading workers, each forking its own fork server: forks of this process, as below
            from gradegrad.workers import prefork

            prefork(workers)
        elif not cluster:
            prestart(fork=True)  # a fork of this process, which has read nothing but argv and environ yet
    from gradegrad.cli import main as cli_main
    gc.freeze()  # what is imported lives as long as the process: later collections skip it
    gc.enable()
    if started_handler:  # from now on a KeyboardInterrupt, which the command's finally blocks clean up after
        signal.signal(signal.SIGINT, signal.default_int_handler)

    try:
        cli_main()
    except SystemExit as exc:
        if not grading:
            raise
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code == 130:  # typer's word for a KeyboardInterrupt in the command
            _interrupted()
        _fast_exit(code)


def warm_up() -> None:
    """Pay now what the grader's first reference gradient would import lazily, before the fork
    server is forked, so that it shares these pages too; but not torch's symbolic-shapes module
    (and sympy, a third of a second), which `autograd.grad` with a grad_output imports only to
    compare two sizes: a stand-in does that (`lazy_shapes.py`) until something needs the rest."""
    import torch

    from gradegrad import lazy_shapes

    lazy_shapes.install()
    x = torch.ones(1, dtype=torch.float64, requires_grad=True)
    torch.autograd.grad(x * 2, [x], torch.ones(1, dtype=torch.float64))
    # one thread for torch's own operations: the grader's tensors are small, and a pool of OpenMP
    # threads would spin between them on the cores the evaluators need (about a tenth of a batch's
    # CPU); the fork server, the workers and every evaluator inherit it
    torch.set_num_threads(1)


def _option(args: list[str], name: str, *short: str) -> str | None:
    """The value given to option `name` (`--name VALUE`, `--name=VALUE`, or a short form) on a
    command line not parsed yet, the last one as the parser takes it; None when it is not there."""
    value = None
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
        elif arg in (name, *short) and i + 1 < len(args):
            value = args[i + 1]
    return value


def _on_cluster(args: list[str]) -> bool:
    """Whether `grade` sends the batch to a Dask cluster (`--cluster`): no fork server here."""
    return bool(args) and args[0] == "grade" and any(arg == "--cluster" or arg.startswith("--cluster=")
                                                      for arg in args)


def _preforks(args: list[str]) -> int:
    """How many grading workers `grade` will share the batch among (`workers.prefork`): 0 for any
    other command, or for one job (this process grades, with the fork server started here)."""
    if not args or args[0] != "grade" or not hasattr(os, "fork"):
        return 0
    from gradegrad.workers import default_jobs, preforks_for

    value = _option(args, "--jobs", "-j")
    return preforks_for(int(value) if value is not None and value.isdigit() else default_jobs())


def _fast_exit(code: int) -> None:
    """Stop the fork server, and any grading worker or local cluster's fork server still waiting (a
    command that ended before it graded), flush what we printed, and leave without finalising torch.
    Always with `code`: what cannot be stopped (a module an interrupt left half-imported) is left to
    the ends of the pipes this exit closes, never a traceback and another exit code."""
    try:
        zygote = sys.modules.get("gradegrad.sandbox.zygote")  # not imported: no fork server to stop
        if zygote is not None:
            zygote.shutdown()
        workers = sys.modules.get("gradegrad.workers")
        if workers is not None:
            workers.stop_all()
        cluster = sys.modules.get("gradegrad.cluster_forkserver")  # a local cluster's, started as the command
        if cluster is not None:  # started; stopped already, unless the command ended before it graded
            cluster.stop([])
            cluster.remove_socket_folder()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
