// Writes 30 baseline keys (one per line) to the file named by argv[2] and
// prints the SQL that seeds the D1-shaped baseline: its `keys` (prefix → org,
// digest) and `orgs` tables. Digests use common.mjs's pepper.
import { createHmac, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { orgOf } from "./common.mjs";

const PEPPER = "bench-pepper-bench-pepper-bench-pepper!!";
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const keys = Array.from({ length: 30 }, () => {
  const body = [...randomBytes(26)].map((b) => ALPHABET[b % 32]).join("");
  return `ck_live_${body}`;
});
writeFileSync(process.argv[2], keys.join("\n") + "\n");
const sql = [
  "CREATE TABLE IF NOT EXISTS keys (prefix TEXT PRIMARY KEY, org_id TEXT NOT NULL, hash TEXT NOT NULL);",
  "CREATE TABLE IF NOT EXISTS orgs (id TEXT PRIMARY KEY, name TEXT NOT NULL);",
];
for (let i = 0; i < 6; i++) sql.push(`INSERT OR REPLACE INTO orgs VALUES ('org-${i}', 'bench org ${i}');`);
for (const k of keys) {
  const hash = createHmac("sha256", PEPPER).update(k).digest("hex");
  sql.push(`INSERT OR REPLACE INTO keys VALUES ('${k.slice(8, 16)}', '${orgOf(k.slice(8, 16))}', '${hash}');`);
}
console.log(sql.join("\n"));
