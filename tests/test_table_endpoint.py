"""A table model's endpoint takes a pandas DataFrame as pandas writes it: `to_dict(orient="split")` and
`to_json(orient="split")` (with its index), columns in any order; a split table that does not fit is a 400 that names
what is wrong, and the endpoint keeps answering. Sent with requests, the client a user would use."""

import numpy as np
import pandas as pd
import requests

from backend.data.builtin import BREAST_CANCER_FEATURES


def test_the_endpoint_takes_pandas_split_tables_in_any_column_order(cancer_deployment):
    deck, deployment, data, model = cancer_deployment
    uri = deployment.scoring_uri
    frame = pd.DataFrame(data.X[:6].astype(np.float64), columns=list(BREAST_CANCER_FEATURES))
    expected = list(model.predict(frame))
    shuffled = frame[frame.columns[::-1]]
    split = shuffled.to_dict(orient="split")
    assert set(split) == {"columns", "data", "index"}  # pandas' own form, its index included
    assert requests.post(uri, json={"data": split}, timeout=30).json() == expected
    body = '{"data": ' + shuffled.to_json(orient="split") + ', "proba": true}'
    answered = requests.post(uri, data=body, headers={"Content-Type": "application/json"}, timeout=30).json()
    assert answered["predictions"] == expected and len(answered["probabilities"]) == 6
    columns = requests.get(uri.rsplit("/score", 1)[0] + "/openapi.json", timeout=30).json()["paths"]["/score"]["post"][
        "requestBody"]["content"]["application/json"]["schema"]["properties"]["data"]["oneOf"][1]["properties"]["columns"]
    assert columns["items"]["enum"] == list(BREAST_CANCER_FEATURES) and columns["uniqueItems"]

    def refused(table: dict) -> str:
        answer = requests.post(uri, json={"data": table}, timeout=30)
        assert answer.status_code == 400, answer.text
        return answer.json()["error"]

    short = frame.drop(columns=["worst area"]).to_dict(orient="split")
    assert refused(short) == '"columns" lacks "worst area"'
    extra = frame.assign(colour=1.0).to_dict(orient="split")
    assert refused(extra) == '"columns" has "colour", not a column of the model'
    ragged = dict(split, data=[split["data"][0][:-1]])
    assert refused(ragged) == "row 0 of the split table must be a list of 30 values, one per column"
    assert "pandas' split form" in refused({"columns": "mean radius", "data": []})
    assert refused(dict(split, orient="split")) == ('a split table has only column_names, columns, data, index, '
                                                    'index_names; not "orient"')
    text = dict(split, data=[["big", *split["data"][0][1:]]])
    assert "must be a JSON number" in refused(text)
    assert requests.post(uri, json={"data": split}, timeout=30).json() == expected  # still answering
