"""The command-line programs: thin absl mains over the libraries, all started by :func:`common.run`.

Each ``python -m dds_jax.cli.<name>`` is also a console script ``dds-<name>`` (see setup.py);
``python -m dds_jax.main`` is the DDS program itself.
"""
