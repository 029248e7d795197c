"""The ``sealedmeta`` command line (cliff). Commands only parse, call the
library's public API and print."""
