"""gradegrad: an autograder for hand-written backward passes.

The flow runs one way:

    manifests + rubric (catalog) -> seeded inputs (cases)
        -> student code evaluated in a child process (sandbox)
        -> checks and diagnosis computed in this process (checks, diagnosis)
        -> an immutable Report (report) -> writers (render)

The grading process never imports a submission: everything the student's code computes comes
back over `sandbox.protocol` as JSON headers and raw tensor bytes, and every verdict is computed
here, against references evaluated here.
"""

__version__ = "0.1.0"
