import { errorBox, fill, h, table, when } from "../dom.js";

function meter(label, used, quota, fmt) {
  const pct = quota > 0 ? Math.min(100, (used / quota) * 100) : 0;
  return h(
    "div",
    { class: "meter" },
    h("span", { class: "meter-label" }, label),
    h("progress", { max: String(quota || 1), value: String(Math.min(used, quota || 1)), "aria-label": label }),
    h("span", {}, `${fmt(used)} of ${fmt(quota)} (${pct.toFixed(1)} %)`),
  );
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

const count = (n) => Number(n).toLocaleString("en");

export async function overviewPage(el, ctx) {
  const [org, alerts] = await Promise.all([
    ctx.api("GET", "/v1/org"),
    ctx.scopes.read ? ctx.api("GET", "/v1/alerts", { query: { state: "open", limit: 20 } }).catch((e) => e) : null,
  ]);
  if (!ctx.current()) return;
  const run = org.last_retention_run;
  const alertSection = h("section", { "aria-labelledby": "ov-alerts" }, h("h2", { id: "ov-alerts" }, "Open alerts"));
  if (!ctx.scopes.read) {
    alertSection.append(h("p", { class: "disabled" }, "Alerts need a key with the read scope."));
  } else if (alerts instanceof Error) {
    alertSection.append(errorBox(alerts));
  } else if (alerts.alerts.length === 0) {
    alertSection.append(h("p", {}, "No open alerts."));
  } else {
    alertSection.append(
      h("p", {}, `${alerts.alerts.length}${alerts.next_cursor ? "+" : ""} open alerts. `, h("a", { href: "#/alerts?state=open" }, "See all alerts")),
      table(
        "Open alerts, newest first",
        ["Kind", "Key", "Last seen", "Count"],
        alerts.alerts.map((a) => [a.kind, a.prefix || "org", when(a.last_seen), String(a.count)]),
      ),
    );
  }
  fill(
    el,
    h("h1", {}, "Overview"),
    h(
      "section",
      { class: "card", "aria-labelledby": "ov-org" },
      h("h2", { id: "ov-org" }, org.name),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Org id"),
        h("dd", {}, h("code", {}, org.id)),
        h("dt", {}, "Created"),
        h("dd", {}, when(org.created_at)),
        h("dt", {}, "Allowed origins"),
        h("dd", {}, org.allowed_origins.length ? org.allowed_origins.join(", ") : "none (only non-browser clients)"),
      ),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "ov-usage" },
      h("h2", { id: "ov-usage" }, "Usage against quota"),
      meter("Interactions", org.usage.rows, org.usage.quota_rows, count),
      meter("Storage", org.usage.bytes, org.usage.quota_bytes, bytes),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "ov-retention" },
      h("h2", { id: "ov-retention" }, "Last retention run"),
      run
        ? h(
            "p",
            {},
            `${when(run.at)}: deleted `,
            Object.entries(run.deleted || {})
              .map(([k, v]) => `${v} ${k}`)
              .join(", ") || "nothing",
            run.complete ? " (complete)." : " (more to delete on the next run).",
          )
        : h("p", {}, "Retention has not run since the org's actor started."),
    ),
    alertSection,
  );
}
