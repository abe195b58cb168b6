"""The parts of the editing loop, each in its own module, which :func:`editbench.runner.run` calls in
order: :mod:`.plan` (the steps, the scoring protocol and the cell they run on), :mod:`.resume` (a run
dir's state), :mod:`.step` (one edit and its diagnostics), :mod:`.evaluate` (the scoring protocols),
:mod:`.downstream` (the downstream schedule) and :mod:`.summary` (summary.json, timing.json)."""
