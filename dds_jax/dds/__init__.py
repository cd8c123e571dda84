"""Dual-Domain Synthesis (paper Sec. 3.3, Algorithm 1): losses and the batched latent optimiser."""
from dds_jax.dds.losses import TERMS, crossover, layer_masks, masked_perceptual, released_names, roles
from dds_jax.dds.optimize import (ChunkOutput, DDSConfig, DDSModels, Inputs, RunChunk, RunResult, State,
                                  failed_problems, final_images, init_state, initial_latents,
                                  inputs_from_images, make_run_chunk, mask_is_empty, pad_seeds,
                                  prepare_inputs, run_dds, seed_mesh, shard_seeds, unpad)

__all__ = [
    "TERMS", "crossover", "layer_masks", "masked_perceptual", "released_names", "roles",
    "ChunkOutput", "DDSConfig", "DDSModels", "Inputs", "RunChunk", "RunResult", "State",
    "failed_problems", "final_images", "init_state", "initial_latents", "inputs_from_images",
    "make_run_chunk", "mask_is_empty", "pad_seeds", "prepare_inputs", "run_dds", "seed_mesh",
    "shard_seeds", "unpad",
]
