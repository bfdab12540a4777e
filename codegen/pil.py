"""The wire to a running firmware: QEMU with the board's UART on a Unix socket, or the host build
as a child process on pipes. One sensor frame out, one actuator frame back, per control period.

QEMU runs with ``-icount shift=6,sleep=off``: virtual time is a function of the instructions
executed, and the lockstep build (``make LOCKSTEP=1``) stops its timer while it waits for the host,
so the cycle counts the firmware reports are deterministic, whatever the host's load.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from nchl.core.errors import NchlError

from .app import MAGIC, AppConfig, BoardInfo, board_frame_size, decode_board_frame, fletcher16
from .firmware import ICOUNT_SHIFT

TIMEOUT_S = 60.0


class Link:
    """A firmware process and its byte stream; subclasses say how bytes travel."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.buffer = b""
        self.reports: list[str] = []

    # -- transport ----------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        raise NotImplementedError

    def _receive(self) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def reset(self) -> dict:
        """Restart the firmware as a reset would (its RAM kept); returns its boot frame."""
        raise NotImplementedError

    # -- frames -------------------------------------------------------------------------
    def frame(self) -> dict:
        """The next valid frame from the board (reports are kept in :attr:`reports` and skipped)."""
        while True:
            at = self.buffer.find(MAGIC)
            if at < 0 or len(self.buffer) < at + 3:
                self.buffer = self.buffer[at:] if at >= 0 else self.buffer[-1:]
                self.buffer += self._receive()
                continue
            kind = chr(self.buffer[at + 2])
            if kind == "R":
                if len(self.buffer) < at + 4:
                    self.buffer += self._receive()
                    continue
                size = 1 + self.buffer[at + 3] + 2
            elif kind in "AB":
                size = board_frame_size(kind, self.config)
            else:
                self.buffer = self.buffer[at + 2:]
                continue
            end = at + 3 + size
            if len(self.buffer) < end:
                self.buffer += self._receive()
                continue
            body = self.buffer[at + 2:end - 2]
            check = int.from_bytes(self.buffer[end - 2:end], "little")
            self.buffer = self.buffer[end:]
            if fletcher16(body) != check:
                raise NchlError(f"a {kind!r} frame from the board failed its checksum")
            f = decode_board_frame(kind, body[1:], self.config)
            if kind == "R":
                self.reports.append(f["text"])
                continue
            return f

    def exchange(self, data: bytes) -> dict:
        self._send(data)
        f = self.frame()
        if f["type"] != "actuators":
            raise NchlError(f"expected an actuator frame, the board sent {f['type']}")
        return f

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class QemuLink(Link):
    """The lockstep build of ``elf`` on QEMU's model of ``board``; its monitor resets it."""

    def __init__(self, elf: Path, board: BoardInfo, config: AppConfig, workdir: Path) -> None:
        super().__init__(config)
        self.workdir = Path(workdir)
        uart, monitor = self.workdir / "uart.sock", self.workdir / "monitor.sock"
        for p in (uart, monitor):
            p.unlink(missing_ok=True)
        cmd = ["qemu-system-arm", *board.qemu_machine, "-display", "none", "-nodefaults",
               "-monitor", f"unix:{monitor},server=on,wait=off", "-serial", f"unix:{uart},server=on,wait=on",
               "-icount", f"shift={ICOUNT_SHIFT},sleep=off", "-kernel", str(elf)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.sock = self._connect(uart)
        self.monitor: socket.socket | None = None

    def _connect(self, path: Path) -> socket.socket:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise NchlError(f"qemu-system-arm exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(str(path))
                s.settimeout(TIMEOUT_S)
                return s
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() > deadline:
                    raise NchlError(f"qemu-system-arm did not open {path}") from None
                time.sleep(0.01)

    def _send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _receive(self) -> bytes:
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise NchlError(f"the emulated board sent nothing for {TIMEOUT_S:.0f} s") from None
        if not data:
            raise NchlError("the emulated board closed its UART")
        return data

    def reset(self) -> dict:
        if self.monitor is None:
            self.monitor = self._connect(self.workdir / "monitor.sock")
        self.monitor.sendall(b"system_reset\n")
        self.buffer = b""
        while True:
            f = self.frame()
            if f["type"] == "boot":
                return f

    def close(self) -> None:
        for s in (self.sock, self.monitor):
            if s is not None:
                s.close()
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


class HostLink(Link):
    """The host build, ``--lockstep`` on pipes; a reset kills it and starts it again (its state file kept)."""

    def __init__(self, binary: Path, config: AppConfig, workdir: Path) -> None:
        super().__init__(config)
        self.binary, self.state = Path(binary), Path(workdir) / "state"
        self.state.unlink(missing_ok=True)
        self._start()

    def _start(self) -> None:
        self.proc = subprocess.Popen([str(self.binary), "--lockstep", "--state", str(self.state)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        os.set_blocking(self.proc.stderr.fileno(), False)

    def _send(self, data: bytes) -> None:
        self.proc.stdin.write(data)

    def _receive(self) -> bytes:
        data = self.proc.stdout.read1(65536) if hasattr(self.proc.stdout, "read1") else os.read(
            self.proc.stdout.fileno(), 65536)
        if not data:
            raise NchlError(f"the host firmware exited ({self.proc.wait()})")
        return data

    def _collect(self) -> None:
        try:
            text = self.proc.stderr.read() or b""
        except (BlockingIOError, ValueError):
            text = b""
        self.reports += [ln for ln in text.decode().splitlines() if ln]

    def reset(self) -> dict:
        self.proc.kill()
        self.proc.wait()
        self._collect()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            f.close()
        self.buffer = b""
        self._start()
        return self.frame()

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._collect()
        self.proc.stdout.close()
        self.proc.stderr.close()


def open_link(binary: Path, board: BoardInfo, config: AppConfig, workdir: Path) -> Link:
    if board.host:
        return HostLink(binary, config, workdir)
    return QemuLink(binary, board, config, workdir)
