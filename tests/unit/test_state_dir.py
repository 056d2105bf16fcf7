"""The state directory's checks and its no-follow file access (issue 8 finding 6)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from netjail.backends.errors import EXIT_PRIVILEGE, InsufficientPrivilege
from netjail.backends.jails.state import Registry, Store


@pytest.fixture
def target(tmp_path: Path) -> Path:
    t = tmp_path / "target"
    t.write_text("untouched\n")
    return t


def test_missing_directories_are_created_0700(tmp_path: Path) -> None:
    store = Store(tmp_path / "a" / "b")
    with store.locked():
        store.save(Registry())
    for d in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b" / "state.json").stat().st_mode) == 0o600


def test_reading_a_missing_directory_creates_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "none")
    assert store.load().jails == {} and store.read_text("watcher.pid") is None
    store.unlink("watcher.pid")
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("name", ["watcher.pid", "watcher.log", "state.json"])
def test_no_file_is_written_through_a_symlink(tmp_path: Path, target: Path, name: str) -> None:
    store = Store(tmp_path / "state")
    (tmp_path / "state").mkdir(mode=0o700)
    (tmp_path / "state" / name).symlink_to(target)
    with pytest.raises(InsufficientPrivilege, match="symbolic link") as err:
        if name == "state.json":
            store.load()
        else:
            store.append_text(name, "x\n")
    assert err.value.exit_code == EXIT_PRIVILEGE
    with pytest.raises(InsufficientPrivilege, match="symbolic link"), store.locked():
        pass  # refused up front, before a command changes anything
    assert target.read_text() == "untouched\n"


def test_logs_directory_and_files_are_not_followed(tmp_path: Path, target: Path) -> None:
    state = tmp_path / "state"
    store = Store(state)
    fd = store.open_log("j1")
    os.write(fd, b"out\n")
    os.close(fd)
    assert (state / "logs" / "j1.log").read_text() == "out\n"
    (state / "logs" / "j2.log").symlink_to(target)
    with pytest.raises(InsufficientPrivilege, match="symbolic link"):
        store.open_log("j2")
    os.rename(state / "logs", state / "logs.old")
    (state / "logs").symlink_to(tmp_path)
    with pytest.raises(InsufficientPrivilege, match="symbolic link"):
        store.open_log("target")
    assert target.read_text() == "untouched\n"


def test_an_open_directory_above_is_refused_unless_sticky(tmp_path: Path) -> None:
    above = tmp_path / "above"
    above.mkdir()
    store = Store(above / "state")
    os.chmod(above, 0o777)
    with pytest.raises(InsufficientPrivilege, match=f"{above} is writable by others"):
        store.load()
    os.chmod(above, 0o1777)
    assert store.load().jails == {}


def test_saving_what_was_loaded_writes_nothing_and_a_change_is_written(tmp_path: Path) -> None:
    """A reader never serialises the registry (`list`, `counters`); the watcher's save of an
    unchanged registry is still a no-op, and a changed one is still written."""
    from netjail.backends.jails.state import JailState, MemberState

    store = Store(tmp_path / "state")
    with store.locked():
        store.save(Registry({"j": JailState("j", allow=["10.0.0.0/8"], members=[MemberState(1, 2)])}))
    path = tmp_path / "state" / "state.json"
    before = path.stat()

    again = Store(tmp_path / "state")
    with again.locked():
        registry = again.load()
        again.save(registry)
        assert path.stat().st_ino == before.st_ino  # not replaced (a save renames a new file in)
        registry.jails["j"].allow.append("10.1.0.0/16")
        again.save(registry)
    assert path.stat().st_ino != before.st_ino
    assert Store(tmp_path / "state").load().jails["j"].allow == ["10.0.0.0/8", "10.1.0.0/16"]


def test_a_lock_free_reader_never_makes_the_lock_holder_skip_a_save(tmp_path: Path) -> None:
    """The TUI reads the state without the lock (counters, one thread) while a block or unblock
    (another thread, same Store) saves under it. A read that began before a save and ended after
    the holder's next load left the file's old text as "what the file holds": a save back to
    that old registry (unblock after block) was skipped and state.json kept the released jail
    (4 of 317 saves in 10 s with two free-running threads before the fix). Here the reader is
    held, by a trace hook, between reading the file and finishing its load."""
    import inspect
    import sys
    import threading

    from netjail.backends.jails.state import JailState

    store = Store(tmp_path / "state")
    with store.locked():
        store.save(Registry({"a": JailState("a")}))
    lines, first = inspect.getsourcelines(Store.load)
    parsed_at = first + next(i for i, line in enumerate(lines) if "registry = Registry(" in line)
    read, go = threading.Event(), threading.Event()

    def trace(frame: object, event: str, arg: object) -> object:
        code = getattr(frame, "f_code", None)
        if code is not Store.load.__code__:
            return trace if event == "call" and code is Store.load.__code__ else None
        if event == "line" and getattr(frame, "f_lineno", 0) > parsed_at and not read.is_set():
            read.set()  # the old text is read and parsed: wait while the holder saves and loads
            go.wait(10)
        return trace

    def reader() -> None:
        sys.settrace(trace)
        try:
            store.load()
        finally:
            sys.settrace(None)

    thread = threading.Thread(target=reader)
    thread.start()
    assert read.wait(10)
    with store.locked():  # block: jail x is added
        registry = store.load()
        registry.jails["x"] = JailState("x")
        store.save(registry)
    with store.locked():  # unblock: x goes, the registry is again what the reader read
        registry = store.load()
        del registry.jails["x"]
        go.set()
        thread.join(10)
        store.save(registry)
    assert "x" not in Store(tmp_path / "state").load().jails, "the unblock's save was skipped"
