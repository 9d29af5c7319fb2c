// serve.mjs: starts a Worker locally as `wrangler dev` does, through wrangler's
// own startWorker API, but with no DevTools inspector attached. Under
// `wrangler dev` an inspector session always listens to the runtime and every
// console call is serialised to it and relayed to the wrangler process; the
// deployed runtime does not do that. The hotpath benchmark starts all four
// Workers this way, so they are compared under the same conditions.
// Usage: node serve.mjs --config FILE --port N --persist-to DIR [--var NAME:VALUE]...
import { unstable_startWorker as startWorker } from "wrangler";

const args = process.argv.slice(2);
const opt = { vars: {} };
for (let i = 0; i < args.length; i += 2) {
  const [flag, value] = [args[i], args[i + 1]];
  if (flag === "--var") {
    const at = value.indexOf(":");
    opt.vars[value.slice(0, at)] = { type: "plain_text", value: value.slice(at + 1) };
  } else opt[flag.replace(/^--/, "")] = value;
}
const worker = await startWorker({
  config: opt.config,
  bindings: opt.vars,
  sendMetrics: false,
  dev: {
    server: { hostname: "127.0.0.1", port: Number(opt.port) },
    persist: opt["persist-to"],
    inspector: false,
    watch: false,
    liveReload: false,
    logLevel: "log",
  },
});
await worker.ready;
console.log(`Ready on ${(await worker.url).origin}`);
const stop = async () => { await worker.dispose(); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
