"""The privacy audit: the end-of-run audit phase, the one-run canary audit, membership
inference, the checks, and the report (`fedvault audit RUN_DIR`)."""
