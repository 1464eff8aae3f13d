"""Intake: find the submissions in a folder and say what the child must load for each; never run them.

A submission is one entry of the folder, named after it (`alice.py` -> alice):
- a `.py` file, loaded as it is (`files.py`);
- a Jupyter notebook (`.ipynb`): its code cells, read as JSON data, run one by one by a
  generated module (`notebooks.py`, `generated.py`);
- a folder (a student's repository): the `--module` file inside, else the only top-level module
  (tests and `setup.py` aside), else every top-level module, in a generated module (`folders.py`).

`scan.py` turns a folder into one `SubmissionSource` per student (`sources.py`), with the
problems found and what was skipped; `locations.py` maps lines of what the child loaded back to
the student's files and cells, for tracebacks and annotations.
"""

from gradegrad.intake.locations import Location, locate, method_locations, relabel_traceback
from gradegrad.intake.notebooks import notebook_module
from gradegrad.intake.scan import discover, generated_code, identical, read_source, source_for
from gradegrad.intake.sources import Discovery, Segment, Skipped, SubmissionSource

__all__ = ["Discovery", "Location", "Segment", "Skipped", "SubmissionSource", "discover", "generated_code",
           "identical", "locate", "method_locations", "notebook_module", "read_source", "relabel_traceback",
           "source_for"]
