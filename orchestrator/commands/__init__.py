"""CLI subcommands implemented outside cli.py (cli.py registers them)."""
