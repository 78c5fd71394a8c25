import numpy as np
import pytest

from napari_segkit.core.tiles import blend_weights, block_plan, tile_starts, tiles_for_block


@pytest.mark.parametrize("size", [1, 5, 64, 65, 100, 257, 1000])
@pytest.mark.parametrize(
    ("tile", "overlap", "align"), [(64, 0.25, 1), (64, 0.5, 1), (64, 0.25, 16), (32, 0.0, 8)]
)
def test_tiles_cover_with_the_overlap(size, tile, overlap, align):
    starts = tile_starts(size, tile, overlap, align)
    assert starts[0] == 0 and starts == sorted(set(starts))
    assert starts[-1] + tile >= size  # covered to the end
    if size > tile:
        gaps = np.diff(starts)
        assert gaps.max() <= tile - int(overlap * tile) or len(starts) == 1
        if align == 1:
            assert starts[-1] + tile == size  # flush with the border
        else:
            assert all(s % align == 0 for s in starts)
            assert starts[-1] + tile - size < align  # sticks out less than one multiple


@pytest.mark.parametrize("mode", ["gaussian", "linear", "centre"])
def test_blend_weights_positive_peaked_and_cached(mode):
    w = blend_weights((32, 48), mode, 0.5)
    assert w.shape == (32, 48) and w.dtype == np.float32
    assert (w > 0).all() and w.max() == pytest.approx(1.0)
    assert w[16, 24] >= w[0, 0] and w[16, 24] > w[16, 0]
    assert blend_weights((32, 48), mode, 0.5) is w
    with pytest.raises(ValueError):
        w[0, 0] = 5


def test_centre_weights_have_no_band_on_image_borders():
    w = blend_weights((16, 16), "centre", 0.5, (True, False, False, False))
    assert w[0, 8] == 1.0 and w[15, 8] < 1e-5


def test_block_plan_and_tiles_for_block():
    blocks = block_plan((10, 7), (4, 4))
    assert len(blocks) == 6 and blocks[-1] == (slice(8, 10), slice(4, 7))
    covered = np.zeros((10, 7), int)
    for b in blocks:
        covered[b] += 1
    assert (covered == 1).all()
    assert tiles_for_block((slice(0, 4), slice(0, 4)), [0, 3, 6], [0, 3], (4, 4)) == [
        (0, 0),
        (0, 3),
        (3, 0),
        (3, 3),
    ]


def test_bad_arguments():
    with pytest.raises(ValueError):
        tile_starts(10, 4, 1.0)
    with pytest.raises(ValueError, match="blend must be one of"):
        blend_weights((4, 4), "cosine")
