"""The ``kretry`` command's subcommands, one module each; kretry.cli is the entry point."""
