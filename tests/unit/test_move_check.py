"""What a cgroup.procs write moved when its target died around it (backends/jails/move_check.py)."""

from __future__ import annotations

from netjail.backends.jails.move_check import EXITED, MOVED, RESTORE, UNKNOWN, Seen, after_write

JAIL = "/netjail/net-1/web/42.100"


def test_target_alive_after_the_write_was_moved() -> None:
    assert after_write(100, True, Seen(100, JAIL), "/user.slice", JAIL) == (MOVED, None)


def test_pid_free_or_still_the_zombie_target_moved_nobody_else() -> None:
    assert after_write(100, False, None, None, JAIL) == (EXITED, None)
    assert after_write(100, False, Seen(100, JAIL), "/user.slice", JAIL) == (EXITED, None)


def test_a_stranger_elsewhere_was_not_hit_by_the_write() -> None:
    assert after_write(100, False, Seen(250, "/other.slice"), "/other.slice", JAIL) == (EXITED, None)


def test_a_stranger_moved_by_the_write_goes_back_to_its_parents_cgroup() -> None:
    assert after_write(100, False, Seen(250, JAIL), "/system.slice/cron.service", JAIL) == (
        RESTORE,
        "/system.slice/cron.service",
    )


def test_a_child_born_in_the_cgroup_written_to_stays() -> None:
    assert after_write(100, False, Seen(250, JAIL), JAIL, JAIL) == (EXITED, None)


def test_a_stranger_whose_parent_is_gone_is_left_and_reported() -> None:
    assert after_write(100, False, Seen(250, JAIL), None, JAIL) == (UNKNOWN, None)


def test_unblock_direction_restores_a_stranger_moved_out_to_an_origin() -> None:
    # born in the jail (its parent is jailed), moved out by the write: it goes back in
    assert after_write(100, False, Seen(250, "/user.slice"), JAIL, "/user.slice") == (RESTORE, JAIL)
    assert after_write(100, False, Seen(250, "/user.slice"), "/srv.slice", "/user.slice") == (
        RESTORE,
        "/srv.slice",
    )
