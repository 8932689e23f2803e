"""What the CLI prints and where it connects: record data is never Rich markup (review
finding 12), and credentials never go over plain HTTP to another machine unasked
(finding 14). Against real servers on both databases, and a hostile one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hygieia.client.sdk import InsecureTransport, check_transport
from tests.support.cli import Cli
from tests.support.hostile import hostile_server
from tests.support.server import running_server

PW = "markup test passphrase 808"
# A title that closes a tag nobody opened (crashed `hygieia ls`), one that would be bold,
# one that would be a terminal hyperlink, and emoji and style codes.
TITLES = ["[/]", "[bold]x", "[link=http://evil.example]click me[/link]", ":skull: [red on white]"]
# Rich renders a terminal table when it believes it writes to one.
TERMINAL = {"TTY_COMPATIBLE": "1", "COLUMNS": "250", "NO_COLOR": "1"}


def on_terminal(cli: Cli, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return cli.run(*args, password=PW, check=check, **TERMINAL)


def test_ls_prints_titles_verbatim_on_a_terminal(cli: Cli, tmp_path: Path) -> None:
    """Fails on today's code: ``hygieia ls`` died with a MarkupError on the ``[/]`` title,
    and rendered the others as styles and a link."""
    cli.run("signup", "markup@example.org", password=PW)
    for i, title in enumerate(TITLES):
        path = tmp_path / f"rec{i}.txt"
        path.write_text(f"record {i}\n")
        cli.run(
            "put", str(path), "--title", title, "--provider", title, "--tag", "[b]", password=PW
        )
    table = on_terminal(cli, "ls")
    assert table.returncode == 0, table.stderr
    for title in TITLES:
        assert title in table.stdout, table.stdout
    assert "\x1b]8;" not in table.stdout  # no OSC 8 hyperlink
    assert "💀" not in table.stdout  # no emoji code replaced
    assert "[b]" in table.stdout
    piped = cli.run("ls", password=PW).stdout  # the tab-separated form, unchanged
    for title in TITLES:
        assert f"\t{title}\t" in piped

    rid = piped.split("\t", 1)[0]
    out = tmp_path / "[b]got [bold]it"
    got = on_terminal(cli, "get", rid, "-o", str(out))
    assert f"{out} (" in got.stdout


def test_server_error_details_are_printed_as_text(tmp_path: Path) -> None:
    """Fails on today's code: an error detail with ``[/]`` crashed the error printer."""
    detail = "[/] [bold]boom[/bold] [link=http://evil.example]click[/link]"
    with hostile_server() as hostile:
        hostile.answers["/api/v1/auth/prelogin"] = (500, {"code": "[red]x", "detail": detail})
        cli = Cli(server=hostile.url, home=tmp_path / "home", data_dir=tmp_path)
        proc = on_terminal(cli, "login", "who@example.org", check=False)
    assert proc.returncode == 1
    assert f"error: {detail} ([red]x)" in proc.stderr
    assert "Traceback" not in proc.stderr and "\x1b]8;" not in proc.stderr


@pytest.mark.parametrize(
    "url",
    [
        "https://vault.example.org",
        "https://203.0.113.7:8443/",
        "http://127.0.0.1:8000",
        "http://127.1.2.3:8000",
        "http://localhost:8000",
        "http://LOCALHOST",
        "http://[::1]:8000",
    ],
)
def test_https_and_loopback_are_allowed(url: str) -> None:
    check_transport(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://vault.example.org",
        "http://203.0.113.7:8000",
        "http://10.0.0.2:8000",
        "http://0.0.0.0:8000",
        "http://[2001:db8::1]:8000",
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example",
        "ftp://vault.example.org",
        "vault.example.org",
        "https://",
    ],
)
def test_plain_http_to_another_machine_is_refused(url: str) -> None:
    with pytest.raises(InsecureTransport):
        check_transport(url)
    if url.startswith("http://"):
        check_transport(url, allow_insecure=True)


def test_cli_refuses_plain_http_unless_insecure(db_url: str, tmp_path: Path) -> None:
    """Fails on today's code: the CLI sent credentials to any http:// server without a
    word. ``0.0.0.0`` reaches the local test server but is not a loopback address, so it
    stands in for a remote host here without any traffic leaving the machine (the
    server is told to answer to that name)."""
    data_dir = tmp_path / "server"
    with running_server(data_dir, DATABASE_URL=db_url, ALLOWED_HOSTS="127.0.0.1,0.0.0.0") as url:
        cli = Cli(server=url, home=tmp_path / "home", data_dir=data_dir)
        _insecure_flows(cli)


def _insecure_flows(cli: Cli) -> None:
    remote = cli.server.replace("127.0.0.1", "0.0.0.0")
    refused = cli.run("signup", "plain@example.org", "--server", remote, password=PW, check=False)
    assert refused.returncode == 1
    assert "refusing plain http://" in refused.stderr and "--insecure" in refused.stderr
    assert not (cli.home / "session.json").exists()

    cli.run("--insecure", "signup", "plain@example.org", "--server", remote, password=PW)
    # Every command checks the URL it is about to use, not only login.
    again = cli.run("whoami", check=False, HYGIEIA_SERVER=remote)
    assert again.returncode == 1 and "refusing plain http://" in again.stderr
    assert "plain@example.org" in cli.run("--insecure", "whoami", HYGIEIA_SERVER=remote).stdout
    far = cli.run("login", "plain@example.org", "--server", "http://vault.example.org",
                  password=PW, check=False)  # fmt: skip
    assert far.returncode == 1 and "refusing plain http://" in far.stderr
