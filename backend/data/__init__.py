"""Test sets, the one home of them. Each module imports only modules listed before it here (and
`backend.errors`, `config`, `registry`, `staging`), never `inspection/` or anything higher:

    testset      the types: TestSet (loaded), DatasetInfo (as the catalogue knows it), format_range
    idx          IDX files (MNIST's format)
    builtin      the built-in sets as one table (name, info, loader, install hint)
    fit          whether a set fits a model's signature, and why not
    preprocess   a drawn or uploaded digit made into a set's form (and the form of a set's images)
    limits       caps on what a user's set may hold
    formats/     one reader per format of a user's files, each returning a RawSet
    uploads      the one table of formats: dispatch, and the help the CLI, the page and refusals show
    normalise    a RawSet checked and put in the TestSet form
    store        the user's own sets on disk: import, list, load, remove, checksum, revision
    catalogue    every set by name: list, load, title, which fit some models
"""
