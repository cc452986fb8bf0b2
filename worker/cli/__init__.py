"""The `closeloop` command line: one typer app, a module per command group."""
