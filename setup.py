import setuptools

# Everything is in setup.cfg (pbr) and pyproject.toml.
setuptools.setup(pbr=True)
