"""Make the offline demo's models: ``python -m dds_jax.demo_models --work=runs/demo_models``.

A short name for ``python -m dds_jax.cli.demo_models`` (also ``dds-demo-models``): flags there, stages in
``dds_jax.demo.models``.
"""
from dds_jax.cli.demo_models import run

if __name__ == "__main__":
    run()
