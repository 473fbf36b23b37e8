"""The docstring examples of the traces modules run and give what they show."""

import doctest
import importlib

import matplotlib
import pytest

matplotlib.use("Agg")

MODULES = ["fluoxr.extraction", "fluoxr.temporal", "fluoxr.spikes", "fluoxr.positions", "fluoxr.kernels.masks",
           "fluoxr.kernels.temporal", "fluoxr.kernels.oasis", "fluoxr.kernels.detrend", "fluoxr.kernels.extract",
           "fluoxr.plot", "fluoxr.device", "fluoxr.kernels.gpu"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0
