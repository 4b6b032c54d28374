// The console in a real browser (Debian's chromium, driven by playwright-core), for
// tests/console.rs. One argument: a JSON object with
//   console      the console's url
//   callbacks    the callback listener's base url
//   drop         {from, to, plugin}: a plugin file to copy into the plugin directory once the
//                page is shown, and its name, which the page must then show
//   refusal      {path, body, operationID, plugin}: a callback to send, and the plugin that
//                must be shown refusing it
//   screenshot   where to write the page's PNG
//   rejected     {path}: a callback path the host rejects, sent after the screenshot
//   api_row      {operationID}: a callback already sent whose row (with its plugins' OpenIM API
//                calls) is read
// Prints one JSON line: what was seen, the browser's console errors, and how long the page took
// to show the dropped plugin. Exits non-zero when something the test waits for does not come.
import { copyFileSync, renameSync } from "node:fs";
import { chromium } from "playwright-core";

const spec = JSON.parse(process.argv[2]);
const seen = { errors: [], requests_failed: [] };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // No sandbox as root; no background traffic on a machine without a network.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      seen.errors.push(message.type() + ": " + message.text());
    }
  });
  page.on("pageerror", (error) => seen.errors.push("page error: " + error.message));
  page.on("requestfailed", (request) => seen.requests_failed.push(request.url()));

  await page.goto(spec.console);
  await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("updated"), null, { timeout: 20000 });
  seen.title = await page.title();
  seen.plugins_before = await page.$$eval("#plugins tbody tr[data-plugin]", (rows) => rows.map((r) => r.dataset.plugin));

  // A plugin dropped into the directory, as an operator deploys one: copied under a dot-name,
  // then renamed into place.
  const hidden = spec.drop.to.replace(/[^/]+$/, (name) => "." + name);
  copyFileSync(spec.drop.from, hidden);
  const dropped = Date.now();
  renameSync(hidden, spec.drop.to);
  await page.waitForSelector(`#plugins tr[data-plugin="${spec.drop.plugin}"]`, { timeout: 30000 });
  seen.plugin_shown_after_ms = Date.now() - dropped;

  // A refused callback, sent as OpenIM sends it.
  const answer = await fetch(spec.callbacks + spec.refusal.path, {
    method: "POST",
    headers: { "Content-Type": "application/json; charset=utf-8", operationID: spec.refusal.operationID },
    body: spec.refusal.body,
  });
  seen.refusal_answer = await answer.text();
  const row = `#recent tr[data-outcome="refused"]`;
  await page.waitForSelector(row, { timeout: 20000 });
  seen.refusal_row = await page.$eval(row, (r) => r.innerText);
  // The outcome filter keeps the refusals only.
  await page.selectOption("#filter-outcome", "refused");
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#recent tbody tr[data-outcome]")];
    return rows.length > 0 && rows.every((r) => r.dataset.outcome === "refused");
  }, null, { timeout: 10000 });
  await page.selectOption("#filter-outcome", "");
  if (spec.api_row) {
    const op = spec.api_row.operationID;
    await page.waitForFunction((op) => [...document.querySelectorAll("#recent tbody tr")]
      .some((r) => r.innerText.includes(op) && r.innerText.includes("OpenIM:")), op, { timeout: 20000 });
    seen.api_row = await page.$$eval("#recent tbody tr", (rows, op) =>
      rows.find((r) => r.innerText.includes(op)).innerText, op);
  }
  // For the operator in a hurry: the recent callbacks come first (after any alarm), and the
  // header's links reach every section.
  seen.first_section = await page.$eval("main", (m) => m.querySelector("section:not([hidden])").id);
  seen.nav = await page.$$eval("header nav a", (links) => links.map((a) => a.getAttribute("href")));
  await page.click('header nav a[href="#queue-section"]');
  await page.waitForFunction(() => {
    const top = document.getElementById("queue-section").getBoundingClientRect().top;
    return top >= 0 && top < window.innerHeight - 100;
  }, null, { timeout: 5000 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(2500);
  await page.screenshot({ path: spec.screenshot, fullPage: true });

  // A callback the host rejects (a wrong path in OpenIM's webhook url): shown at the top.
  await fetch(spec.callbacks + spec.rejected.path, {
    method: "POST",
    headers: { "Content-Type": "application/json; charset=utf-8", operationID: "op-rejected" },
    body: "{}",
  });
  await page.waitForSelector("#rejected-section:not([hidden]) #rejected tbody tr", { timeout: 20000 });
  seen.rejected_text = await page.$eval("#rejected-section", (s) => s.innerText);
  seen.rejected_is_first = await page.$eval("main", (m) => m.querySelector("section:not([hidden])").id);
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
