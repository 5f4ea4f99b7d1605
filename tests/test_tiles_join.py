"""llamavis.images.tiles: the auto rule and the joining of tiles' texts (pure)."""

from __future__ import annotations

from llamavis.images import tiles


def test_auto_tiles_only_print_that_shrinking_would_make_illegible():
    a4 = (0, 0, 2000, 2900)  # content of a 300 dpi A4 scan
    assert tiles.wants_tiles(a4, "auto", line=30)  # ~8 pt: 30 * 1120/2900 = 11.6 px < 14
    assert not tiles.wants_tiles(a4, "auto", line=60)  # a heading: 23 px after shrinking
    assert not tiles.wants_tiles(a4, "auto", line=None)  # no text lines (a photo)
    assert not tiles.wants_tiles((0, 0, 1000, 1100), "auto", line=8)  # fits: nothing shrinks
    assert tiles.wants_tiles((0, 0, 1000, 1100), 2)  # a count always tiles


def test_a_row_joins_line_pieces_left_to_right_and_keeps_overlap_words_once():
    grid = [["The quick brown\nfox jumps", "brown fox\njumps over"]]
    assert tiles.join(grid) == "The quick brown fox\nfox jumps over"


def test_rows_keep_the_lines_read_twice_in_the_overlap_once():
    grid = [["one\ntwo\nthree"], ["three\nfour"]]
    assert tiles.join(grid) == "one\ntwo\nthree\nfour"


def test_a_row_whose_tiles_read_different_line_counts_follows_tile_by_tile():
    grid = [["left a\nleft b\nleft c", "right a"]]
    assert tiles.join(grid) == "left a\nleft b\nleft c\nright a"


def test_plan_tiles_fit_1120_and_overlap():
    grid = tiles.plan((284, 292, 2150, 3205))
    boxes = [b for row in grid for b in row]
    assert all(x1 - x0 <= 1120 and y1 - y0 <= 1120 for x0, y0, x1, y1 in boxes)
    assert len(grid) == 3 and all(len(row) == 2 for row in grid)
    assert grid[0][0][2] - grid[0][1][0] >= tiles.OVERLAP
    assert grid[0][0][3] - grid[1][0][1] >= tiles.OVERLAP
