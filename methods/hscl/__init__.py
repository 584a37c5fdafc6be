"""HSCL: hierarchical semi-supervised contrastive anomaly detection (Wang et al., ECCV 2022)."""
