"""One module per subcommand group of the `gazelab` CLI."""
