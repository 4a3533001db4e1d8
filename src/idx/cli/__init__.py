"""The command line: parses, calls the library, prints. The only place that imports click/tqdm."""
