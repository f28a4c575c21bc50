// The ledger console: a static page that reads the query API's /v1/ routes
// with a read token the user enters. The token stays in this tab's
// sessionStorage (gone when the tab closes), is sent only as
// "Authorization: Bearer" to the same origin, and never goes into a URL.
// Everything the API returns is put into the page as text (textContent),
// never as markup.
"use strict";

(function () {
  const TOKEN_KEY = "ledger.readToken";
  const $ = (id) => document.getElementById(id);

  // ---- requests -----------------------------------------------------------

  let busy = 0;
  function setBusy(d) {
    busy += d;
    document.body.dataset.busy = String(busy);
  }
  setBusy(0);

  // acted counts finished user actions (a lookup, a page, a chart): a test
  // driving the page waits for it to move instead of for a fixed time.
  let actions = 0;
  function acted() {
    actions++;
    document.body.dataset.actions = String(actions);
  }
  document.body.dataset.actions = "0";

  class APIError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // parseJSON keeps integers beyond 2^53 exact (as BigInt): balances and
  // totals are 64-bit minor units.
  function parseJSON(text) {
    return JSON.parse(text, (key, value, ctx) =>
      typeof value === "number" && !Number.isSafeInteger(value) && ctx && /^-?\d+$/.test(ctx.source)
        ? BigInt(ctx.source) : value);
  }

  // api GETs path (relative to the API's /v1/) and returns the decoded
  // body, or throws an APIError whose message is fit to show.
  async function api(path) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY) || "";
    if (token !== "") headers.Authorization = "Bearer " + token;
    setBusy(1);
    try {
      let resp;
      try {
        resp = await fetch(new URL("../v1/" + path, location.href), { headers, credentials: "omit", cache: "no-store" });
      } catch (e) {
        throw new APIError(0, "network", "The query API did not answer (" + e.message + ").");
      }
      const text = await resp.text();
      let body = null;
      try { body = parseJSON(text); } catch (e) { /* not JSON: handled below */ }
      if (resp.ok && body !== null) return body;
      const code = body && body.error ? body.error : "http_" + resp.status;
      let msg = body && body.message ? body.message : text.slice(0, 200) || resp.statusText;
      if (resp.status === 401) msg = "The query API refused the request (401 " + code + "): enter a valid read token above.";
      if (resp.status === 403) msg = "This token may not read (403 " + code + "): it needs the read scope.";
      if (resp.status === 429) msg = "Too many requests for this token (429); wait a moment and retry.";
      throw new APIError(resp.status, code, msg);
    } finally {
      setBusy(-1);
    }
  }

  // ticket starts a request of a view and returns a func that reports
  // whether it is still the latest of that view: an answer that comes
  // after a newer request's is dropped, not shown over it.
  const latest = {};
  function ticket(view) {
    const n = (latest[view] || 0) + 1;
    latest[view] = n;
    return () => latest[view] === n;
  }

  // ---- formatting ---------------------------------------------------------

  const exponents = {};
  // exponent is the number of minor-unit digits of an ISO 4217 currency
  // (2 for EUR, 0 for JPY, 3 for KWD), as the browser's Intl knows it.
  function exponent(cur) {
    if (!(cur in exponents)) {
      let e = 2;
      try { e = new Intl.NumberFormat("en", { style: "currency", currency: cur }).resolvedOptions().maximumFractionDigits; } catch (_) { /* unknown: 2 */ }
      exponents[cur] = e;
    }
    return exponents[cur];
  }

  function group(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  // money formats minor units exactly: "1,234.56 EUR", "-0.05 EUR".
  function money(minor, cur) {
    let v = BigInt(minor);
    const neg = v < 0n;
    if (neg) v = -v;
    const e = exponent(cur || "XXX");
    let s = v.toString();
    let out;
    if (e === 0) {
      out = group(s);
    } else {
      s = s.padStart(e + 1, "0");
      out = group(s.slice(0, -e)) + "." + s.slice(-e);
    }
    return (neg ? "-" : "") + out + (cur ? " " + cur : "");
  }

  function count(n) {
    return group(BigInt(n).toString());
  }

  function when(ts) {
    return ts ? String(ts).replace("T", " ") : "";
  }

  // ---- small DOM helpers ----------------------------------------------------

  function show(el, on) { el.hidden = !on; }

  function showError(id, err) {
    const el = $(id);
    if (!err) { el.textContent = ""; show(el, false); return; }
    el.textContent = err.message || String(err);
    el.dataset.status = err.status === undefined ? "" : String(err.status);
    show(el, true);
  }

  function fill(tbody, rows) {
    tbody.replaceChildren(...rows.map((cells) => {
      const tr = document.createElement("tr");
      for (const c of cells) {
        const td = document.createElement("td");
        if (typeof c === "object" && c !== null) {
          td.textContent = c.text;
          if (c.num) td.className = "num";
        } else {
          td.textContent = c;
        }
        tr.append(td);
      }
      return tr;
    }));
  }

  function set(id, text) { $(id).textContent = text; }

  function idOf(inputId) {
    const v = $(inputId).value;
    if (v === "") throw new APIError(400, "invalid_parameter", "Enter an id.");
    return encodeURIComponent(v);
  }

  // ---- token --------------------------------------------------------------

  function tokenState() {
    const has = (sessionStorage.getItem(TOKEN_KEY) || "") !== "";
    set("token-state", has ? "token set for this tab" : "no token: requests are refused unless the API runs without auth");
  }

  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("token").value.trim();
    if (v === "") sessionStorage.removeItem(TOKEN_KEY); else sessionStorage.setItem(TOKEN_KEY, v);
    $("token").value = "";
    tokenState();
  });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    // Start afresh: nothing read with the token stays on screen.
    location.reload();
  });

  // ---- views --------------------------------------------------------------

  function route() {
    const name = (location.hash || "#account").slice(1);
    const known = ["account", "command", "transfer", "analytics"].includes(name) ? name : "account";
    for (const s of document.querySelectorAll(".view")) show(s, s.id === "view-" + known);
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === known);
    if (known === "analytics" && !analyticsLoaded) loadAnalytics();
  }
  window.addEventListener("hashchange", route);

  // ---- account ------------------------------------------------------------

  let account = null; // the account shown
  let cursors = [""]; // cursor of each history page seen; the last is the current
  let nextCursor = "";

  $("account-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError("account-error", null);
    show($("account-result"), false);
    const current = ticket("account");
    try {
      const id = idOf("account-id");
      const [a, recent] = await Promise.all([api("accounts/" + id), api("accounts/" + id + "/transactions?limit=10")]);
      if (!current()) return;
      account = a;
      set("acct-id", a.account_id);
      set("acct-owner", a.owner);
      set("acct-balance", money(a.balance, a.currency));
      set("acct-overdraft", money(a.overdraft_limit, a.currency));
      set("acct-status", a.status);
      $("acct-status").className = "status " + a.status;
      set("acct-version", count(a.version));
      set("acct-updated", when(a.updated_at));
      fill($("recent").querySelector("tbody"), recent.transactions.map((t) => [
        { text: count(t.version), num: true }, t.type, { text: money(t.amount, a.currency), num: true },
        { text: money(t.balance_after, a.currency), num: true }, t.counterparty || ""]));
      show($("recent-empty"), recent.transactions.length === 0);
      cursors = [""];
      await historyPage();
      if (!current()) return;
      show($("account-result"), true);
    } catch (e) {
      if (current()) showError("account-error", e);
    } finally {
      acted();
    }
  });

  async function historyPage() {
    showError("history-error", null);
    const current = ticket("history");
    $("history-next").disabled = true; // until this page's next_cursor is known
    const cursor = cursors[cursors.length - 1];
    const size = $("history-size").value;
    let path = "accounts/" + encodeURIComponent(account.account_id) + "/history?limit=" + encodeURIComponent(size);
    if (cursor !== "") path += "&cursor=" + encodeURIComponent(cursor);
    try {
      const h = await api(path);
      if (!current()) return;
      fill($("history").querySelector("tbody"), h.events.map((e) => [
        { text: count(e.version), num: true }, e.type, { text: money(e.amount, e.currency || account.currency), num: true },
        { text: money(e.balance_after, e.currency || account.currency), num: true }, when(e.occurred_at)]));
      nextCursor = h.next_cursor || "";
      set("history-page", "page " + cursors.length + (nextCursor === "" ? " (last)" : ""));
      $("history-next").disabled = nextCursor === "";
      $("history-first").disabled = cursors.length === 1;
    } catch (e) {
      if (current()) showError("history-error", e);
    }
  }

  $("history-next").addEventListener("click", async () => {
    if (nextCursor === "") return;
    cursors.push(nextCursor);
    await historyPage();
    acted();
  });
  $("history-first").addEventListener("click", async () => {
    cursors = [""];
    await historyPage();
    acted();
  });

  // ---- command ------------------------------------------------------------

  $("command-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError("command-error", null);
    show($("command-result"), false);
    const current = ticket("command");
    try {
      const c = await api("commands/" + idOf("command-id"));
      if (!current()) return;
      set("cmd-id", c.command_id);
      set("cmd-status", c.status);
      $("cmd-status").className = "status " + c.status;
      set("cmd-type", c.command_type || "");
      set("cmd-account", c.aggregate_id || "");
      set("cmd-version", c.version === undefined ? "" : count(c.version));
      set("cmd-reason", c.reason || "");
      set("cmd-message", c.status === "unknown"
        ? "No outcome is known for this id: not processed yet, never sent, or older than the outcome view keeps."
        : c.message || "");
      set("cmd-processed", when(c.processed_at));
      show($("command-result"), true);
    } catch (e) {
      if (current()) showError("command-error", e);
    } finally {
      acted();
    }
  });

  // ---- transfer -----------------------------------------------------------

  $("transfer-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError("transfer-error", null);
    show($("transfer-result"), false);
    const current = ticket("transfer");
    try {
      const t = await api("transfers/" + idOf("transfer-id"));
      if (!current()) return;
      set("tr-id", t.transfer_id);
      set("tr-status", t.status);
      $("tr-status").className = "status " + t.status;
      set("tr-from", t.from_account_id);
      set("tr-to", t.to_account_id);
      set("tr-amount", money(t.amount, t.currency));
      set("tr-updated", when(t.updated_at));
      show($("transfer-result"), true);
    } catch (e) {
      if (current()) showError("transfer-error", e);
    } finally {
      acted();
    }
  });

  // ---- analytics ----------------------------------------------------------

  let analyticsLoaded = false;
  const charts = {};

  function period() {
    const hours = Number($("an-range").value);
    const to = new Date();
    to.setUTCMinutes(0, 0, 0);
    to.setUTCHours(to.getUTCHours() + 1); // the end of the current hour
    const from = new Date(to.getTime() - hours * 3600e3);
    const iso = (d) => d.toISOString().replace(".000Z", "Z");
    return { from: iso(from), to: iso(to) };
  }

  // series fetches metrics of cur and aligns them on one time axis (a
  // bucket missing from a metric is 0: nothing happened in it).
  async function series(metrics, cur, p) {
    const iv = $("an-interval").value;
    const answers = await Promise.all(metrics.map((m) => api("analytics/timeseries?metric=" + m + "&interval=" + iv +
      "&from=" + encodeURIComponent(p.from) + "&to=" + encodeURIComponent(p.to) + "&currency=" + encodeURIComponent(cur))));
    const times = [...new Set(answers.flatMap((a) => a.points.map((pt) => Date.parse(pt.time) / 1000)))].sort((x, y) => x - y);
    const cols = answers.map((a) => {
      const by = new Map(a.points.map((pt) => [Date.parse(pt.time) / 1000, pt.value]));
      return times.map((t) => by.get(t) ?? 0);
    });
    const totals = answers.map((a) => a.points.reduce((s, pt) => s + BigInt(pt.value), 0n));
    return { times, cols, totals };
  }

  const colors = ["#2563eb", "#dc2626", "#16a34a"];
  const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });

  function draw(id, title, names, s, scale, unit) {
    const el = $(id);
    if (charts[id]) { charts[id].destroy(); delete charts[id]; }
    el.replaceChildren();
    if (s.times.length === 0) {
      el.textContent = "No data in this period.";
      el.classList.add("empty");
      return;
    }
    el.classList.remove("empty");
    const opts = {
      title, width: el.clientWidth || 440, height: 220,
      series: [{}].concat(names.map((n, i) => ({ label: n, stroke: colors[i], width: 2, points: { show: s.times.length < 40 } }))),
      axes: [{}, { size: 56, label: unit, labelSize: 18, values: (u, vals) => vals.map((v) => compact.format(v)) }],
      legend: { live: false },
    };
    const data = [s.times].concat(s.cols.map((c) => c.map((v) => Number(v) / scale)));
    charts[id] = new uPlot(opts, data, el);
  }

  async function loadAnalytics() {
    analyticsLoaded = true;
    showError("analytics-error", null);
    const p = period();
    const current = ticket("analytics");
    try {
      const sum = await api("analytics/summary?from=" + encodeURIComponent(p.from) + "&to=" + encodeURIComponent(p.to));
      if (!current()) return;
      set("an-period", p.from.replace("T", " ") + " to " + p.to.replace("T", " "));
      fill($("summary").querySelector("tbody"), sum.currencies.map((c) => [c.currency,
        { text: money(c.deposits, c.currency) + " (" + count(c.deposit_count) + ")", num: true },
        { text: money(c.withdrawals, c.currency) + " (" + count(c.withdrawal_count) + ")", num: true },
        { text: money(c.transfers, c.currency) + " (" + count(c.transfer_count) + ")", num: true },
        { text: money(c.transfers_credited, c.currency) + " (" + count(c.credited_count) + ")", num: true },
        { text: money(c.transfers_refunded, c.currency) + " (" + count(c.refunded_count) + ")", num: true },
        { text: count(c.events), num: true }]));
      const sel = $("an-currency");
      const keep = sel.value;
      sel.replaceChildren(...sum.currencies.map((c) => new Option(c.currency, c.currency)));
      if (sum.currencies.some((c) => c.currency === keep)) sel.value = keep;
      show($("analytics-result"), true);
      const cur = sel.value;
      if (!cur) {
        draw("chart-volume", "", [], { times: [] });
        draw("chart-counts", "", [], { times: [] });
        set("chart-volume-caption", "No money moved in this period.");
        set("chart-counts-caption", "");
        return;
      }
      const [vol, cnt] = await Promise.all([series(["deposits", "withdrawals", "transfers"], cur, p),
        series(["deposit_count", "withdrawal_count", "transfer_count"], cur, p)]);
      if (!current()) return;
      draw("chart-volume", "Volume, " + cur, ["deposits", "withdrawals", "transfers sent"], vol, 10 ** exponent(cur), cur);
      draw("chart-counts", "Movements (count), " + cur, ["deposits", "withdrawals", "transfers sent"], cnt, 1, "");
      set("chart-volume-caption", "Totals: deposits " + money(vol.totals[0], cur) + ", withdrawals " +
        money(vol.totals[1], cur) + ", transfers sent " + money(vol.totals[2], cur) + " in " + vol.times.length + " buckets");
      set("chart-counts-caption", "Totals: deposits " + count(cnt.totals[0]) + ", withdrawals " +
        count(cnt.totals[1]) + ", transfers sent " + count(cnt.totals[2]) + " in " + cnt.times.length + " buckets");
    } catch (e) {
      if (!current()) return;
      analyticsLoaded = false;
      showError("analytics-error", e);
    } finally {
      acted();
    }
  }

  $("analytics-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadAnalytics();
  });

  tokenState();
  route();
})();
