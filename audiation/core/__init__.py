"""The config-free core: what is maximised (`objectives`), the signal (`parameterizations`), its
augmentations, per-target randomness, the render loop (`render`), SAEs and probes, and where work runs
(`runtime`). Nothing here reads a config.
"""
