// The web page in a real browser: headless Chromium (Debian's /usr/bin/chromium)
// driven by playwright-core, against a real `relflow serve` that runs real
// ansible-playbook. Run by scripts/test.sh after `cargo build`:
//
//   cd crates/relflow/tests/browser && npm ci && node test.mjs
//
// Env: RELFLOW_BIN (default target/debug/relflow), RELFLOW_ANSIBLE_PLAYBOOK
// (default .venv/bin/ansible-playbook), CHROMIUM (default /usr/bin/chromium).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../../../..");
const bin = process.env.RELFLOW_BIN || path.join(repo, "target/debug/relflow");
const ansible = process.env.RELFLOW_ANSIBLE_PLAYBOOK || path.join(repo, ".venv/bin/ansible-playbook");
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
const TOKEN = "browser-test-token-42";
const shots = process.env.RELFLOW_SCREENSHOTS; // a directory: save a screenshot of each view there
const WAIT = 120_000; // generous: a cold ansible start on a busy CI machine

for (const [what, p] of [["relflow binary (cargo build)", bin], ["ansible-playbook (scripts/setup.sh)", ansible], ["chromium (apt-get install chromium)", browserPath]]) {
  if (!fs.existsSync(p)) { console.error(`missing ${what}: ${p}`); process.exit(2); }
}

// ---- a throwaway relflow setup ----------------------------------------------

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "relflow-browser-"));
const marker = (name) => path.join(dir, name);
const play = (tasks) => `- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
${tasks}`;
fs.mkdirSync(path.join(dir, "playbooks"));
fs.writeFileSync(path.join(dir, "playbooks/hello.yml"), play(`    - debug:\n        msg: "hello from relflow: {{ msg.text }}"\n`));
fs.writeFileSync(path.join(dir, "playbooks/flaky.yml"), play(`    - command: test -f ${marker("fixed")}\n`));
fs.writeFileSync(path.join(dir, "playbooks/slow.yml"), play(
  `    - debug:\n        msg: "slow run started"\n    - wait_for:\n        path: ${marker("go-on")}\n        timeout: 600\n    - debug:\n        msg: "slow run done"\n`));
fs.writeFileSync(path.join(dir, "relflow.toml"), `playbooks_dir = "playbooks"
data_dir = "data"

[ansible]
playbook_cmd = ${JSON.stringify(ansible)}
inventory = "localhost,"
kill_grace = "1s"

[worker]
concurrency = 2
drain_timeout = "5s"

[[rule]]
name = "hello"
topic = "relflow.test.hello"
playbook = "hello.yml"

[[rule]]
name = "flaky"
topic = "relflow.test.flaky"
playbook = "flaky.yml"

[[rule]]
name = "slow"
topic = "relflow.test.slow"
playbook = "slow.yml"

[[rule]]
name = "gate"
topic = "relflow.test.gate"
playbook = "hello.yml"
approval = { approvers = ["[http] token"], expires = "1h" }
`);

const serveLog = fs.openSync(path.join(dir, "serve.log"), "w");
const env = { ...process.env, RELFLOW_HTTP_TOKEN: TOKEN };
delete env.RELFLOW_CONFIG;
delete env.RELFLOW_DATA_DIR;
const serve = spawn(bin, ["--config", path.join(dir, "relflow.toml"), "serve", "--listen", "127.0.0.1:0"], {
  env,
  stdio: ["ignore", "pipe", serveLog],
});
const base = await new Promise((resolve, reject) => {
  serve.on("exit", (code) => reject(new Error(`relflow serve exited (${code}): ${fs.readFileSync(path.join(dir, "serve.log"), "utf8")}`)));
  readline.createInterface({ input: serve.stdout }).once("line", (line) => {
    const m = /listening on (http:\/\/\S+)/.exec(line);
    m ? resolve(m[1]) : reject(new Error(`unexpected first line: ${line}`));
  });
});

let passed = 0;
function pass(what) {
  passed += 1;
  console.log(`ok - ${what}`);
}

async function api(p, options = {}) {
  const r = await fetch(base + p, { ...options, headers: { Authorization: `Bearer ${TOKEN}`, ...(options.headers || {}) } });
  const body = await r.json();
  if (!r.ok) throw new Error(`${p}: ${r.status} ${JSON.stringify(body)}`);
  return body;
}
const publish = (topic, body) => api(`/api/publish?topic=${topic}`, { method: "POST", body: JSON.stringify(body) });
async function until(what, f) {
  const start = Date.now();
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() - start > WAIT) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

let browser;
let failed = false;
try {
  // A message that tries to inject markup into the page.
  const hostile = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">`;
  await publish("relflow.test.hello", { text: hostile });
  await publish("relflow.test.flaky", { n: 1 });
  await until("the hello run", async () => (await api("/api/runs?rule=hello&status=succeeded")).total === 1);
  await until("the dead letter", async () => (await api("/api/dead-letters")).dead_letters.length === 1);

  browser = await chromium.launch({
    executablePath: browserPath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(WAIT);
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  // CSP violations and failed loads show up as console errors.
  page.on("console", (m) => { if (m.type() === "error" && !/favicon/.test(m.text() + m.location().url)) pageErrors.push(m.text()); });

  // 1. The runs page after a real run: a green "succeeded" row, and the charts.
  await page.goto(base + "/");
  const helloRow = page.locator('#runs tbody tr[data-rule="hello"][data-status="succeeded"]');
  await helloRow.waitFor();
  const green = await helloRow.locator(".status").evaluate((e) => getComputedStyle(e).backgroundColor);
  assert.equal(green, "rgb(26, 127, 55)", "succeeded is shown green");
  await page.locator("#chart-runs rect").first().waitFor({ state: "attached" });
  await page.locator("#chart-queue polyline").first().waitFor({ state: "attached" }); // a flat line at 0 has no area
  if (shots) await page.screenshot({ path: path.join(shots, "runs.png"), fullPage: true });
  pass("runs page lists the run, with charts");

  // Filters narrow the table.
  await page.selectOption('#filters select[name="rule"]', "flaky");
  await page.click('#filters button[type="submit"]');
  await page.locator('#runs tbody tr[data-rule="flaky"]').first().waitFor();
  // The flaky row was on the unfiltered page too: give the filtered table
  // time to replace it before counting what it hides.
  await page.waitForFunction(() => !document.querySelector('#runs tbody tr[data-rule="hello"]')).catch(() => {});
  assert.equal(await page.locator('#runs tbody tr[data-rule="hello"]').count(), 0, "the rule filter hides other rules");
  assert.match(page.url(), /rule=flaky/);
  pass("filters");

  // The Rules page shows each rule's runs by status as numbers.
  await page.goto(base + "/#/rules");
  const helloRule = page.locator("#rules tbody tr", { hasText: "relflow.test.hello" });
  await helloRule.waitFor();
  const byStatus = await helloRule.locator("td").last().textContent();
  assert.match(byStatus, /^succeeded 1\s*$/, "runs by status: " + byStatus);
  assert.ok(!/object/.test(await page.locator("#rules").textContent()), "no [object ...] in the table");
  pass("the Rules page shows runs by status as numbers");

  // 2. Open the run: its log text and task results, and the hostile text stays text.
  await page.goto(base + "/#/runs");
  await helloRow.click();
  await page.locator("#log", { hasText: "hello from relflow" }).waitFor();
  const logText = await page.locator("#log").textContent();
  assert.ok(logText.includes("<script>window.__pwned = 1</script>"), "the markup is shown as text: " + logText);
  assert.equal(await page.locator("#tasks tbody tr").count(), 1);
  assert.equal(await page.locator("#message script, #log script, #log img, #message img").count(), 0, "no element was injected");
  assert.equal(await page.evaluate(() => window.__pwned), undefined, "no injected script ran");
  pass("run page shows the log; <script> in a message stays text");

  // Search by message content, then follow a row's message id.
  await publish("relflow.test.hello", { text: "compose done", compose_id: "Fedora-Rawhide-20261124.n.0" });
  await until("the second hello run", async () => (await api("/api/runs?rule=hello&status=succeeded")).total === 2);
  await page.goto(base + "/#/runs");
  await page.fill('#filters input[name="search"]', "fedora-rawhide-2026");
  await page.click('#filters button[type="submit"]');
  await page.waitForURL(/search=fedora-rawhide-2026/);
  const compose = (await api("/api/runs?search=Fedora-Rawhide-20261124.n.0")).runs;
  assert.equal(compose.length, 1, "the API finds the one run");
  await page.waitForFunction(() => document.querySelectorAll("#runs tbody tr[data-run-id]").length === 1);
  assert.equal(await page.locator("#runs tbody tr[data-run-id]").getAttribute("data-run-id"), compose[0].id);
  await page.locator("#runs tbody tr[data-run-id] a", { hasText: compose[0].message_id.slice(0, 12) }).click();
  await page.waitForURL(/message_id=/);
  // The redrawn page has the message id in its filter, and that message's one run.
  await page.waitForFunction((id) => document.querySelector('#filters input[name="message_id"]')?.value === id, compose[0].message_id);
  const listed = await page.locator("#runs tbody tr[data-run-id]").evaluateAll((rows) => rows.map((r) => r.dataset.runId));
  assert.deepEqual(listed, [compose[0].id]);
  assert.match(await page.locator("#runs tbody tr[data-run-id] td.subject").textContent(), /test\.hello/);
  pass("search box and message-id filter");

  // 3. A running run's log streams live.
  await publish("relflow.test.slow", {});
  const slow = await until("the slow run to start", async () => (await api("/api/runs?rule=slow")).runs[0]);
  await page.goto(`${base}/#/runs/${slow.id}`);
  await page.locator("#log", { hasText: "slow run started" }).waitFor();
  assert.equal(await page.locator("#run-status .status").textContent(), "running");
  // The Workers tab: serve's own worker, alive, running the slow run.
  await page.click("#nav-workers");
  const alive = page.locator('#workers tbody tr[data-state="alive"]');
  await alive.locator(".worker-runs a", { hasText: slow.id.slice(0, 8) }).waitFor();
  assert.equal(await alive.count(), 1);
  assert.match(await page.locator("#fleet-summary").textContent(), /^1 alive/);
  if (shots) await page.screenshot({ path: path.join(shots, "workers.png"), fullPage: true });
  pass("the Workers tab shows the live worker and the run it is running");
  await page.goto(`${base}/#/runs/${slow.id}`);
  await page.locator("#log", { hasText: "slow run started" }).waitFor();
  fs.writeFileSync(marker("go-on"), "");
  await page.locator("#log", { hasText: "slow run done" }).waitFor();
  await page.locator("#run-status .s-succeeded").waitFor();
  if (shots) await page.screenshot({ path: path.join(shots, "run.png"), fullPage: true });
  pass("a running log streams live, then the page shows how it ended");

  // 4. Replay the dead letter with the token; the new run appears.
  await page.goto(base + "/#/dead-letters");
  await page.fill("#token", TOKEN);
  await page.dispatchEvent("#token", "change");
  const deadRow = page.locator("#dead-letters tbody tr[data-dead-id]");
  await deadRow.waitFor();
  assert.match(await deadRow.locator(".reason").textContent(), /flaky/);
  if (shots) await page.screenshot({ path: path.join(shots, "dead-letters.png"), fullPage: true });
  fs.writeFileSync(marker("fixed"), ""); // the "fix" the operator made before replaying
  await deadRow.locator("button.replay").click();
  await page.waitForURL(/#\/runs$/);
  await page.locator('#runs tbody tr[data-rule="flaky"][data-status="succeeded"]').waitFor();
  assert.equal(await page.locator('#runs tbody tr[data-rule="flaky"]').count(), 2, "the failed run and the replayed one");
  pass("replaying a dead letter makes a new run that appears on the runs page");

  // 5. The Audit tab names who replayed it, and from where.
  await page.click("#nav-audit");
  const replayed = page.locator("#audit tbody tr", { hasText: "replay" });
  await replayed.waitFor();
  assert.match(await replayed.textContent(), /\[http\] token.*admin.*replay.*127\.0\.0\.1.*ok/);
  pass("the Audit tab shows who replayed the dead letter");

  // 6. A gated run waits; Approve on its page runs the rule as a new run.
  await publish("relflow.test.gate", { text: "gated" });
  const gate = await until("the run to await approval", async () => (await api("/api/runs?rule=gate")).runs[0]);
  assert.equal(gate.status, "awaiting_approval");
  await page.goto(`${base}/#/runs/${gate.id}`);
  await page.locator("#run-status .s-awaiting_approval").waitFor();
  await page.locator("#deny").waitFor();
  await page.click("#approve");
  await page.locator("#run-status .s-approved").waitFor();
  await until("the approved run", async () => (await api("/api/runs?rule=gate&status=succeeded")).total === 1);
  assert.equal(await page.locator("#approve").count(), 0, "no buttons once decided");
  pass("Approve on a run awaiting approval runs its rule");

  // 7. Re-run a succeeded run from its page: a second run, linked to the
  // first, and both in the message's history.
  const first = (await api("/api/runs?rule=hello&status=succeeded")).runs.at(-1);
  await page.goto(`${base}/#/runs/${first.id}`);
  await page.locator("#run-status .s-succeeded").waitFor();
  await page.click("#rerun");
  await page.locator("#run-action-result", { hasText: "Re-run queued" }).waitFor();
  const rerun = await until("the re-run to succeed", async () => (await api("/api/runs?rule=hello&status=succeeded&message_id="
    + encodeURIComponent(first.message_id))).runs.find((r) => r.id !== first.id));
  assert.equal((await api(`/api/runs/${rerun.id}`)).rerun_of, first.id, "linked to the original");
  await page.goto(`${base}/#/runs/${rerun.id}`);
  await page.locator("#run-rerun-of a", { hasText: first.id.slice(0, 8) }).waitFor();
  const historyRuns = await page.locator("#history tbody tr td a").evaluateAll((as) => as.map((a) => a.textContent));
  for (const r of [first, rerun]) assert.ok(historyRuns.includes(r.id.slice(0, 8)), `run ${r.id} in the history: ${historyRuns}`);
  pass("Re-run on a succeeded run makes a linked second run, both in the message's history");

  // 8. A phone-sized screen: no view is wider than the screen, and the token
  // box is on it.
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
  phone.setDefaultTimeout(WAIT);
  phone.on("pageerror", (e) => pageErrors.push(String(e)));
  const views = { "#/runs": "#runs", [`#/runs/${rerun.id}`]: "#run-details", "#/dead-letters": "#dead-letters",
    "#/rules": "#rules", "#/workers": "#workers", "#/batches": "#batches", "#/audit": "#audit" };
  for (const [view, drawn] of Object.entries(views)) {
    // Each view's own table: a hash change keeps the last view until the new one is drawn.
    await phone.goto(`${base}/${view}`);
    await phone.locator(drawn).waitFor();
    const widths = await phone.evaluate(() => ({ page: document.documentElement.scrollWidth, screen: window.innerWidth,
      token: document.getElementById("token").getBoundingClientRect().right }));
    // What sticks out, for the failure message: boxes past the screen's edge,
    // and boxes whose content spills out of them.
    const wide = await phone.evaluate(() => [...document.querySelectorAll("body *")].filter((e) => {
      const r = e.getBoundingClientRect(), spill = getComputedStyle(e).overflowX === "visible" ? e.scrollWidth - e.clientWidth : 0;
      return r.right + Math.max(0, spill) > window.innerWidth + 1 && !e.closest("table, pre.log");
    }).slice(0, 5).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`));
    assert.ok(widths.page <= widths.screen, `${view} is ${widths.page}px wide on a ${widths.screen}px screen: ${wide}`);
    assert.ok(widths.token <= widths.screen, `${view}: the token box ends at ${widths.token}px`);
  }
  if (shots) await phone.screenshot({ path: path.join(shots, "phone.png"), fullPage: true });
  pass("every view fits a 390 px screen, token box included");

  assert.deepEqual(pageErrors, [], "no script errors or CSP violations on the page");
} catch (e) {
  failed = true;
  console.error("FAILED:", e);
  console.error("--- relflow serve log\n" + fs.readFileSync(path.join(dir, "serve.log"), "utf8"));
} finally {
  if (browser) await browser.close();
  serve.kill("SIGTERM");
  await new Promise((r) => (serve.exitCode !== null ? r() : serve.once("exit", r)));
  fs.rmSync(dir, { recursive: true, force: true });
}
// The plain closing line CI reads in any language.
console.log(`browser: ${passed} passed, ${failed ? 1 : 0} failed`);
process.exit(failed ? 1 : 0);
