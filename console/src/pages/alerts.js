import { errorBox, fill, h, status, when } from "../dom.js";
import { pagedList, select } from "./list.js";

const KINDS = ["l2_limit_repeated", "auth_failure_burst", "dead_key_used", "key_expiring", "quota_80", "quota_reached"];

/** Resolving needs the admin scope and `POST /v1/alerts/{id}/resolve`. */
function resolveCell(ctx, a, reload, out) {
  if (a.state !== "open") return "—";
  if (!ctx.scopes.admin) {
    return h("button", { type: "button", disabled: true, title: "Resolving an alert needs the admin scope." }, "Resolve");
  }
  const btn = h("button", { type: "button" }, "Resolve");
  btn.setAttribute("aria-label", `Resolve alert ${a.kind} ${a.prefix || ""}`.trim());
  btn.addEventListener("click", async () => {
    btn.disabled = true;
    fill(out, status("Resolving…"));
    try {
      await ctx.api("POST", `/v1/alerts/${encodeURIComponent(a.id)}/resolve`);
      reload(h("p", { class: "notice", role: "status" }, `Alert ${a.kind} resolved.`));
    } catch (err) {
      btn.disabled = false;
      fill(out, errorBox(err));
    }
  });
  return btn;
}

export async function alertsPage(el, ctx) {
  await pagedList(el, ctx, {
    title: "Alerts",
    caption: "Alerts, newest first",
    route: "alerts",
    path: "/v1/alerts",
    itemsField: "alerts",
    filters: [
      { name: "state", label: "State", input: select(["open", "resolved"]) },
      { name: "kind", label: "Kind", input: select(KINDS) },
    ],
    headers: ["Kind", "Key", "State", "First seen", "Last seen", "Count", "Action"],
    row: (a, reload, out) => [
      a.kind,
      a.prefix ? h("code", {}, a.prefix) : "org",
      h("span", { class: `state state-${a.state}` }, a.state),
      when(a.first_seen),
      when(a.last_seen),
      String(a.count),
      resolveCell(ctx, a, reload, out),
    ],
  });
}
