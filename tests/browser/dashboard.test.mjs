// The dashboard in a real browser: headless Chromium (Debian's, /usr/bin/chromium) driven by
// playwright-core, against a real `duplex run` on two SQLite files. The page loads and shows
// both endpoints connected; a manual-policy conflict appears with both values side by side;
// one click takes billing's value, and the value reaches both databases. Saves a screenshot
// (DUPLEX_SCREENSHOT, else the work folder). Run by run.sh (ctest: dashboard_browser_test).
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const bin = process.env.DUPLEX_BIN || 'duplex';
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'duplex-browser-'));
const screenshot = process.env.DUPLEX_SCREENSHOT || path.join(dir, 'dashboard.png');
const crm = path.join(dir, 'crm.db');
const billing = path.join(dir, 'billing.db');
const config = path.join(dir, 'duplex.toml');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sql = (db, q) => execFileSync('sqlite3', ['-cmd', '.timeout 5000', db, q], { encoding: 'utf8' });

async function until(what, fn, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await sleep(100);
  }
}

let run = null;
let browser = null;
let writer = null;
async function main() {
  sql(crm, `CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, email TEXT, tier TEXT,
              balance INTEGER, notes TEXT);
            INSERT INTO customers VALUES (1, 'Ada Lovelace', 'ada@example.org', 'gold', 100, ''),
              (2, 'Alan Turing', 'alan@example.org', 'silver', 50, ''),
              (3, 'Grace Hopper', 'grace@example.org', 'bronze', 10, '');`);
  sql(billing, `CREATE TABLE clients(id INTEGER PRIMARY KEY, full_name TEXT, email TEXT,
                  tier TEXT, balance INTEGER, notes TEXT);`);
  fs.writeFileSync(config, `[engine]
state = "state.db"
http = "127.0.0.1:0"

[endpoints.crm]
type = "sqlite"
path = "crm.db"

[endpoints.billing]
type = "sqlite"
path = "billing.db"

[collections.customer]
key = ["id"]
policy = "lww"
endpoints.crm     = { table = "customers" }
endpoints.billing = { table = "clients", fields = { name = "full_name" } }
fields.notes = { policy = "manual" }
`);
  execFileSync(bin, ['run', '--until-idle', '--config', config, '--log-level', 'warn']);
  assert.equal(sql(billing, 'SELECT count(*) FROM clients'), '3\n');
  // Both sides edit the same manual field while duplex is stopped: a conflict for a human.
  sql(crm, "UPDATE customers SET notes = 'call on Monday' WHERE id = 3");
  sql(billing, "UPDATE clients SET notes = 'VIP, do not call' WHERE id = 3");

  const log = path.join(dir, 'run.err');
  run = spawn(bin, ['run', '--config', config], { stdio: ['ignore', 'ignore', fs.openSync(log, 'w')] });
  let url = null;
  await until('the admin server', () => {
    const m = /admin server listening on (http:\/\/[^ ]+\/)/.exec(fs.readFileSync(log, 'utf8'));
    if (m) url = m[1];
    return url !== null || run.exitCode !== null;
  });
  assert.ok(url, 'duplex run exited: ' + fs.readFileSync(log, 'utf8'));

  // Some traffic both ways, for the throughput chart.
  let next = 100;
  writer = setInterval(() => {
    const id = next++;
    if (id % 2) sql(crm, `INSERT INTO customers VALUES (${id}, 'c${id}', NULL, 'new', 1, '')`);
    else sql(billing, `INSERT INTO clients VALUES (${id}, 'b${id}', NULL, 'new', 1, '')`);
  }, 150);

  browser = await chromium.launch({ executablePath: browserPath, headless: true, args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  for (const ep of ['crm', 'billing']) {
    const row = page.locator(`[data-endpoint="${ep}"]`);
    await row.waitFor({ timeout: 15000 });
    await until(`${ep} shown connected`, async () => (await row.textContent()).includes('connected'));
  }
  const conflict = page.locator('[data-conflict-id]');
  await conflict.waitFor({ timeout: 15000 });
  assert.equal(await conflict.count(), 1);
  assert.match(await conflict.locator('[data-side="crm"]').textContent(), /call on Monday/);
  assert.match(await conflict.locator('[data-side="billing"]').textContent(), /VIP, do not call/);

  // A few history samples (one every 2 s) so the charts have lines, then the screenshot.
  await sleep(7000);
  clearInterval(writer);
  writer = null;
  await sleep(2500);
  await page.screenshot({ path: screenshot, fullPage: true });

  await conflict.locator('button[data-take="billing"]').click();
  await until('the resolution in both databases', () =>
    sql(crm, 'SELECT notes FROM customers WHERE id = 3') === 'VIP, do not call\n' &&
    sql(billing, 'SELECT notes FROM clients WHERE id = 3') === 'VIP, do not call\n');
  await conflict.waitFor({ state: 'detached', timeout: 15000 });
  assert.equal(await page.locator('#no-conflicts').isVisible(), true);
  assert.deepEqual(errors, [], 'errors in the page');

  await browser.close();
  browser = null;
  run.kill('SIGTERM');
  const code = await new Promise((r) => (run.exitCode !== null ? r(run.exitCode) : run.on('exit', r)));
  run = null;
  assert.equal(code, 0, 'duplex run exit code');
  console.log('dashboard test passed; screenshot: ' + screenshot);
}

try {
  await main();
  if (!process.env.DUPLEX_KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true });
} catch (e) {
  console.error('FAILED: ' + (e.stack || e));
  console.error('files kept in ' + dir);
  process.exitCode = 1;
} finally {
  if (writer) clearInterval(writer);
  if (browser) await browser.close().catch(() => {});
  if (run && run.exitCode === null) run.kill('SIGKILL');
}
