"""The pool-manager service: pools, their nodes, and the providers that make nodes exist."""
