// The app's start page: which API it talks to, whether the platform is serving, and
// the services of the contract this build knows. Query parameters: api (the API's
// base URL; default this page's origin) and token (an access token to send).
import { contractServices, platformHealth, type ApiOptions } from "./api.js";

const params = new URLSearchParams(location.search);
const token = params.get("token") ?? undefined;
const opts: ApiOptions = { baseUrl: params.get("api") ?? location.origin, token: () => token };

function text(id: string, value: string) {
  const el = document.getElementById(id);
  if (el) el.textContent = value;
}

text("api", opts.baseUrl);
const list = document.getElementById("services");
for (const s of contractServices()) {
  const li = document.createElement("li");
  li.textContent = `${s.name} (${s.methods.length} methods)`;
  list?.append(li);
}
platformHealth(opts).then(
  (status) => text("health", status),
  (err: unknown) => text("health", `unreachable: ${err instanceof Error ? err.message : String(err)}`),
);
