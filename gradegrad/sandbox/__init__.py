"""Where student code runs, and how it is contained: the map of this package.

Imports go one way: the grader's side and the child's side each import the wire and the layers,
never each other.

The grader's side (runs in the grading process; never imports a submission)
    remote.py      Submission: a submission loaded in a child, restarted after a fault
    process.py     Child: one evaluator's life from the grader (spawn, deadlines, kill, output)
    zygote.py      the grader's handle on the fork server; protect_grader; namespaces_unavailable
    watchdog.py    stops an evaluator's tree over its memory limit
    meter.py       the kernel's account of an evaluator tree's memory (efficiency), reset and read
    reaper.py      child subreaper, and the sweep where no PID namespace ends a tree

The wire (both sides)
    protocol.py    frames: JSON header plus raw tensor bytes, caps, deadlines
    requests.py    the requests of each op and the facts their replies carry; remote_function
    shared.py      the memory shared with an evaluator: inputs handed over by place, read back
    environment.py the evaluator's environment (no secrets)

The child's side (runs in the fork server and in evaluators)
    forkserver.py  the fork server: import torch once, fork an evaluator per request
    spawn.py       how one evaluator is born: cgroup, namespaces, root, credentials, rlimits
    confine.py     the layers an evaluator applies at the `confine` request
    child.py       Evaluator: load the submission, answer requests with facts
    loopback.py    the run-ahead: the grader's requests, answered in the child
    measure.py     bytes of new storages (the reference's, in the grader), second derivatives, tangents

The layers of containment (layers/, one mechanism each; SECURITY.md has the table)
    namespaces.py  PID, network, IPC, mount (and user) namespaces
    filesystem.py  the evaluator's read-only root, /dev, /proc, scratch tmpfs
    credentials.py a uid of its own, no capabilities, no_new_privs
    limits.py      rlimits, OOM order
    cgroups.py     memory and pids limits on the whole tree
    seccomp.py     the system call filter (libseccomp, or the builtin compiler)
    landlock.py    file, TCP and signal rules (an extra layer)
    kernel.py      the C library and raw system call numbers they share
"""
