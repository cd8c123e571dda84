"""Convert PyTorch checkpoints into dds-jax model directories: the design card's conversion script, a thin
wrapper of ``dds_jax.cli.convert`` (see there for the examples and flags).

  python convert/torch_to_flax.py --kind=stylegan2 --src=ffhq.pt --out=ckpt/ffhq

``.pt`` files are read with ``torch.load(weights_only=True)``: no pickled code runs.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dds_jax.cli import convert  # noqa: E402

if __name__ == "__main__":
    convert.run()
