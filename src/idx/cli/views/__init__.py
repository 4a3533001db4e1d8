"""How each analysis command prints its result, from the result object alone: the command calls
it on what it computed, `idx runs show` and `--show` on a run read back from the catalog, so both
print the same. Shared by the command modules (which never import each other), like output.py."""
