"""Two workers on one study in a real PostgreSQL server (Debian's postgresql package)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from _search_helpers import run_cli, search_cmd

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 is not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg2", reason="psycopg2-binary is not installed")
    as_root = shutil.which("runuser") is not None and __import__("os").getuid() == 0
    runner = ["runuser", "-u", "postgres", "--"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if as_root:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    subprocess.run(
        [*runner, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1"
    # the server inherits pg_ctl's stdout: a pipe there would never close, so log to a file
    subprocess.run(
        [
            *runner,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(base / "server.log"),
            "-w",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*runner, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_on_a_real_postgresql_server(
    postgres_url: str, in_tmp: Path, tiny_tables: Path
) -> None:
    from nas.search import open_run_study

    cmd = search_cmd(
        tiny_tables,
        "proxy=params",
        "sampler=nsga2",
        "sampler.population_size=8",
        "search.trials=40",
        "--workers",
        "2",
        "--storage",
        postgres_url,
        "--study",
        "pg-study",
    )
    r = run_cli(cmd, in_tmp)
    assert r.returncode == 0, r.stderr
    run_dir = next((in_tmp / "experiments" / "runs").iterdir())
    trials = open_run_study(run_dir).get_trials(deepcopy=False)
    assert Counter(t.state.name for t in trials) == {"COMPLETE": 40}
    assert sorted(t.number for t in trials) == list(range(40))
    proxies = {t.user_attrs["proxy_worker"] for t in trials if "proxy_worker" in t.user_attrs}
    assert len(proxies) == 2  # the proxies ran in both pool processes
    # the same command again resumes the same study: nothing more to do, nothing duplicated
    r2 = run_cli(cmd, in_tmp)
    assert r2.returncode == 0 and "resuming" in r2.stdout
    assert len(open_run_study(run_dir).get_trials(deepcopy=False)) == 40
