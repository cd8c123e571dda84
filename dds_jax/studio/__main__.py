"""python -m dds_jax.studio --config=configs/demo.py --port=8765  (see dds_jax/studio/__init__.py)."""
from dds_jax.studio.server import run

if __name__ == "__main__":
    run()
