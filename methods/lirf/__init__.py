"""LIRF: Learning with Recoverable Forgetting (Ye et al., ECCV 2022, arXiv:2207.08224).

methods/lirf holds the algorithm (nets, losses, pruning, withdrawal, metrics, data
layout); server/lirf.py orchestrates it and clients/lirf_owner.py runs the owner's
side. See README.md beside this file.
"""
