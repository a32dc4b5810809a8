"""Readers of the files a user's test set is imported from, one module per format (registered in
`backend.data.uploads`)."""
