"""The `shoal` command line (entry point: `shoal.cli.main:main`)."""
