"""AvatarGen: animatable 3D-aware human GAN (arXiv:2208.00561) as a fedvault method."""
