// Baseline 3 of `scripts/bench.sh hotpath`: interlog's first-wave shape in a
// few lines of JS: D1 prefix lookup + HMAC in the Worker, one Durable Object
// call that reads one D1 row. What the database's round trips cost.
import { DurableObject } from "cloudflare:workers";
import { digest, floor, presented, unauthorized } from "./common.mjs";

export class Org extends DurableObject {
  async fetch(request) {
    const org = new URL(request.url).searchParams.get("org");
    const row = await this.env.DB.prepare("SELECT id, name FROM orgs WHERE id = ?1").bind(org).first();
    return Response.json(row);
  }
}

export default {
  async fetch(request, env) {
    const wait = floor();
    const key = presented(request);
    const row = await env.DB.prepare("SELECT org_id, hash FROM keys WHERE prefix = ?1").bind(key.slice(8, 16)).first();
    const ok = row !== null && (await digest(key)) === row.hash;
    if (!ok) {
      await wait;
      return unauthorized();
    }
    const stub = env.ORG.get(env.ORG.idFromName(row.org_id));
    const body = await (await stub.fetch(`https://org/settings?org=${row.org_id}`)).text();
    await wait;
    return new Response(body, { headers: { "content-type": "application/json" } });
  },
};
