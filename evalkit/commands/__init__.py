"""The command line's commands, one module per command, and what they share.

Each command module defines its command function(s) and ``register(app)``, which ``evalkit.cli``
calls; no command module imports ``evalkit.cli`` (nothing but the console script does). Shared:
``console`` (the two rich consoles), ``output`` (what commands print) and ``options`` (option
values turned into the library's settings). A command parses its options, calls the library,
prints and exits; keep heavy imports inside the command functions so ``--help`` stays fast.
"""
