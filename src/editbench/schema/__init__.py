"""Typed schemas of every config group, and the value rules checked before a model loads.

Each dataclass reads like the YAML it types and is registered in Hydra's ConfigStore
(schema/run.py's `register()`); the YAML files name it first in their defaults list
(`- base_mose`), so Hydra checks types while it composes (`method.mom2_update_weight=abc` fails
there). Defaults stay in the YAML: a field is MISSING here unless the YAML may lack it (keys other
branches add; optional extras).

- rules.py: a field's value rule and warning (`key(gt(0), doc=...)`);
- methods.py: the `method` group, one schema per method (METHODS);
- groups.py: the model, dataset, downstream, stats and scoring groups;
- run.py: the top-level keys, guard and logger (`Config`), and `register()`;
- check.py: `validate(cfg)` walks the composed config against the schemas, raises ONE ConfigError
  naming every bad key, its value and the allowed range, and returns warnings for values that are
  legal but suspicious; `added_later` for resume;
- composition.py: Hydra's and OmegaConf's composition errors in one line.

Adding a key is one line in its group's dataclass: `new_key: float = key(ge(0), doc="what it is")`.
"""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"  # the Hydra configs, shipped inside the package
