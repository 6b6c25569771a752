"""`sotto`: the command layer above the library packages.

Each command group is a module under sotto_cli/commands/ with small handlers
over host_tools (and, for `sotto sim`, simulator). Nothing below imports this
package: host_tools and simulator are libraries that tests and tools call
directly (tests/test_layering.py checks the import graph).
"""
