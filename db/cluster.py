"""The embedded PostgreSQL + PostGIS cluster that `fleetdesk db start` runs under ``.fleetdesk/``.

PostgreSQL refuses to run as root, so when we are root the server runs as the ``postgres`` system user, with a
data directory that user can reach.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

from db.config import CLUSTER_USER, DEMO_DATABASE, embedded_port, fleetdesk_home
from db.errors import DatabaseSetupError

SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "512MB",
    "work_mem": "32MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",  # failed statements may carry personal data; never log their text
    "timezone": "'UTC'",
}


def _is_root() -> bool:
    return os.geteuid() == 0


@dataclass(frozen=True)
class Binaries:
    major: int
    bindir: Path

    def __getitem__(self, name: str) -> str:
        return str(self.bindir / name)


def find_binaries() -> Binaries | None:
    """The newest installed PostgreSQL server (Debian layout), or None."""
    found = []
    for bindir in glob.glob("/usr/lib/postgresql/*/bin"):
        major = Path(bindir).parent.name
        if major.isdigit() and Path(bindir, "initdb").exists():
            found.append(Binaries(int(major), Path(bindir)))
    return max(found, key=lambda b: b.major) if found else None


def postgis_installed(major: int) -> bool:
    return Path(f"/usr/share/postgresql/{major}/extension/postgis.control").exists()


def _apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"Installing {' '.join(packages)} with apt-get ...", flush=True)
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DatabaseSetupError(f"'{' '.join(cmd)}' failed: {last[0]}")


def ensure_server_software() -> Binaries:
    """PostgreSQL and PostGIS for its major version, installing them when we are root."""
    binaries = find_binaries()
    if binaries is None:
        if not _is_root():
            raise DatabaseSetupError(
                "PostgreSQL is not installed; run: sudo apt-get install -y postgresql postgresql-15-postgis-3"
            )
        _apt_install("postgresql", "postgresql-contrib")
        binaries = find_binaries()
        if binaries is None:
            raise DatabaseSetupError("PostgreSQL was installed but its server binaries were not found")
    if not postgis_installed(binaries.major):
        package = f"postgresql-{binaries.major}-postgis-3"
        if not _is_root():
            raise DatabaseSetupError(f"PostGIS is missing; run: sudo apt-get install -y {package}")
        _apt_install(package)
        if not postgis_installed(binaries.major):
            raise DatabaseSetupError(f"{package} was installed but PostGIS is still missing")
    return binaries


def _reachable_by_postgres(path: Path) -> bool:
    probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(path)], capture_output=True)
    return probe.returncode == 0


@dataclass(frozen=True)
class ClusterPaths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"


def cluster_paths() -> ClusterPaths:
    """Under .fleetdesk/pg, or — when root and the postgres user cannot reach it — under /var/lib/fleetdesk."""
    home = fleetdesk_home()
    home.mkdir(parents=True, exist_ok=True)
    root = home / "pg"
    if _is_root() and not _reachable_by_postgres(home):
        digest = hashlib.sha256(str(home).encode()).hexdigest()[:12]
        root = Path("/var/lib/fleetdesk") / digest
    return ClusterPaths(root)


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if _is_root() else cmd


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    result = subprocess.run(_as_server_user(cmd), capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise DatabaseSetupError(f"{what} failed: {detail[-1] if detail else 'no output'}")
    return result


def _password() -> str:
    path = fleetdesk_home() / "db_password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def _initialise(binaries: Binaries, paths: ClusterPaths) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.socket_dir.mkdir(exist_ok=True)
    pwfile = paths.root / ".initdb_pw"
    pwfile.write_text(_password() + "\n")
    if _is_root():
        shutil.chown(paths.root, "postgres", "postgres")
        shutil.chown(paths.socket_dir, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    pwfile.chmod(0o600)
    try:
        _run(
            [
                binaries["initdb"], "-D", str(paths.data), "-U", CLUSTER_USER, f"--pwfile={pwfile}",
                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
            ],
            "initdb",
        )
    finally:
        pwfile.unlink(missing_ok=True)
    conf = "\n".join(f"{k} = {v}" for k, v in SERVER_SETTINGS.items())
    conf_file = paths.data / "fleetdesk.conf"
    conf_file.write_text(conf + "\n")
    with open(paths.data / "postgresql.conf", "a") as main_conf:
        main_conf.write("\ninclude = 'fleetdesk.conf'\n")
    if _is_root():
        shutil.chown(conf_file, "postgres", "postgres")


def is_running(binaries: Binaries, paths: ClusterPaths) -> bool:
    if not (paths.data / "PG_VERSION").exists():
        return False
    result = subprocess.run(_as_server_user([binaries["pg_ctl"], "status", "-D", str(paths.data)]), capture_output=True)
    return result.returncode == 0


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _ensure_database(port: int, name: str) -> None:
    with psycopg.connect(
        host="127.0.0.1", port=port, user=CLUSTER_USER, password=_password(), dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def start() -> str:
    """Start the embedded cluster (initialising it the first time); idempotent. Returns what happened."""
    binaries = ensure_server_software()
    paths = cluster_paths()
    port = embedded_port()
    if is_running(binaries, paths):
        return f"already running on 127.0.0.1:{port}"
    if _port_taken(port):
        raise DatabaseSetupError(
            f"port {port} is taken by another process; stop it or set FLEETDESK_DB_PORT to a free port"
        )
    fresh = not (paths.data / "PG_VERSION").exists()
    if fresh:
        _initialise(binaries, paths)
    # the server may have died leaving its pid file; pg_ctl copes, but only if the socket dir exists
    paths.socket_dir.mkdir(exist_ok=True)
    if _is_root():
        shutil.chown(paths.socket_dir, "postgres", "postgres")
    options = f"-p {port} -k {paths.socket_dir}"
    with contextlib.suppress(FileNotFoundError):
        if _is_root():
            paths.log.touch()
            shutil.chown(paths.log, "postgres", "postgres")
    _run(
        [binaries["pg_ctl"], "start", "-w", "-t", "60", "-D", str(paths.data), "-l", str(paths.log), "-o", options],
        f"starting PostgreSQL (see {paths.log})",
    )
    _ensure_database(port, DEMO_DATABASE)
    return f"{'initialised and ' if fresh else ''}started on 127.0.0.1:{port} (data in {paths.data})"


def stop() -> str:
    binaries = find_binaries()
    paths = cluster_paths()
    if binaries is None or not is_running(binaries, paths):
        return "not running"
    _run([binaries["pg_ctl"], "stop", "-w", "-m", "fast", "-D", str(paths.data)], "stopping PostgreSQL")
    return "stopped"


def ensure_database(name: str) -> None:
    """Create a database in the running embedded cluster if it does not exist."""
    _ensure_database(embedded_port(), name)


def drop_database(name: str) -> None:
    with psycopg.connect(
        host="127.0.0.1", port=embedded_port(), user=CLUSTER_USER, password=_password(), dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
