"""The layers of containment, one module each, applied to an evaluator before the submission runs.

Each layer is a small module that knows one kernel mechanism and nothing of exercises or of the
protocol; each returns the names of what it made active, or says by name what is missing, so
that the report can list both (see SECURITY.md for the table of attacks and layers).
"""
