"""A throwaway PostgreSQL server for the distributed-tuning test (started, used, stopped).

Uses ``SB3_RTX_TEST_POSTGRES_URL`` when set; otherwise starts a private cluster with the machine's
``initdb`` / ``pg_ctl`` (Debian's ``postgresql`` package) in a temporary folder, on a free local
port, as the ``postgres`` user when run as root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator


def server_binaries() -> str | None:
    """The folder holding initdb and pg_ctl, or None."""
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(os.path.realpath(initdb))
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def postgres_server(bin_dir: str) -> Iterator[str]:
    """Start a cluster; yield a SQLAlchemy URL to an empty database ``optuna``; stop and delete it."""
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    data = tempfile.mkdtemp(prefix="sb3_rtx_pg_")
    if as_root:
        shutil.chown(data, "postgres", "postgres")
    port = _free_port()
    run = lambda *args: subprocess.run([*prefix, *args], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(f"{bin_dir}/initdb", "-D", data, "-U", "postgres", "--auth=trust")
        run(f"{bin_dir}/pg_ctl", "-D", data, "-w", "-l", f"{data}/server.log", "-o",
            f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start")  # fmt: skip
        try:
            run(f"{bin_dir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "optuna")
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/optuna"
        finally:
            run(f"{bin_dir}/pg_ctl", "-D", data, "-w", "-m", "fast", "stop")
    finally:
        shutil.rmtree(data, ignore_errors=True)
