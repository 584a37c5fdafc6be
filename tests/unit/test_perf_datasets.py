"""Claims about the stored MNIST-5k split (methods/common/datasets.py): it is exactly
scikit-learn's stratified split, and loading the data set no longer imports scikit-learn."""

import subprocess
import sys

import numpy as np
import pytest

from methods.common.datasets import MNIST5K_SPLIT, _read_mnist5k_raw

pytestmark = pytest.mark.unit


def test_the_stored_split_is_scikit_learns_stratified_split():
    from sklearn.model_selection import train_test_split

    _, y = _read_mnist5k_raw()
    train, test = train_test_split(np.arange(len(y)), test_size=1000,
                                   stratify=y.astype(np.int64), random_state=0)
    with np.load(MNIST5K_SPLIT) as stored:
        assert np.array_equal(stored["train"], train) and np.array_equal(stored["test"], test)


def test_loading_mnist5k_does_not_import_scikit_learn():
    code = ("import sys; from methods.common.datasets import load_dataset; "
            "d = load_dataset('mnist5k', 'train'); assert len(d.y) == 4000; "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
