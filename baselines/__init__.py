"""The baselines: one file per method, each holding its update rule only.

Importing the package registers them (`method=rome|memit|emmet|rect|prune|alphaedit`); keys,
target values, statistics and MEMIT's residual spread come from `editbench.locate`.
"""

from baselines import alphaedit, emmet, memit, prune, rect, rome  # noqa: F401 (@register side effects)
