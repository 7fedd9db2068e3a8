"""The benchmark's trivial order activities, registered process-wide.

``cairn worker --activities bench.activities`` runs them in worker processes, for the
scale-out benchmark (``bench.scale``); ``bench.workloads`` keeps them in a registry of its
own for the in-process benchmark.
"""

from __future__ import annotations

from bench import workloads
from cairn import activities

for _name, _handler in workloads.order().registry.items():
    activities.registry.register(_name, _handler)
