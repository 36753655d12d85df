"""An agent's MCP client, from another ecosystem: the official Python `mcp` package drives
`countersign mcp` over stdio against a real countersign server (crates/countersign/tests/mcp.rs
starts both and passes what this script needs as arguments and environment).

It lists the tools (exactly these, no approve), proposes, reads the status, explains the tier,
asks what would lower it, reads the plan, is refused evidence with its proposer token, relays
evidence with a runner token, waits for the decision (bounded), reads both resources, sends
arguments that break a tool's schema, and finally calls the approval route over HTTP with the
agent's own token: 403. Any failed check raises; the last line printed is the JSON summary.
"""

import asyncio
import json
import os
import sys
import urllib.error
import urllib.request

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp import MCPError

BINARY, SERVER, BASE, BRANCH, ENVELOPE = sys.argv[1:6]
AGENT_TOKEN = os.environ["AGENT_TOKEN"]
RELAY_TOKEN = os.environ["RELAY_TOKEN"]

TOOLS = {
    "propose",
    "status",
    "explain",
    "what_if",
    "plan",
    "push_evidence",
    "findings_list",
    "finding_show",
    "wait_for_decision",
}


def log(message):
    print(f"client.py: {message}", file=sys.stderr, flush=True)


def params(extra_env):
    # Only what the session needs: nothing leaks in from the test runner's environment.
    env = {"PATH": os.environ.get("PATH", ""), "COUNTERSIGN_TOKEN": AGENT_TOKEN}
    env.update(extra_env)
    return StdioServerParameters(command=BINARY, args=["mcp", "--server", SERVER], env=env)


def text(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def call(session, tool, arguments):
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} {arguments}: {text(result)}"
    assert isinstance(result.structured_content, dict), f"{tool}: {result}"
    return result


async def refused(session, tool, arguments):
    result = await session.call_tool(tool, arguments)
    assert result.is_error, f"{tool} {arguments} was not refused: {text(result)}"
    return result


async def as_agent(session):
    listed = await session.list_tools()
    names = {tool.name for tool in listed.tools}
    assert names == TOOLS, names
    assert not any("approv" in name or "reject" in name for name in names), names
    schemas = {tool.name: tool.input_schema for tool in listed.tools}
    assert set(schemas["propose"]["required"]) == {"repository", "base", "title"}, schemas["propose"]
    assert schemas["propose"].get("additionalProperties") is False, schemas["propose"]
    log("tools listed")

    # Arguments that break the schema are tool errors the agent can read, not protocol errors.
    bad = await refused(session, "propose", {"repository": "shop", "base": BASE, "branch": BRANCH})
    assert "title" in text(bad), text(bad)
    bad = await refused(session, "status", {})
    assert "proposal" in text(bad), text(bad)
    bad = await refused(session, "status", {"proposal": "p-x", "approve": True})
    assert "approve" in text(bad), text(bad)
    bad = await refused(
        session, "propose", {"repository": "shop", "base": BASE, "title": "no head"}
    )
    assert "exactly one of `head`" in text(bad), text(bad)
    log("schema violations refused as tool errors")

    proposed = await call(
        session,
        "propose",
        {"repository": "shop", "base": BASE, "branch": BRANCH, "title": "payments: retry"},
    )
    proposal = proposed.structured_content
    pid = proposal["id"]
    assert proposal["author"] == "agent:fixbot", proposal
    assert proposal["tier"] == "single_approver", proposal
    assert proposal["state"] == "awaiting_evidence", proposal
    assert f"proposal {pid}" in text(proposed), text(proposed)
    log(f"proposed {pid}")

    # A server refusal is a tool error carrying the problem's status and detail.
    unknown = await refused(
        session, "propose", {"repository": "nope", "base": BASE, "branch": BRANCH, "title": "t"}
    )
    assert unknown.structured_content["status"] == 422, unknown.structured_content
    assert "nope" in unknown.structured_content["detail"], unknown.structured_content

    status = await call(session, "status", {"proposal": pid})
    assert status.structured_content["state"] == "awaiting_evidence", status.structured_content
    missing = await refused(session, "status", {"proposal": "p-none"})
    assert missing.structured_content["status"] == 404, missing.structured_content

    explained = (await call(session, "explain", {"proposal": pid})).structured_content
    assert explained["tier"] == "single_approver", explained
    assert [t["tier"] for t in explained["ruled_out"]] == ["auto_merge", "notify_and_proceed"], (
        explained["ruled_out"]
    )
    for ruled_out in explained["ruled_out"]:
        assert ruled_out["reasons"], ruled_out
        for reason in ruled_out["reasons"]:
            assert reason["effect"] != "permit", reason
            assert "facts" in reason and "message" in reason, reason
    assert any(
        reason.get("id") and reason["facts"]
        for ruled_out in explained["ruled_out"]
        for reason in ruled_out["reasons"]
    ), explained["ruled_out"]
    assert explained["chosen"]["reasons"], explained["chosen"]
    log("explained")

    what_if = (await call(session, "what_if", {"proposal": pid})).structured_content
    assert what_if["proposal"] == pid, what_if
    assert what_if["what_if"]["tier"] == "single_approver", what_if
    assert what_if["what_if"]["targets"], what_if
    log("what-if asked")

    plan = (await call(session, "plan", {"proposal": pid})).structured_content
    assert plan["missing"] == ["payments-unit"], plan

    # The agent's own token may not bring evidence: refused, with the way to relay it.
    own = await refused(session, "push_evidence", {"proposal": pid, "path": ENVELOPE})
    assert own.structured_content["status"] == 403, own.structured_content
    assert "COUNTERSIGN_EVIDENCE_TOKEN" in text(own), text(own)

    waited = await call(session, "wait_for_decision", {"proposal": pid, "timeout_seconds": 1})
    assert waited.structured_content["timed_out"] is True, waited.structured_content
    assert waited.structured_content["proposal"]["state"] == "awaiting_evidence"
    too_long = await refused(
        session, "wait_for_decision", {"proposal": pid, "timeout_seconds": 301}
    )
    assert "timeout_seconds" in text(too_long), text(too_long)

    # Findings: the routes may not be on this server yet; either way the answer is a tool
    # result, and an unknown finding is the server's 404.
    finding = await refused(session, "finding_show", {"finding": "F-1"})
    assert finding.structured_content["status"] == 404, finding.structured_content
    findings = await session.call_tool("findings_list", {"state": "open"})
    if findings.is_error:
        assert findings.structured_content["status"] == 404, findings.structured_content
    else:
        assert findings.structured_content["findings"] == [], findings.structured_content

    resources = await session.list_resources()
    uris = sorted(str(r.uri) for r in resources.resources)
    assert uris == ["countersign://repos/shop/graph", "countersign://repos/shop/policy"], uris
    graph = json.loads((await session.read_resource("countersign://repos/shop/graph")).contents[0].text)
    assert graph["branch"] == "main", graph
    payments = next(n for n in graph["graph"]["nodes"] if n["ref"] == "component:default/payments")
    assert payments["criticality"] == "high", payments
    assert payments["owner"] == "group:default/team-shop", payments
    policy = json.loads((await session.read_resource("countersign://repos/shop/policy")).contents[0].text)
    assert policy["default_pack"] is True and policy["files"], policy
    assert policy["version"] == proposal["decision"]["policy_version"], policy
    try:
        await session.read_resource("countersign://repos/shop/graph?branch=payments")
        raise AssertionError("a branch that is not protected was read")
    except MCPError as error:
        assert "not a protected branch" in str(error), error
    try:
        await session.read_resource("file:///etc/passwd")
        raise AssertionError("a foreign URI was read")
    except MCPError:
        pass
    log("resources read")
    return proposal


async def as_relay(session, pid):
    # Wait and relay at once: the wait sees the evidence land and the state change.
    async def relay():
        await asyncio.sleep(0.5)
        return await call(session, "push_evidence", {"proposal": pid, "path": ENVELOPE})

    waited, pushed = await asyncio.gather(
        call(session, "wait_for_decision", {"proposal": pid, "timeout_seconds": 60}),
        relay(),
    )
    accepted = pushed.structured_content
    assert accepted["accepted"] is True and accepted["suite"] == "payments-unit", accepted
    assert accepted["proposal"]["state"] == "awaiting_approval", accepted
    assert waited.structured_content["settled"] is True, waited.structured_content
    assert waited.structured_content["from"] == "awaiting_evidence", waited.structured_content
    assert waited.structured_content["proposal"]["state"] == "awaiting_approval"

    # The same envelope as JSON: accepted for this head already.
    with open(ENVELOPE, encoding="utf-8") as f:
        envelope = json.load(f)
    again = await call(session, "push_evidence", {"proposal": pid, "envelope": envelope})
    assert again.structured_content["accepted"] is True, again.structured_content
    both = await refused(
        session, "push_evidence", {"proposal": pid, "path": ENVELOPE, "envelope": envelope}
    )
    assert "exactly one of `path`" in text(both), text(both)
    log("evidence relayed")
    return accepted["proposal"]


async def run_session(extra_env, body, *args):
    async with stdio_client(params(extra_env)) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await body(session, *args)


def approve_over_http(pid, head):
    request = urllib.request.Request(
        f"{SERVER}/v1/proposals/{pid}/approvals",
        data=json.dumps({"head": head, "verdict": "approve", "comment": "lgtm"}).encode(),
        headers={"Authorization": f"Bearer {AGENT_TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raise AssertionError(f"the agent approved: HTTP {response.status}")
    except urllib.error.HTTPError as error:
        body = json.loads(error.read())
        assert error.code == 403, (error.code, body)
        assert error.headers["Content-Type"].startswith("application/problem+json"), error.headers
        return body


async def main():
    proposal = await run_session({}, as_agent)
    pid = proposal["id"]
    after = await run_session({"COUNTERSIGN_EVIDENCE_TOKEN": RELAY_TOKEN}, as_relay, pid)
    refusal = approve_over_http(pid, after["head"])
    log(f"approval refused: {refusal['detail']}")
    print(json.dumps({"proposal": pid, "state": after["state"], "refusal": refusal}))


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), timeout=240))
