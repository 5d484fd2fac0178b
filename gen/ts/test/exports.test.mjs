// Checks that @trialhub/api exports every service and method of the contract, read
// from the .proto files themselves so a new service or RPC cannot be left out, and
// that messages round-trip through the Connect JSON form analysts and browsers use.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { create, toJson, fromJson } from "@bufbuild/protobuf";
import * as api from "@trialhub/api";
import * as eproSubpath from "@trialhub/api/epro/v1";

const protoRoot = new URL("../../../proto/trialhub", import.meta.url).pathname;

function protoServices() {
  const services = [];
  (function walk(dir) {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".proto")) {
        const src = readFileSync(path, "utf8");
        const pkg = /^package\s+([\w.]+);/m.exec(src)[1];
        for (const m of src.matchAll(/^service\s+(\w+)\s*\{([\s\S]*?)^\}/gm)) {
          const rpcs = [...m[2].matchAll(/^\s*rpc\s+(\w+)\s*\(/gm)].map((r) => r[1]);
          services.push({ pkg, name: m[1], rpcs });
        }
      }
    }
  })(protoRoot);
  return services;
}

test("every service and method of the contract is exported", () => {
  const services = protoServices();
  assert.ok(services.length >= 6, `found only ${services.length} services in proto/`);
  for (const { pkg, name, rpcs } of services) {
    const [, domain, version] = pkg.split(".");
    const ns = api[`${domain}${version}`];
    assert.ok(ns, `namespace ${domain}${version} missing`);
    const svc = ns[name];
    assert.ok(svc, `${pkg}.${name} missing`);
    assert.equal(svc.typeName, `${pkg}.${name}`);
    const methods = svc.methods.map((m) => m.name);
    assert.deepEqual([...methods].sort(), [...rpcs].sort(), `${pkg}.${name} methods`);
  }
});

test("each package is also a subpath export", () => {
  assert.equal(eproSubpath.EproService, api.eprov1.EproService);
});

test("messages round-trip through Connect JSON with proto field names mapped", () => {
  const req = create(api.trialv1.GetSubjectVisitPlanRequestSchema, {
    subjectUuid: "7b0d0f8e-3c1a-4f43-9a1e-2b8f5d7c9e10",
    trialId: "1f0c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
  });
  const json = toJson(api.trialv1.GetSubjectVisitPlanRequestSchema, req);
  assert.deepEqual(json, {
    subjectUuid: "7b0d0f8e-3c1a-4f43-9a1e-2b8f5d7c9e10",
    trialId: "1f0c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
  });
  const back = fromJson(api.trialv1.GetSubjectVisitPlanRequestSchema, json);
  assert.equal(back.trialId, req.trialId);
});

test("method rules travel with the descriptors", async () => {
  const { getOption } = await import("@bufbuild/protobuf");
  const method = api.patientv1.PatientService.method.getPatientIdentity;
  const rule = getOption(method, api.authzv1.rule);
  assert.deepEqual(
    rule.roles.map((r) => api.authzv1.Role[r]).sort(),
    ["ADMIN", "INVESTIGATOR"], // protoc-gen-es drops the enum-name prefix
  );
});
