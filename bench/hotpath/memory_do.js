// Baseline 2 of `scripts/bench.sh hotpath`: floor + HMAC of the presented key
// + one Durable Object call answered from memory (no D1): the physical limit
// of a design that needs one actor call per authenticated request.
import { DurableObject } from "cloudflare:workers";
import { digest, floor, orgOf, presented } from "./common.mjs";

export class Org extends DurableObject {
  settings = { name: "bench org", allowed_origins: [] };
  async fetch() {
    return Response.json(this.settings);
  }
}

export default {
  async fetch(request, env) {
    const wait = floor();
    const key = presented(request);
    await digest(key);
    const stub = env.ORG.get(env.ORG.idFromName(orgOf(key.slice(8, 16))));
    const body = await (await stub.fetch("https://org/settings")).text();
    await wait;
    return new Response(body, { headers: { "content-type": "application/json" } });
  },
};
