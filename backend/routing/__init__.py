"""Endpoints: one stable address on 127.0.0.1 in front of several deployments, with a traffic split, a history of
splits to roll back to and a shadow; routed by nginx (records.py: what an endpoint is and was; nginx.py: its
configuration and process; shadow.py: the shadow's answers matched with the live ones)."""
