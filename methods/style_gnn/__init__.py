"""Semi-parametric GNN style transfer (Jing et al., "Learning Graph Neural Networks for Image
Style Transfer", ECCV 2022, arXiv:2207.11681)."""
