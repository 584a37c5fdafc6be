"""DynaST: dynamic sparse transformer for exemplar-guided image generation (Liu et al., ECCV 2022)."""
