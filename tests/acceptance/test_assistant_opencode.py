"""OpenCode as a memq client: what memq's plugin sends, through the real ``memq hook
--assistant opencode`` and the real daemon; the plugin file itself run by node; and
``memq install --assistant opencode``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memq.hooks.install import memq_hook_command
from memq.hooks.installers.opencode import MARKER, plugin_text
from tests.acceptance.test_hook import hook, no_spawn
from tests.helpers.daemon import Daemon, free_port
from tests.helpers.processes import project_env, run_module
from tests.helpers.rows import all_rows

FIXTURES = Path(__file__).parents[1] / "fixtures" / "opencode"
SESSION = "ses_dbe0025e1ffe2i5PVNAdFpMNV0"
KEY = f"opencode:{SESSION}"
ASSISTANT = ("--assistant", "opencode")
TURN = [
    "session.created",
    "chat.message",
    "tool.execute.after.bash",
    "tool.execute.after.write",
    "session.idle",
]


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


class TestThroughTheHook:
    def test_a_turn_is_remembered_and_the_next_session_is_given_it(self, daemon: Daemon) -> None:
        for name in TURN:
            assert hook(daemon.home, daemon.port, sample(name), *ASSISTANT).returncode == 0
        assert daemon.wait_idle()["counts"]["processed"] == len(TURN)
        with daemon.client() as client:
            detail = client.get(f"/api/sessions/{KEY}").json()
            assert [p["text"] for p in detail["prompts"]] == ['"Say hello using the shell"']
            observations = client.get(f"/api/sessions/{KEY}/observations").json()
            assert {o["title"] for o in observations["items"]} == {
                "Ran `echo hello-from-tool`",
                "Wrote notes.txt",
            }
            summaries = client.get(f"/api/sessions/{KEY}/summaries").json()
            assert summaries["total"] == 1
        start = sample("session.created")
        start["properties"]["info"]["id"] = "ses_second"
        result = hook(daemon.home, daemon.port, start, *ASSISTANT)
        assert (result.returncode, result.stderr) == (0, b"")
        assert b"notes.txt" in result.stdout  # plain text, for the plugin's system prompt


class TestWithTheDaemonDown:
    def test_the_fallback_writes_the_same_rows_and_a_resend_is_a_duplicate(
        self, tmp_path: Path
    ) -> None:
        home, port = tmp_path / "home", free_port()
        no_spawn(home)
        for name in TURN:
            result = hook(home, port, sample(name), *ASSISTANT)
            assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
        rows = all_rows(home / "memq.db")
        kinds = ["event", "prompt", "observation", "observation", "summarize"]
        assert [r["kind"] for r in rows] == kinds
        daemon = Daemon(home, port=port)
        daemon.start()
        try:
            assert daemon.wait_idle()["counts"]["processed"] == len(TURN)
            with daemon.client() as client:
                for name, row in zip(TURN, rows, strict=True):
                    again = client.post("/api/events?assistant=opencode", json=sample(name))
                    assert again.status_code == 200, name
                    answer = again.json()
                    assert (answer["status"], answer["message_id"]) == ("duplicate", row["id"])
        finally:
            daemon.kill()


class TestThroughTheApi:
    def test_native_payloads_are_mapped_stored_and_processed_once(self, daemon: Daemon) -> None:
        with daemon.client() as client:
            for name in [*TURN, "message.part.updated.error"]:
                answer = client.post("/api/events?assistant=opencode", json=sample(name))
                assert answer.status_code in (200, 202), answer.text
            daemon.wait_idle()
            again = client.post("/api/events?assistant=opencode", json=sample("chat.message"))
            assert again.json()["status"] == "duplicate"
            observations = client.get(f"/api/sessions/{KEY}/observations").json()
            assert {o["tool_name"] for o in observations["items"]} == {"Bash", "Write", "Read"}


# -- the plugin file, run by node with OpenCode's objects -------------------------------------

DRIVER = """
import { readFileSync } from "node:fs"
const [plugin, steps] = process.argv.slice(2)
const { MemqPlugin } = await import(plugin)
const hooks = await MemqPlugin({ directory: "/home/dev/shop", worktree: "/home/dev/shop",
  project: {}, client: {}, $: () => { throw new Error("the plugin must not use $") } })
const results = []
for (const step of JSON.parse(readFileSync(steps, "utf8"))) {
  const started = Date.now()
  const args = step.args
  const returned = await hooks[step.hook](...args)
  results.push({ hook: step.hook, ms: Date.now() - started, returned: returned ?? null,
    last: args[args.length - 1] })
}
await hooks.dispose()
console.log(JSON.stringify(results))
"""


def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.skip("node is not on PATH: the plugin file cannot be run here")
    return found


def run_plugin(
    tmp_path: Path, command: str, steps: list[dict[str, Any]], env: dict[str, str]
) -> list[dict[str, Any]]:
    """Load the plugin (an ES module) with node, run ``steps`` (hook name and arguments)
    through it, and return what each hook gave back and left in its last argument."""
    node_binary = node()
    plugin = tmp_path / "memq.mjs"
    plugin.write_text(plugin_text(command))
    driver = tmp_path / "driver.mjs"
    driver.write_text(DRIVER)
    steps_file = tmp_path / "steps.json"
    steps_file.write_text(json.dumps(steps))
    done = subprocess.run(
        [node_binary, str(driver), plugin.as_uri(), str(steps_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=project_env(env),
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def plugin_steps(session: str) -> list[dict[str, Any]]:
    """One turn as OpenCode calls the plugin's hooks (the objects of the captured run)."""
    created = sample("session.created")
    created["properties"]["info"]["id"] = session
    prompt = sample("chat.message")
    prompt["input"]["sessionID"] = session
    prompt["output"]["message"]["sessionID"] = session
    tool = sample("tool.execute.after.bash")
    tool["input"]["sessionID"] = session
    reply_part = {
        "id": "prt_reply",
        "messageID": "msg_reply",
        "sessionID": session,
        "type": "text",
        "text": "Done: the tool said hello.",
    }
    system_input = {"sessionID": session, "model": {"id": "fake"}}
    return [
        {
            "hook": "event",
            "args": [
                {
                    "event": {
                        "type": created["type"],
                        "id": created["id"],
                        "properties": created["properties"],
                    }
                }
            ],
        },
        {"hook": "chat.message", "args": [prompt["input"], prompt["output"]]},
        {"hook": "experimental.chat.system.transform", "args": [system_input, {"system": []}]},
        {"hook": "tool.execute.after", "args": [tool["input"], tool["output"]]},
        {
            "hook": "event",
            "args": [
                {"event": {"type": "message.part.updated", "properties": {"part": reply_part}}}
            ],
        },
        {
            "hook": "event",
            "args": [
                {
                    "event": {
                        "type": "session.idle",
                        "id": f"evt_{session}",
                        "properties": {"sessionID": session},
                    }
                }
            ],
        },
    ]


class TestThePluginFile:
    def test_it_delivers_every_event_in_order_through_the_hook(
        self, daemon: Daemon, tmp_path: Path
    ) -> None:
        command = memq_hook_command(home=str(daemon.home), assistant="opencode")
        env = {"MEMQ_HOME": str(daemon.home), "MEMQ_PORT": str(daemon.port)}
        results = run_plugin(tmp_path, command, plugin_steps(SESSION), env)
        assert all(r["returned"] is None for r in results)
        # Nothing waits on memq but the system prompt of the session's first request.
        assert all(
            r["ms"] < 1000 for r in results if r["hook"] != "experimental.chat.system.transform"
        )
        rows = all_rows(daemon.home / "memq.db")
        assert [r["kind"] for r in rows] == ["event", "prompt", "observation", "summarize"]
        assert {r["session_id"] for r in rows} == {KEY}
        daemon.wait_idle()
        with daemon.client() as client:
            summary = client.get(f"/api/sessions/{KEY}/summaries").json()["items"][0]
            assert "hello" in json.dumps(summary)  # the turn's reply reached the summary

        second = run_plugin(tmp_path, command, plugin_steps("ses_second"), env)
        (system,) = [r for r in second if r["hook"] == "experimental.chat.system.transform"]
        assert len(system["last"]["system"]) == 1
        assert "echo hello-from-tool" in system["last"]["system"][0]

    def test_with_the_daemon_down_the_hook_still_keeps_every_event(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        no_spawn(home)
        command = memq_hook_command(home=str(home), assistant="opencode")
        env = {"MEMQ_HOME": str(home), "MEMQ_PORT": str(free_port())}
        results = run_plugin(tmp_path, command, plugin_steps(SESSION), env)
        (system,) = [r for r in results if r["hook"] == "experimental.chat.system.transform"]
        assert system["last"]["system"] == []
        rows = all_rows(home / "memq.db")
        assert [r["kind"] for r in rows] == ["event", "prompt", "observation", "summarize"]

    def test_a_hook_that_cannot_run_never_breaks_opencode(self, tmp_path: Path) -> None:
        results = run_plugin(
            tmp_path,
            f"{tmp_path}/missing/memq hook --assistant opencode",
            plugin_steps(SESSION),
            {},
        )
        assert [r["hook"] for r in results][-1] == "event"
        assert all(r["ms"] < 3500 for r in results)


# -- memq install / uninstall --assistant opencode --------------------------------------------

THEIR_CONFIG: dict[str, Any] = {
    "$schema": "https://opencode.ai/config.json",
    "model": "anthropic/claude-sonnet-4-5",
    "mcp": {"linear": {"type": "remote", "url": "https://mcp.linear.app/sse"}},
}


def memq(*args: str, home: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_module("memq", *args, env={"HOME": str(home), **env}, cwd=cwd)


@pytest.mark.parametrize("scope", ["user", "project"])
def test_install_and_uninstall_round_trip(tmp_path: Path, scope: str) -> None:
    home, project, xdg = tmp_path / "home", tmp_path / "project", tmp_path / "xdg"
    project.mkdir()
    config_dir = xdg / "opencode" if scope == "user" else project / ".opencode"
    plugins = config_dir / "plugins"
    plugins.mkdir(parents=True)
    theirs = plugins / "notify.js"
    theirs.write_text("export const Notify = async () => ({})\n")
    config_file = config_dir / "opencode.json" if scope == "user" else project / "opencode.json"
    config_file.write_text(json.dumps(THEIR_CONFIG, indent=2) + "\n")
    args = ("--assistant", "opencode", *(("--project",) if scope == "project" else ()))
    env = {"XDG_CONFIG_HOME": str(xdg)}

    installed = memq("install", *args, home=home, cwd=project, **env)
    assert installed.returncode == 0, installed.stderr
    ours = plugins / "memq.js"
    text = ours.read_text()
    assert text.startswith(MARKER)
    assert 'hook --assistant opencode"' in text
    assert theirs.read_text() == "export const Notify = async () => ({})\n"
    config = json.loads(config_file.read_text())
    assert config["model"] == THEIR_CONFIG["model"]
    assert list(config["mcp"]) == ["linear", "memq"]
    assert config["mcp"]["memq"]["type"] == "local"
    assert config["mcp"]["memq"]["command"][-1] == "mcp"
    backups = sorted(config_file.parent.glob("opencode.json.memq-backup-*"))
    assert len(backups) == 1

    again = memq("install", *args, home=home, cwd=project, **env)
    assert again.returncode == 0, again.stderr
    assert "already in" in again.stdout
    assert ours.read_text() == text
    assert sorted(config_file.parent.glob("opencode.json.memq-backup-*")) == backups

    removed = memq("uninstall", *args, home=home, cwd=project, **env)
    assert removed.returncode == 0, removed.stderr
    assert not ours.exists()
    assert theirs.exists()
    assert json.loads(config_file.read_text()) == THEIR_CONFIG
    twice = memq("uninstall", *args, home=home, cwd=project, **env)
    assert twice.returncode == 0
    assert "no " in twice.stdout


def test_a_plugin_named_memq_js_that_is_not_memqs_is_left_alone(tmp_path: Path) -> None:
    plugins = tmp_path / "xdg" / "opencode" / "plugins"
    plugins.mkdir(parents=True)
    foreign = plugins / "memq.js"
    foreign.write_text("// my own memq helper\n")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    refused = memq("install", "--assistant", "opencode", home=tmp_path, cwd=tmp_path, **env)
    assert refused.returncode != 0
    assert foreign.read_text() == "// my own memq helper\n"
    kept = memq("uninstall", "--assistant", "opencode", home=tmp_path, cwd=tmp_path, **env)
    assert kept.returncode == 0
    assert foreign.read_text() == "// my own memq helper\n"


def test_the_installed_plugin_is_valid_javascript(tmp_path: Path) -> None:
    node_binary = node()
    plugin = tmp_path / "memq.mjs"
    plugin.write_text(plugin_text(memq_hook_command(sys.executable, assistant="opencode")))
    check = subprocess.run(
        [node_binary, "--check", str(plugin)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr
    assert os.access(plugin, os.R_OK)
