"""The model: :mod:`~editbench.models.loading` (``load_model``: the ``conf/model/*.yaml`` sources),
:mod:`~editbench.models.spec` (``ModelSpec``: where each layer's edited matrix lives),
:mod:`~editbench.models.fingerprint` (an id of the weights for cache keys) and
:mod:`~editbench.models.tiny` (the tiny random models of the ``model=tiny-*`` configs)."""
