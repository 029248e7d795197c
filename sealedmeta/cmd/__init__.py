"""The ``sealedmeta`` command line (cliff). Commands only parse, call the
layers below them and print (docs/source/architecture.rst)."""
