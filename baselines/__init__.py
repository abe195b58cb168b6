"""The baselines: one file per method, each holding its update rule only.

Each module registers its editor (`method=rome|memit|emmet|rect|prune|alphaedit`) when imported;
editbench/methods.py holds the one list of method modules. Keys, target values, statistics and
MEMIT's residual spread come from `editbench.locate`.
"""
