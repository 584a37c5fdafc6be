"""methods/common/images.save_grid: the example-image grid every image method writes."""

import numpy as np
import pytest
from PIL import Image

from methods.common.images import save_grid

pytestmark = pytest.mark.unit


def test_rows_and_columns_are_tiled_with_white_gaps_and_upscaled(tmp_path):
    black, white, grey = np.zeros((4, 5, 3)), np.ones((4, 5, 3)), np.full((4, 5, 3), 0.5)
    save_grid([[black, grey], [grey, black]], tmp_path / "g.png", scale=2, gap=1)
    picture = np.asarray(Image.open(tmp_path / "g.png"))
    assert picture.shape == (2 * (4 + 1 + 4), 2 * (5 + 1 + 5), 3)
    assert (picture[:8, :10] == 0).all()            # row 0, column 0: black, 2× upscaled
    assert (picture[:8, 10:12] == 255).all()        # the column gap is white
    assert (picture[8:10] == 255).all()             # the row gap is white
    assert (picture[:8, 12:] == 128).all()          # 0.5 rounds to 128
    save_grid([[white * 2, black - 1]], tmp_path / "c.png")
    assert np.asarray(Image.open(tmp_path / "c.png")).tolist()[0][:5] == [[255] * 3] * 5  # clipped
