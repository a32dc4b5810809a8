"""Endpoints: one stable address on 127.0.0.1 in front of several deployments, with a traffic split and a history of
splits to roll back to; routed by nginx (records.py: what an endpoint is and was; nginx.py: its configuration and
process)."""
