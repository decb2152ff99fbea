"""The tracer helper process: it stops, clones and releases the target for the dumper.

Tracing from a separate process means the dumper can even snapshot itself, and
that if the dumper is killed the helper sees its end of the channel close and
still puts everything back: the clone killed and reaped, every thread detached.

Run as ``python -m snapshotdump._linux.tracer FD``, by :mod:`.snapshot` only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys

from .. import _spawn, errors
from . import channel, clone_stream, freeze, ledger, messages, precopy_arm, stack_capture
from .capture_data import CaptureData
from .session import Session


class _Server:
    """The helper's end of the channel and the session it holds (released if it ends)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.session: Session | None = None
        self.fit = True  # False once a thread could not be stopped: this helper must exit

    def serve(self) -> None:
        try:
            while self.fit:
                try:
                    message, received = channel.receive(self.sock)
                except (EOFError, ConnectionError):
                    return
                try:
                    self.answer(message, received)
                except (EOFError, ConnectionError):
                    return
                finally:
                    for fd in received:
                        os.close(fd)
            # Our exit detaches the thread that never stopped.
        finally:
            if self.session is not None:
                self.session.release()

    def answer(self, message: object, received: list[int]) -> None:
        """Answer one request.  A session is recorded before anything is sent, so that a
        dumper gone meanwhile still gets it released."""
        sock = self.sock
        if isinstance(message, messages.Capture):
            self.session = session = Session(message.pid)
            try:
                data, mem_fd = capture(session, message.want_clone, message.live_fallback,
                                       message.memory)
            except BaseException as exc:
                self.session = None  # capture() released what it had taken
                self.fit = session.fit
                channel.send(sock, messages.Failure(_portable(exc)))
                return
            try:
                channel.send(sock, messages.Reply(data), [mem_fd])
            finally:
                os.close(mem_fd)
        elif isinstance(message, messages.Stream):
            if self.session is None:
                channel.send(sock, messages.Reply(messages.Declined("nothing is captured")))
            else:
                clone_stream.serve(self.session, message.regions, sock)
        elif isinstance(message, messages.Free | messages.Abort):
            pass  # slots handed back, or a stop that came after the last piece
        elif isinstance(message, messages.Release):
            # The helper stays for the dumper's next capture; EOF ends it.
            outcome = messages.Released()
            if self.session is not None:
                session, self.session = self.session, None
                try:
                    session.release()
                finally:
                    outcome = messages.Released(session.freezer.resumed_ns, session.reap_pause_ns,
                                       session.warnings, session.fit)
            self.fit = outcome.fit
            channel.send(sock, messages.Reply(outcome))
        elif isinstance(message, messages.Reap):
            outcome = reap_left_behind(message.pid)
            self.fit = outcome.fit
            channel.send(sock, messages.Reply(outcome))
        elif isinstance(message, messages.TakeUffd | messages.FinishPrecopy):
            try:
                value, fds = _precopy_step(self.session, message, received)
            except BaseException as exc:
                if self.session is not None:
                    self.fit = self.session.fit
                channel.send(sock, messages.Failure(_portable(exc)))
            else:
                channel.send(sock, messages.Reply(value), fds)
        else:
            channel.send(sock, messages.Failure(errors.SnapshotError(
                f"the tracer helper got an unknown request: {message!r:.200}")))


def capture(session: Session, want_clone: bool, live_fallback: bool,
            memory: str) -> tuple[CaptureData, int]:
    """The capture *memory* asks for (a CaptureMemory value): its data and a mem fd."""
    if memory == "stacks":
        return stack_capture.capture(session)
    if memory == "precopy":
        return precopy_arm.capture(session, live_fallback)
    return session.capture(want_clone, live_fallback)


def serve(sock: socket.socket) -> None:
    _Server(sock).serve()


def reap_left_behind(pid: int) -> messages.Released:
    """Reap the zombies of ours in *pid* that a helper which died left behind."""
    session = Session(pid)
    try:
        session.lock = ledger.TargetLock(pid)
    except errors.SnapshotError as exc:
        return messages.Released(warnings=[str(exc)])
    session.release()
    return messages.Released(None, session.reap_pause_ns, session.warnings, session.fit)


def _precopy_step(session: Session | None, message: messages.TakeUffd | messages.FinishPrecopy,
                  received: list[int]) -> tuple[object, list[int]]:
    """A pre-copy's requests: its userfaultfd; then the final stop, run here so that
    nothing crosses between processes while the target is stopped."""
    if session is None or session.uffd is None:
        raise errors.SnapshotError("no pre-copy snapshot is held by the tracer helper")
    if isinstance(message, messages.TakeUffd):
        return None, [session.uffd]
    from . import precopy

    state = message.state
    assert isinstance(state, precopy.State) and len(received) == 1
    return precopy.final_stop(session, state, received[0]), []


def _portable(exc: BaseException) -> errors.SnapshotError:
    if isinstance(exc, errors.SnapshotError):
        return exc
    if isinstance(exc, OSError):
        return errors.SnapshotError(f"the tracer helper failed: {exc}", errno=exc.errno)
    return errors.SnapshotError(f"the tracer helper failed: {type(exc).__name__}: {exc}")


def main() -> None:
    # Ctrl-C in the dumper's terminal must not stop the helper halfway through a clone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    freeze.block_child_signals()
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write("-1000")
    sock = socket.socket(fileno=int(sys.argv[1]))
    # The dumper names its package folder and version: a helper running other code (the
    # package upgraded since the dumper imported it) must not trace anything.
    reason = (_spawn.same_package(sys.argv[2], sys.argv[3]) if len(sys.argv) == 4
              else "it was started without the dumper's package folder and version")
    if reason is not None:
        refuse(sock, f"the tracer helper cannot run: {reason}; reinstall snapshotdump and "
                     "restart the program")
        return
    serve(sock)


def refuse(sock: socket.socket, message: str) -> None:
    """Answer every request with *message* until the dumper hangs up."""
    while True:
        try:
            channel.receive(sock)
            channel.send(sock, messages.Failure(errors.SnapshotError(message,
                                                                     function="capture")))
        except (EOFError, OSError):
            return


if __name__ == "__main__":
    main()
