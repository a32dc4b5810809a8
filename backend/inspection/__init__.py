"""What a tester asks of a deployment: scoring test sets, evaluations, kept results, figures, request snippets."""
