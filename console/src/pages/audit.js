import { h, when } from "../dom.js";
import { pagedList } from "./list.js";

const ACTIONS = [
  "auth.failure",
  "auth.forbidden",
  "key.created",
  "key.revoked",
  "key.rotated",
  "org.updated",
  "interaction.deleted",
  "cors.refused",
  "rate_limited",
  "erasure.started",
  "erasure.completed",
  "org.created",
  "org.quota_set",
];

export async function auditPage(el, ctx) {
  const action = h("input", { type: "text", list: "audit-actions", maxlength: "64", autocomplete: "off" });
  const prefix = h("input", { type: "text", maxlength: "8", autocomplete: "off", class: "narrow", pattern: "[0-9A-Za-z]{8}" });
  const list = h("datalist", { id: "audit-actions" }, ACTIONS.map((a) => h("option", { value: a })));
  await pagedList(el, ctx, {
    title: "Audit log",
    caption: "Audit entries, newest first",
    route: "audit",
    path: "/v1/audit-log",
    itemsField: "entries",
    intro: list,
    filters: [
      { name: "action", label: "Action", input: action, hint: "e.g. auth.failure, key.revoked" },
      { name: "prefix", label: "Key prefix", input: prefix, hint: "8 characters" },
    ],
    headers: ["When", "Action", "Reason", "Key", "Client IP", "Count", "Request id", "Detail"],
    row: (e) => [
      when(e.at),
      e.action,
      e.reason || "—",
      e.prefix ? h("code", {}, e.prefix) : "—",
      e.ip || "—",
      e.count > 1 ? `${e.count} (until ${when(e.last_at)})` : "1",
      e.request_id ? h("code", {}, e.request_id) : "—",
      e.detail === null || e.detail === undefined ? "—" : h("code", { class: "json" }, JSON.stringify(e.detail)),
    ],
  });
}
