"""A throwaway PostgreSQL server for the tests of the postgresql:// job store.

`PostgresServer.start()` runs the installed server binaries (Debian's postgresql package: initdb, pg_ctl) on a
fresh data folder in a temporary directory, listening on a free loopback port with trust authentication and
fsync off (nothing here needs to survive a crash of the machine); `stop()` stops it and removes the folder.
PostgreSQL refuses to run as root, so as root every server command runs as the `postgres` system user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

SYSTEM_USER = "postgres"


def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else the newest /usr/lib/postgresql/N/bin; None if absent."""
    on_path = shutil.which("initdb")
    if on_path:
        folder = Path(os.path.realpath(on_path)).parent
        if (folder / "pg_ctl").exists():
            return folder
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found = [f for f in found if (f / "pg_ctl").exists()]

    def version(folder: Path) -> tuple:
        return tuple(int(x) if x.isdigit() else 0 for x in folder.parent.name.split("."))

    return max(found, key=version) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.port = 0
        self.dir: Path | None = None
        self._as = []  # command prefix: run as the postgres user when we are root

    @property
    def admin_url(self) -> str:
        return f"postgresql://{SYSTEM_USER}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://{SYSTEM_USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        proc = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = self.dir / "server.log" if self.dir else None
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}{tail}")

    def start(self) -> "PostgresServer":
        self.dir = Path(tempfile.mkdtemp(prefix="steel-pg-"))
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                raise RuntimeError(f"running as root, PostgreSQL needs the {SYSTEM_USER!r} system user") from None
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", SYSTEM_USER, "--"]
        data = self.dir / "data"
        self._run(str(self.bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", SYSTEM_USER, "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        for _ in range(5):  # a free port can be taken between choosing it and the server binding it
            self.port = _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off")
            try:
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "server.log"), "-w",
                          "-t", "60", "-o", options, "start")
                return self
            except RuntimeError:
                if "could not bind" not in (self.dir / "server.log").read_text(errors="replace"):
                    raise
        raise RuntimeError("PostgreSQL found no free port")

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"steel_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.dir is None:
            return
        if (self.dir / "data" / "postmaster.pid").exists():
            subprocess.run([*self._as, str(self.bin_dir / "pg_ctl"), "-D", str(self.dir / "data"), "-m",
                            "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
