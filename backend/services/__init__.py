"""What a user does, one function each: the CLI and the dashboard's pages call these and only render."""
