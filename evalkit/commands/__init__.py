"""Sub-commands beyond ``run``/``report``/``serve``, one module per concept.

Each module registers its commands on ``evalkit.cli.app`` when imported; ``evalkit.cli``
imports them all. Keep heavy imports inside the command functions so ``--help`` stays fast.
"""
