"""Sphinx configuration of the sealedmeta documentation."""

project = "sealedmeta"
copyright = "sealedmeta authors"
extensions = [
    "sphinx.ext.autodoc",
    "oslo_config.sphinxext",
    "cliff.sphinxext",
    "reno.sphinxext",
]
autodoc_member_order = "bysource"
autoprogram_cliff_application = "sealedmeta"
master_doc = "index"
exclude_patterns = []
html_theme = "alabaster"
nitpicky = False
