"""The ``clmmd`` command line: argument parsing, what each command does, terminal output."""
