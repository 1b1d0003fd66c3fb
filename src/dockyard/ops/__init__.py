"""Operator work on a data folder: install, backup, restore, upgrade, repair, destroy.

The logic lives here, one module per verb group; ``dockyard.cli.ops`` only parses flags and
draws tables and progress bars. Each function reports progress through an optional
``Progress`` callback so it stays usable without a terminal.
"""
