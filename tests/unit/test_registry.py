"""Claims about the method registry."""

import pytest

from methods.fedavg.method import FedAvgMethod
from methods.registry import UnknownMethodError, get_method, method_names, register

pytestmark = pytest.mark.unit


def test_unknown_method_error_lists_registered_methods():
    with pytest.raises(UnknownMethodError) as err:
        get_method("fedavgg")
    assert "fedavg" in str(err.value)


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        register(FedAvgMethod())


def test_a_method_without_a_name_is_refused():
    class Nameless(FedAvgMethod):
        name = ""

    with pytest.raises(ValueError, match="no name"):
        register(Nameless())


def test_fedavg_is_registered():
    assert "fedavg" in method_names()
    assert get_method("fedavg").paper
