"""Merging notices shared by other replicas into a notice board: idempotent, newest wins per
instance and kind, expired records dropped."""

from __future__ import annotations

from scaler.notices import (
    FINAL,
    RECOMMENDATION,
    REPLACEMENT,
    WARNING,
    NoticeBoard,
    SharedNotice,
    shared,
)

T = 1_000_000.0


def _board(*notices: SharedNotice, now: float = T) -> NoticeBoard:
    board = NoticeBoard()
    board.merge(notices, now)
    return board


def test_each_kind_lands_where_the_handler_would_put_it() -> None:
    board = _board(
        shared("i-w", WARNING, T),
        shared("i-r", RECOMMENDATION, T),
        shared("i-f", FINAL, T),
        shared("i-x", REPLACEMENT, T, end=T + 300),
    )
    expected = NoticeBoard()
    expected.warned("i-w", T)
    expected.recommended("i-r", T)
    expected.finalised("i-f", T)
    expected.warned("i-x", T, notice=300)
    assert board == expected


def test_merging_twice_changes_nothing() -> None:
    notices = [shared("i-1", WARNING, T), shared("i-1", FINAL, T), shared("i-2", RECOMMENDATION, T)]
    once = _board(*notices)
    twice = _board(*notices)
    twice.merge(notices, T)
    twice.merge(reversed(notices), T)
    assert twice == once


def test_the_newest_record_of_an_instance_and_kind_wins() -> None:
    older = shared("i-1", REPLACEMENT, T - 100, end=T - 100 + 60)
    newer = shared("i-1", REPLACEMENT, T, end=T + 300)
    for order in ([older, newer], [newer, older]):
        board = _board(*order)
        assert board.ends == {"i-1": T + 300}
        assert board.noticed == {"i-1": T}


def test_expired_records_are_dropped() -> None:
    gone = shared("i-1", WARNING, T - 5000)
    assert gone.expires <= T
    assert _board(gone) == NoticeBoard()
    kept = shared("i-2", WARNING, T - 100)
    assert _board(gone, kept).ends == {"i-2": T - 100 + 120}


def test_records_keep_as_long_as_the_board_keeps_them() -> None:
    """A record expires when the board would prune what it says: merging an unexpired record
    after a prune puts back nothing the board would prune at once."""
    for kind in (WARNING, RECOMMENDATION, FINAL, REPLACEMENT):
        record = shared("i-1", kind, T, end=T + 120)
        board = _board(record, now=record.expires - 1)
        board.prune(record.expires - 1)
        assert board != NoticeBoard(), kind
        assert _board(record, now=record.expires) == NoticeBoard(), kind


def test_an_unknown_kind_is_ignored() -> None:
    assert _board(SharedNotice("i-1", "later", T, None, T + 60)) == NoticeBoard()
