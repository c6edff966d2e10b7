"""The `depara` command line: one module per command group; each only parses arguments and calls the library."""
