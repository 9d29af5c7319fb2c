// Builds the web console into console/dist: one bundled ES module (app.js),
// the stylesheet and the static files. No inline script or style anywhere
// (the console's Content-Security-Policy forbids both). Run from any folder:
//   node console/build.mjs
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "dist");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, "src", "main.js"), join(here, "src", "app.css")],
  outdir: out,
  entryNames: "app",
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
});
for (const name of readdirSync(join(here, "static"))) {
  copyFileSync(join(here, "static", name), join(out, name));
}
