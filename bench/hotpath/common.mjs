// Shared by the hotpath baselines: the floor, the peppered hash of the
// presented key (HMAC-SHA-256 with WebCrypto, as interlog does in Rust) and
// the org a key's prefix maps to.
const PEPPER = new TextEncoder().encode("bench-pepper-bench-pepper-bench-pepper!!");
let hmacKey;

export function floor() {
  return new Promise((resolve) => setTimeout(resolve, 80));
}

export async function digest(key) {
  hmacKey ??= await crypto.subtle.importKey("raw", PEPPER, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", hmacKey, new TextEncoder().encode(key));
  return [...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function presented(request) {
  const auth = request.headers.get("authorization") || "";
  return auth.startsWith("Bearer ") ? auth.slice(7) : "";
}

export function unauthorized() {
  return new Response('{"error":{"code":"UNAUTHORIZED"}}', { status: 401 });
}

// The org of a prefix: the same 6-way spread the benchmark gives interlog's keys.
export function orgOf(prefix) {
  let h = 0;
  for (const c of prefix) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `org-${h % 6}`;
}
