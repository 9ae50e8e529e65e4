"""Reading labeled text: readers, examples, label sets, splits and generated datasets."""

from textsift.data.example import Dataset, Example
from textsift.data.labels import LabelSet
from textsift.data.loading import Splits, load_splits, read_source, stratified_split

__all__ = ["Dataset", "Example", "LabelSet", "Splits", "load_splits", "read_source", "stratified_split"]
