// The app in real headless Chromium against the real dev stack (the Go `trialhub
// dev`, built from this repository): the page served by the stack reaches the API,
// and the same page served from another origin does too, sending a bearer token
// through a CORS preflight.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, extname } from "node:path";
import { chromium } from "playwright-core";

const repo = new URL("../..", import.meta.url).pathname;
const dist = new URL("../dist", import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), "trialhub-web-"));
const bin = join(work, "trialhub");
let stack, stackURL, other, otherURL, browser;
let stackLog = ""; // the stack's JSON log lines (stderr)

function startStack() {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, ["dev", "--addr", "127.0.0.1:0", "--data", join(work, "data"), "--web", dist],
      // Health checks log at DEBUG; the CORS test reads their lines.
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, TRIALHUB_LOG_LEVEL: "debug" } });
    let out = "";
    p.stderr.on("data", (d) => { stackLog += d; });
    const timer = setTimeout(() => reject(new Error(`dev stack did not start:\n${out}`)), 60_000);
    p.stdout.on("data", (d) => {
      out += d;
      const m = /URL:\s+(http:\/\/\S+)/.exec(out);
      if (m) { clearTimeout(timer); resolve({ p, url: m[1] }); }
    });
    p.on("exit", (code) => reject(new Error(`dev stack exited ${code}:\n${out}`)));
  });
}

// A static server for dist/ on another port: another origin than the API's.
function serveDist() {
  const types = { ".html": "text/html", ".js": "text/javascript", ".map": "application/json" };
  const srv = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    try {
      const body = readFileSync(join(dist, path === "/" ? "index.html" : path));
      res.writeHead(200, { "Content-Type": types[extname(path) || ".html"] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => srv.listen(0, "127.0.0.1", () => resolve(srv)));
}

before(async () => {
  execFileSync("go", ["build", "-o", bin, "./services/stack/cmd/trialhub"], { cwd: repo, stdio: "inherit" });
  ({ p: stack, url: stackURL } = await startStack());
  other = await serveDist();
  otherURL = `http://127.0.0.1:${other.address().port}`;
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
});

after(async () => {
  await browser?.close();
  other?.close();
  stack?.kill("SIGTERM");
  rmSync(work, { recursive: true, force: true });
});

async function healthShown(url) {
  const page = await browser.newPage();
  const requests = [];
  page.on("request", (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
  try {
    await page.goto(url);
    await page.waitForFunction(() => document.getElementById("health")?.textContent !== "checking…", null, { timeout: 15_000 });
    return {
      health: await page.textContent("#health"),
      services: await page.$$eval("#services li", (lis) => lis.map((li) => li.textContent)),
      requests,
    };
  } finally {
    await page.close();
  }
}

test("the app served by the dev stack reaches the API", async () => {
  const { health, services } = await healthShown(`${stackURL}/`);
  assert.equal(health, "SERVING");
  assert.ok(services.some((s) => s.startsWith("trialhub.epro.v1.EproService")), services.join(", "));
  assert.equal(services.length, 6);
});

test("the app on another origin calls the API with a bearer token through CORS", async () => {
  const token = execFileSync(bin, ["token", "--role", "analyst", "--data", join(work, "data")]).toString().trim().split("\n").pop();
  const { health, requests } = await healthShown(`${otherURL}/?api=${encodeURIComponent(stackURL)}&token=${token}`);
  assert.equal(health, "SERVING");
  assert.ok(requests.includes("POST /grpc.health.v1.Health/Check"), requests.join(", "));
  // The server saw the analyst's token: the Authorization header survived the
  // preflight (the platform logs the caller's role with each call).
  const calls = stackLog.split("\n").filter((l) => l.includes('"procedure":"/grpc.health.v1.Health/Check"'));
  assert.ok(calls.some((l) => l.includes('"role":"ANALYST"')), `no health call with the analyst's token in:\n${calls.join("\n")}`);
});

test("a page whose API refuses it says so instead of pretending", async () => {
  // Nothing listens on the discard port: the page must report the failure.
  const { health } = await healthShown(`${otherURL}/?api=${encodeURIComponent("http://127.0.0.1:9")}`);
  assert.match(health, /^unreachable: /);
});
