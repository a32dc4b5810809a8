"""The predictions download is CSV any reader parses back, whatever the class names hold."""

import csv
import io

import numpy as np

from backend.inspection.evaluation import predictions_csv

NAMES = ("cat, black", 'the "other" one', "line\nbreak", "carriage\rreturn", "plain", "trailing,")


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_class_names_with_commas_quotes_and_line_breaks_read_back_as_the_same_rows():
    indices, labels, predictions = np.array([3, 7, 11, 12, 20, 21]), np.array([0, 1, 2, 3, 4, 5]), np.array([1, 1, 3, 3, 0, 5])
    text = predictions_csv(indices, labels, predictions, NAMES)
    assert _rows(text) == [["index", "label", "prediction", "correct"],
                           ["3", "cat, black", 'the "other" one', "False"],
                           ["7", 'the "other" one', 'the "other" one', "True"],
                           ["11", "line\nbreak", "carriage\rreturn", "False"],
                           ["12", "carriage\rreturn", "carriage\rreturn", "True"],
                           ["20", "plain", "cat, black", "False"],
                           ["21", "trailing,", "trailing,", "True"]]
    with_reader = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [row["index"] for row in with_reader if row["correct"] == "True"] == ["7", "12", "21"]


def test_a_label_outside_the_names_is_written_as_its_number_and_plain_names_are_not_quoted():
    text = predictions_csv(np.array([0, 1]), np.array([0, 9]), np.array([0, 1]), ("zero", "one"))
    assert text == "index,label,prediction,correct\r\n0,zero,zero,True\r\n1,9,one,False\r\n"
