"""LTL: Local Tandem Learning (Yang et al., NeurIPS 2022, arXiv:2210.04532).

A spiking student learns layer by layer from a frozen ANN teacher's intermediate
features; see README.md beside this file.
"""
