// The console in a real browser: Debian's chromium driven by playwright-core.
//
//   node e2e/browser/console.test.mjs <base-url> <api-key> <screenshot.png>
//
// Run by e2e/console_test.go against a real server on a real Kafka; it can be
// run by hand against any server too. Exits 0 and prints "console test: ok"
// when every step passed; otherwise prints the failed step and exits 1 (a
// screenshot is taken either way). CHROMIUM overrides /usr/bin/chromium.
import { chromium } from 'playwright-core';
import { randomBytes } from 'node:crypto';

const [base, key, shot] = process.argv.slice(2);
if (!base || !key || !shot) {
  console.error('usage: node console.test.mjs <base-url> <api-key> <screenshot.png>');
  process.exit(2);
}

const STEP_TIMEOUT = 30_000;
let step = 'start';
function log(msg) { console.log(`console test: ${msg}`); }
function check(ok, what) {
  if (!ok) { throw new Error(what); }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox'],
});
const page = await browser.newPage({ viewport: { width: 1100, height: 1500 } });
page.setDefaultTimeout(STEP_TIMEOUT);

// Everything the page does wrong in the browser's eyes: script errors,
// console errors (CSP violations are reported there), failed requests.
const problems = [];
page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
page.on('console', (msg) => {
  if (msg.type() === 'error' && !expectedConsoleError(msg.text())) {
    problems.push(`console error: ${msg.text()}`);
  }
});
// The requests the page made, to check where the key went.
const requests = [];
page.on('request', (req) => requests.push({ url: req.url(), method: req.method(), headers: req.headers() }));

// The deliberate bad create answers 400; Chromium logs every failed fetch.
let expectedFailures = 0;
function expectedConsoleError(text) {
  if (expectedFailures > 0 && /status of 400/.test(text)) {
    expectedFailures--;
    return true;
  }
  return false;
}

const nonce = randomBytes(6).toString('hex');
const results = page.locator('#results li');

let failed = null;
try {
  step = 'open /console';
  const res = await page.goto(`${base}/console`);
  check(res && res.status() === 200, `GET /console answered ${res && res.status()}`);
  const csp = res.headers()['content-security-policy'] || '';
  check(/script-src 'self'/.test(csp) && !/unsafe-inline/.test(csp), `unexpected Content-Security-Policy: ${csp}`);
  await page.getByRole('heading', { name: 'rtstream console' }).waitFor();

  step = 'enter the API key with the keyboard';
  await page.getByRole('textbox', { name: 'API key' }).focus();
  await page.keyboard.type(key);
  await page.keyboard.press('Enter');
  await page.locator('#key-outcome', { hasText: 'Key set' }).waitFor();
  await page.locator('#streams-outcome', { hasText: 'listed' }).waitFor();
  check(await page.evaluate(() => sessionStorage.getItem('rtstream.console.apiKey')) === key, 'the key is not in sessionStorage');
  check(!page.url().includes(key), `the key is in the page URL: ${page.url()}`);

  step = 'a bad filter is answered 400, shown readably';
  await page.getByLabel('Name').fill(`bad ${nonce}`);
  await page.getByLabel('Filter expression (optional)').fill('data.temp >');
  expectedFailures++;
  await page.getByRole('button', { name: 'Create stream' }).click();
  const bad = page.locator('#streams-outcome.error');
  await bad.waitFor();
  const badText = await bad.innerText();
  check(/400 Bad Request/.test(badText), `the problem is not shown as 400 Bad Request: ${badText}`);
  log(`bad filter shown as: ${badText.replace(/\s+/g, ' ').slice(0, 200)}`);

  step = 'create a stream with a map';
  await page.getByLabel('Name').fill(`console ${nonce}`);
  await page.getByLabel('Filter expression (optional)').fill('data.n > 0');
  await page.getByLabel('Map expression (optional)').fill('{"id": data.id, "double": data.n * 2}');
  await page.getByRole('button', { name: 'Create stream' }).click();
  const created = page.locator('#streams-outcome', { hasText: 'Created stream' });
  await created.waitFor();
  const streamID = (await created.innerText()).match(/Created stream (\S+?)\./)[1];
  await page.locator('#feed-state', { hasText: 'live:' }).waitFor();
  log(`created stream ${streamID}, feed live`);

  step = 'the usage panel shows the tenant and its streams quota';
  await page.getByRole('button', { name: 'Show usage' }).click();
  await page.locator('#usage-outcome', { hasText: 'Usage of tenant' }).waitFor();
  const streamsRow = await page.locator('#usage-rows tr', { hasText: 'streams' }).first().innerText();
  check(/streams\s+[1-9]\d*\s+\d+/.test(streamsRow), `usage row for streams: ${streamsRow}`);
  log(`usage: ${streamsRow.replace(/\s+/g, ' ')}`);

  step = 'send one event from the textarea';
  await page.getByLabel(/^Events:/).fill(JSON.stringify({ id: nonce, n: 21 }));
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.locator('#send-outcome', { hasText: 'Accepted 1 event' }).waitFor();

  step = 'the result arrives live';
  await results.filter({ hasText: nonce }).first().waitFor();
  const first = JSON.parse(await results.first().locator('pre').innerText());
  check(first.id === nonce && first.double === 42, `result data ${JSON.stringify(first)}, want {"id":"${nonce}","double":42}`);
  const meta = await results.first().locator('.meta').innerText();
  check(/cursor \S+-\S+/.test(meta), `the result shows no cursor: ${meta}`);
  log(`result arrived: ${JSON.stringify(first)} (${meta})`);

  step = 'send NDJSON (one filtered out) with Ctrl+Enter';
  await page.getByLabel(/^Events:/).fill(`{"id":"${nonce}-a","n":1}\n{"id":"${nonce}-skip","n":0}\n{"id":"${nonce}-b","n":2}`);
  await page.getByLabel(/^Events:/).press('Control+Enter');
  await page.locator('#send-outcome', { hasText: 'Accepted 3 events (application/x-ndjson)' }).waitFor();
  await results.filter({ hasText: `${nonce}-b` }).waitFor();
  await page.waitForTimeout(500); // anything the filter let through by mistake would show by now
  const shown = await results.locator('pre').allInnerTexts();
  const ids = shown.map((t) => JSON.parse(t).id);
  check(JSON.stringify(ids) === JSON.stringify([`${nonce}-b`, `${nonce}-a`, nonce]),
    `results newest first: ${JSON.stringify(ids)}`);

  step = 'an event the map fails on becomes a dead letter';
  await page.getByLabel(/^Events:/).fill(`{"id":"${nonce}-dead","n":"not a number"}`);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.locator('#send-outcome', { hasText: 'Accepted 1 event' }).waitFor();
  let deadText = '';
  for (const deadline = Date.now() + STEP_TIMEOUT; ;) {
    await page.getByRole('button', { name: 'Load dead letters' }).click();
    const out = page.locator('#dead-outcome');
    await out.filter({ hasNotText: 'Loading' }).waitFor();
    deadText = await out.innerText();
    if (/dead letters? of/.test(deadText) || /failed/.test(deadText)) { break; }
    check(Date.now() < deadline, `no dead letter listed: ${deadText}`);
    await page.waitForTimeout(500);
  }
  check(!/failed/.test(deadText), `loading dead letters failed: ${deadText}`);
  const letter = await page.locator('#dead-letters li').first().innerText();
  check(letter.includes(`${nonce}-dead`), `the dead letter is not the failed event: ${letter}`);
  log(`dead letter listed: ${letter.replace(/\s+/g, ' ').slice(0, 160)}`);

  step = 'after a reload: key kept, stream picked from the list, results replayed';
  await page.reload();
  await page.locator('#key-outcome', { hasText: 'kept for this tab' }).waitFor();
  await page.locator('#streams-outcome', { hasText: 'listed' }).waitFor();
  await page.getByLabel('Stream', { exact: true }).selectOption(streamID);
  await page.getByLabel('Replay its results from the start').check();
  await page.getByRole('button', { name: 'Watch' }).click();
  await page.locator('#feed-state', { hasText: `live: ${streamID}` }).waitFor();
  await results.filter({ hasText: `${nonce}-b` }).waitFor();
  await page.waitForTimeout(500);
  check(await results.count() === 3, `replayed ${await results.count()} results, want 3`);
  // For the screenshot: the dead letter beside the replayed results.
  await page.getByRole('button', { name: 'Load dead letters' }).click();
  await page.locator('#dead-outcome', { hasText: 'dead letter of' }).waitFor();

  step = 'where the key went';
  for (const r of requests) {
    const u = new URL(r.url);
    check(!r.url.includes(key) && !u.searchParams.has('api_key'), `the key in the URL of ${u.pathname}`);
    if (u.searchParams.has('token')) {
      check(/^\/v1\/streams\/[^/]+\/results$/.test(u.pathname), `a token in the URL of ${u.pathname}`);
      check(u.searchParams.get('token').startsWith('rtstok_'), `not a subscribe token in the URL of ${u.pathname}`);
      check(r.headers['x-api-key'] === undefined, `the EventSource sent X-API-Key`);
    } else if (u.pathname.startsWith('/v1/')) {
      check(r.headers['x-api-key'] === key, `${u.pathname} sent without X-API-Key`);
    }
  }
  check(requests.some((r) => /\/results\?token=rtstok_/.test(r.url)), 'no EventSource request with a subscribe token seen');
  check(requests.some((r) => r.method === 'POST' && /\/tokens$/.test(new URL(r.url).pathname)), 'no token was minted');

  step = 'no script errors or policy violations';
  check(problems.length === 0, problems.join('\n'));
} catch (err) {
  failed = err;
}

try {
  await page.screenshot({ path: shot, fullPage: true });
  log(`screenshot ${shot}`);
} catch (err) {
  console.error(`console test: screenshot failed: ${err.message}`);
}
await browser.close();

if (failed) {
  console.error(`console test: FAILED at step "${step}": ${failed.message}`);
  for (const p of problems) { console.error(`console test: ${p}`); }
  process.exit(1);
}
log('ok');
