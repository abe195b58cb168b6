"""Tables and figures from finished run directories; `python -m editbench.report` is their command line."""
