"""Real gRPC deployment: a local federation (local_federation.py: SuperLink and SuperNodes
on 127.0.0.1, runs submitted with `flwr`), `fedvault deploy` (scenario.py), the processes it
starts (processes.py), `fedvault node`'s SuperNode and its long-lived ClientApp worker
(node_supervisor.py, clientapp_worker.py, worker_log.py: its lines per task),
certificates and node keys (tls.py), why a node cannot connect (fleet_check.py), and
killing a node mid-round (faults.py)."""
