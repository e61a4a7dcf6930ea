"""The one thread policy (dcformat/threads.py): order, errors, sharing, and the cap."""

import threading

import pytest

from dcformat import threads as T


def test_results_come_back_in_order():
    assert T.run(lambda x: x * x, list(range(50)), threads=3) == [x * x for x in range(50)]
    assert T.run(lambda x: x, [], threads=3) == []


def test_the_first_error_in_order_is_raised_once_every_item_finished():
    finished = []

    def fn(i):
        if i in (7, 3):
            raise ValueError(i)
        finished.append(i)

    with pytest.raises(ValueError, match="3"):
        T.run(fn, list(range(12)), threads=2)
    assert sorted(finished) == [i for i in range(12) if i not in (3, 7)]


def test_one_thread_runs_everything_on_the_caller():
    names = T.run(lambda _: threading.current_thread().name, list(range(8)), threads=1)
    assert set(names) == {threading.current_thread().name}


def test_a_busy_caller_leaves_its_items_to_the_other_threads():
    # the caller's first item waits until the last item has run: only another thread
    # taking items from the same queue can get there
    last_ran = threading.Event()

    def fn(i):
        if i == 0:
            assert last_ran.wait(timeout=30)
        if i == 9:
            last_ran.set()
        return threading.current_thread().name

    names = T.run(fn, list(range(10)), threads=2)
    assert len(set(names)) == 2


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
def test_nested_work_shares_the_callers_threads(threads):
    lock = threading.Lock()
    active = {"now": 0, "most": 0}

    def leaf(_):
        with lock:
            active["now"] += 1
            active["most"] = max(active["most"], active["now"])
        sum(range(20000))
        with lock:
            active["now"] -= 1

    def outer(i):
        return len(T.run(leaf, list(range(6)), threads=64))  # nested: the team's cap rules

    assert T.run(outer, list(range(8)), threads=threads) == [6] * 8
    assert 1 <= active["most"] <= threads


def test_threads_for_follows_the_policy(monkeypatch):
    monkeypatch.setenv(T.ENV, "5")
    assert T.threads_for(10, None, 100) == 1
    assert T.threads_for(100, None, 100) == 5
    assert T.threads_for(10, 3, 100) == 3
