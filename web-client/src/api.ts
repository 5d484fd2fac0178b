// The browser's way into the TrialHub API: typed Connect clients for every service of
// the contract, over one transport that sends the caller's bearer token and uses
// HTTP GET for side-effect-free methods (cacheable, and visible as such in the
// network panel).
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { eprov1, notificationv1, patientv1, trialv1 } from "@trialhub/api";

/** Where the API is and how to get the caller's access token. */
export interface ApiOptions {
  /** The API's base URL, e.g. "http://localhost:8080". */
  baseUrl: string;
  /** Returns the current access token, or undefined when signed out. */
  token?: () => string | undefined;
}

/** Typed clients for every TrialHub service. */
export interface Api {
  auth: Client<typeof patientv1.AuthService>;
  patients: Client<typeof patientv1.PatientService>;
  audit: Client<typeof patientv1.AuditService>;
  trials: Client<typeof trialv1.TrialService>;
  epro: Client<typeof eprov1.EproService>;
  notifications: Client<typeof notificationv1.NotificationService>;
}

/** bearer attaches the caller's token to every request that has one. */
export function bearer(token: () => string | undefined): Interceptor {
  return (next) => async (req) => {
    const t = token();
    if (t) req.header.set("Authorization", `Bearer ${t}`);
    return next(req);
  };
}

/** createApi returns clients for every service, sharing one transport. */
export function createApi(opts: ApiOptions): Api {
  const transport = createConnectTransport({
    baseUrl: opts.baseUrl,
    useHttpGet: true,
    interceptors: opts.token ? [bearer(opts.token)] : [],
  });
  return {
    auth: createClient(patientv1.AuthService, transport),
    patients: createClient(patientv1.PatientService, transport),
    audit: createClient(patientv1.AuditService, transport),
    trials: createClient(trialv1.TrialService, transport),
    epro: createClient(eprov1.EproService, transport),
    notifications: createClient(notificationv1.NotificationService, transport),
  };
}

/**
 * platformHealth asks the platform's gRPC health service (Connect JSON) whether the
 * API is serving, and returns its status, e.g. "SERVING". It throws with the
 * Connect error code when the call fails.
 */
export async function platformHealth(opts: ApiOptions): Promise<string> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  const t = opts.token?.();
  if (t) headers["Authorization"] = `Bearer ${t}`;
  const res = await fetch(new URL("/grpc.health.v1.Health/Check", opts.baseUrl), {
    method: "POST",
    headers,
    body: "{}",
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`${body.code ?? res.status}: ${body.message ?? res.statusText}`);
  return body.status;
}

/** The services and methods this build of the app knows, from the contract. */
export function contractServices(): { name: string; methods: string[] }[] {
  return [patientv1.AuthService, patientv1.PatientService, patientv1.AuditService,
    trialv1.TrialService, eprov1.EproService, notificationv1.NotificationService]
    .map((s) => ({ name: s.typeName, methods: s.methods.map((m) => m.name) }));
}
