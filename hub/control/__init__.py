"""The control plane: desired state in NATS KV, watched by every instance; keys, secrets, status, audit."""
