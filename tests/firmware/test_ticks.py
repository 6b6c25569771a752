from sotto.ticks import TICKS_PERIOD, ticks_add, ticks_diff, ticks_reached


def test_add_wraps_at_period():
    assert ticks_add(TICKS_PERIOD - 10, 25) == 15
    assert ticks_add(5, -10) == TICKS_PERIOD - 5


def test_diff_across_wrap_is_small_and_signed():
    before_wrap = TICKS_PERIOD - 100
    after_wrap = ticks_add(before_wrap, 250)
    assert after_wrap == 150
    assert ticks_diff(after_wrap, before_wrap) == 250
    assert ticks_diff(before_wrap, after_wrap) == -250


def test_reached_across_wrap():
    deadline = ticks_add(TICKS_PERIOD - 1, 3000)
    assert not ticks_reached(TICKS_PERIOD - 1, deadline)
    assert not ticks_reached(ticks_add(deadline, -1), deadline)
    assert ticks_reached(deadline, deadline)
    assert ticks_reached(ticks_add(deadline, 1), deadline)


def test_matches_micropython_time_module_where_available():
    try:
        import time

        ref_add = time.ticks_add
        ref_diff = time.ticks_diff
    except AttributeError:  # CPython has no ticks_*; the VM lane covers this
        return
    for a, d in ((0, 1), (TICKS_PERIOD - 1, 1), (12345, -20000), (TICKS_PERIOD // 2, TICKS_PERIOD // 2 - 1)):
        assert ticks_add(a, d) == ref_add(a, d)
        b = ref_add(a, d)
        assert ticks_diff(b, a) == ref_diff(b, a)
