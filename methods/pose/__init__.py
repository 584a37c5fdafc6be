"""Bottom-up pose with dual anatomical centers (Cheng et al., arXiv:2208.11975)."""
