"""FedSA: federated selective aggregation (saliency-based teacher selection + amalgamation)."""
