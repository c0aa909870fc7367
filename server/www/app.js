/* SPDX-License-Identifier: Apache-2.0 */
// The live page of muster-server, one page with hash routes:
//   #/            the fleet: a grid coloured by state, filtered by group,
//                 facts (server side, /api/hosts?filter=), status and
//                 module; the latest jobs; versions per channel; the
//                 releases (/api/releases: rollout, attempted, failed, halt)
//   #/jobs/<id>   a job: expected vs answered, who is missing (offline or
//                 silent), failures first, output and data on click
//   #/hosts/<h>   a host: facts, update state, presence, last results
// Filters live in the hash (#/?group=web&fact=...), so back works.
//
// Messages only queue work; one requestAnimationFrame applies everything
// queued, so a burst of 10,000 results costs a few frames, not 10,000
// re-layouts.  A job page takes its results from the same stream, in the
// same frame.  All text goes in through textContent, never as HTML.
'use strict';

const MAX_JOBS = 20;
const MAX_ROWS = 2000;     // rows drawn per table; the rest is counted
const BAD = new Set(['fail', 'error', 'timeout', 'crashed', 'rejected']);
const page = {
  hosts: new Map(),        // name -> {state, version, channel, at, el, shown}
  jobs: new Map(),         // id -> {job, module, total, pass, fail, last, expected, hosts:Set}
  queue: [],               // functions to run at the next frame
  frame: false,
  applied: {},             // job id -> Date.now() of the frame that showed its counts
  frames: 0,
  results: 0,              // results applied from the stream
  view: 'fleet',
  filter: { group: '', fact: '', status: '', module: '' },
  match: null,             // hosts the server's group/fact filter returned, or null
  modHosts: null,          // hosts with a result of a recent job of the module filter
  fleetDirty: true,
  job: null,               // the open job page (openJob)
  host: null,              // the open host page (openHost)
  marks: {},               // performance.now() of milestones (the bench reads them)
};
window.musterPage = page;

function later(fn) {
  page.queue.push(fn);
  if (!page.frame) {
    page.frame = true;
    requestAnimationFrame(render);
  }
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function link(text, hash, cls) {
  const a = el('a', text, cls);
  a.href = hash;
  return a;
}

const jobHash = (id) => '#/jobs/' + encodeURIComponent(id);
const hostHash = (h) => '#/hosts/' + encodeURIComponent(h);

async function getJSON(url) {
  const r = await fetch(url, { cache: 'no-store' });
  if (!r.ok) {
    let msg = url + ': ' + r.status;
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    const err = new Error(msg);
    err.status = r.status;
    throw err;
  }
  return r.json();
}

function fmtTime(ms) {
  return ms ? new Date(ms).toLocaleTimeString() : '';
}

function fmtDate(ms) {
  return ms ? new Date(ms).toLocaleString() : '';
}

function fmtValue(v) {
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) return v.join(', ');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

// ---- hosts ---------------------------------------------------------------

function setHost(h) {
  let e = page.hosts.get(h.host);
  if (!e) {
    e = { el: el('div', null, 'host'), shown: true };
    e.el.dataset.host = h.host;
    e.el.addEventListener('click', () => { location.hash = hostHash(h.host); });
    page.hosts.set(h.host, e);
    page.newHosts = true;
  }
  if (e.at && h.at && h.at < e.at) return;
  Object.assign(e, { state: h.state, version: h.version, channel: h.channel, at: h.at });
  e.el.className = 'host ' + h.state;
  e.el.title = `${h.host}: ${h.state}, ${h.version || '?'} (${h.channel || '?'})`;
  page.fleetDirty = true;
  // A missing host's offline/silent.
  if (page.job && page.job.expected.has(h.host) && !page.job.rows.has(h.host))
    page.job.dirty = true;
  if (page.host && page.host.name === h.host) reloadHostSoon();
}

function hostShown(name, e) {
  const f = page.filter;
  return (!page.match || page.match.has(name)) && (!f.status || e.state === f.status) &&
    (!page.modHosts || page.modHosts.has(name));
}

function renderHosts() {
  const grid = document.getElementById('hosts');
  if (page.newHosts) {
    const names = [...page.hosts.keys()].sort();
    grid.replaceChildren(...names.map((n) => page.hosts.get(n).el));
    grid.classList.toggle('big', names.length <= 200);
    for (const n of names) {
      const e = page.hosts.get(n);
      e.el.textContent = names.length <= 200 ? n : '';
    }
    page.newHosts = false;
  }
  if (!page.fleetDirty) return;
  page.fleetDirty = false;
  let on = 0, shown = 0;
  const filtered = page.match || page.modHosts || page.filter.status;
  const versions = new Map();   // "channel\0version" -> [hosts, online]
  for (const [n, e] of page.hosts) {
    if (e.state === 'online') on++;
    const s = !filtered || hostShown(n, e);
    if (s !== e.shown) {
      e.el.hidden = !s;
      e.shown = s;
    }
    if (!s) continue;
    shown++;
    const k = (e.channel || '') + '\0' + (e.version || '');
    const v = versions.get(k) || [0, 0];
    v[0]++;
    if (e.state === 'online') v[1]++;
    versions.set(k, v);
  }
  document.getElementById('nonline').textContent = on;
  document.getElementById('noffline').textContent = page.hosts.size - on;
  document.getElementById('nshown').textContent = filtered ? `; ${shown} shown` : '';
  const rows = [...versions].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([k, v]) => {
      const [channel, version] = k.split('\0');
      const tr = el('tr');
      tr.append(el('td', channel || '?'), el('td', version || '?'), el('td', v[0], 'n'),
        el('td', v[1], 'n'));
      return tr;
    });
  document.querySelector('#versions tbody').replaceChildren(...rows);
}

// ---- fleet filters ------------------------------------------------------------

function readFilters(q) {
  return { group: q.get('group') || '', fact: q.get('fact') || '',
    status: q.get('status') || '', module: q.get('module') || '' };
}

function filterHash(f) {
  const q = new URLSearchParams();
  for (const k of ['group', 'fact', 'status', 'module'])
    if (f[k]) q.set(k, f[k]);
  const s = q.toString();
  return '#/' + (s ? '?' + s : '');
}

// The fact box holds -F predicates separated by ';' (muster(1) FACT FILTERS).
function factList(text) {
  return text.split(';').map((s) => s.trim()).filter(Boolean);
}

function serverFilterURL(f) {
  const q = new URLSearchParams();
  if (f.group) q.set('target', 'group/' + f.group);
  for (const p of factList(f.fact)) q.append('filter', p);
  return 'api/hosts?' + q.toString();
}

let filterSeq = 0;
async function applyFilters(f) {
  const old = page.filter;
  page.filter = f;
  const seq = ++filterSeq;
  const err = document.getElementById('f-error');
  for (const k of ['group', 'fact', 'status', 'module'])
    document.getElementById('f-' + k).value = f[k];
  setModuleOptions();
  page.fleetDirty = true;
  later(() => {});
  try {
    if (f.group !== old.group || f.fact !== old.fact || page.matchStale) {
      page.matchStale = false;
      let m = null;
      if (f.group || f.fact) {
        const d = await getJSON(serverFilterURL(f));
        m = new Set(d.hosts.map((h) => h.host));
        later(() => { for (const h of d.hosts) if (!page.hosts.has(h.host)) setHost(h); });
      }
      if (seq !== filterSeq) return;
      later(() => { page.match = m; page.fleetDirty = true; err.textContent = ''; });
    }
    if (f.module !== old.module || page.modStale) {
      page.modStale = false;
      const m = f.module ? await moduleHosts(f.module) : null;
      if (seq !== filterSeq) return;
      later(() => { page.modHosts = m; page.fleetDirty = true; });
    }
  } catch (e) {
    if (seq !== filterSeq) return;
    // The reason and the empty grid in the same frame.
    later(() => { err.textContent = e.message; page.match = new Set(); page.fleetDirty = true; });
  }
}

// Hosts with a result of one of the latest jobs running module m.
async function moduleHosts(m) {
  const ids = [...page.jobs.values()].filter((j) => j.module === m).map((j) => j.job);
  const sets = await Promise.all(ids.map((id) =>
    getJSON('api/jobs/' + encodeURIComponent(id))
      .then((d) => d.results.map((r) => r.host)).catch(() => [])));
  return new Set(sets.flat());
}

function setModuleOptions() {
  const sel = document.getElementById('f-module');
  const mods = new Set([...page.jobs.values()].map((j) => j.module).filter(Boolean));
  if (page.filter.module) mods.add(page.filter.module);
  const want = [...mods].sort();
  const have = [...sel.options].slice(1).map((o) => o.value);
  if (want.join('\0') !== have.join('\0')) {
    const opts = want.map((m) => { const o = el('option', m); o.value = m; return o; });
    const any = el('option', 'any');
    any.value = '';
    sel.replaceChildren(any, ...opts);
  }
  sel.value = page.filter.module;
}

function wireFilters() {
  const form = document.getElementById('filters');
  const read = () => ({ group: document.getElementById('f-group').value.trim(),
    fact: document.getElementById('f-fact').value.trim(),
    status: document.getElementById('f-status').value,
    module: document.getElementById('f-module').value });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = filterHash(read());
  });
  for (const id of ['f-status', 'f-module'])
    document.getElementById(id).addEventListener('change', () => {
      location.hash = filterHash(read());
    });
  document.getElementById('f-clear').addEventListener('click', () => {
    location.hash = '#/';
  });
}

// ---- jobs -----------------------------------------------------------------

function newJob(id, module) {
  return { job: id, module, total: 0, pass: 0, fail: 0, last: 0, snapshot: 0,
    hosts: new Set() };
}

function addResult(r) {
  const [job, host, status, module, receivedAt] = r;
  let j = page.jobs.get(job);
  if (!j) {
    j = newJob(job, module);
    page.jobs.set(job, j);
  }
  if (page.job && page.job.id === job) jobResult(page.job, r);
  if (page.modHosts && module === page.filter.module && !page.modHosts.has(host)) {
    page.modHosts.add(host);
    page.fleetDirty = true;
  }
  if (page.host && page.host.name === host) reloadHostSoon();
  // Already in the snapshot this job was loaded from, or seen before.
  if (receivedAt <= j.snapshot || j.hosts.has(host)) return;
  j.hosts.add(host);
  j.total++;
  if (status === 'pass') j.pass++;
  else if (status === 'fail') j.fail++;
  j.last = Math.max(j.last, receivedAt);
  if (module && !j.module) j.module = module;
  j.changed = true;
  page.results++;
}

function setJobs(list) {
  for (const x of list) {
    const j = page.jobs.get(x.job) || { hosts: new Set() };
    // The archive's counts are the truth; results streamed after the
    // snapshot (received later) still count on top.
    Object.assign(j, { job: x.job, module: x.module || x.kind, total: x.total,
      pass: x.pass, fail: x.fail, last: x.last, snapshot: x.last, changed: true });
    if (x.expected !== undefined) j.expected = x.expected;
    j.hosts = new Set();
    page.jobs.set(x.job, j);
  }
  setModuleOptions();
}

function addAnnounce(a) {
  let j = page.jobs.get(a.job);
  if (!j) {
    j = newJob(a.job, a.module || a.job_kind || a.kind);
    j.last = a.received_at || Date.now();
    page.jobs.set(a.job, j);
  }
  j.expected = a.expected;
  j.changed = true;
  if (page.job && page.job.id === a.job && !page.job.announced) loadJob(page.job);
}

function renderJobs() {
  const mod = page.filter.module;
  const top = [...page.jobs.values()].filter((j) => !mod || j.module === mod)
    .sort((a, b) => b.last - a.last || (a.job < b.job ? -1 : 1)).slice(0, MAX_JOBS);
  const body = document.querySelector('#jobs tbody');
  const rows = top.map((j) => {
    const tr = el('tr', null, 'clickable');
    tr.dataset.job = j.job;
    tr.append(el('td', null), el('td', j.module || ''), el('td', j.expected ?? '', 'n expected'),
      el('td', j.total, 'n total'), el('td', j.pass, 'n pass'), el('td', j.fail, 'n fail'),
      el('td', j.total - j.pass - j.fail, 'n other'), el('td', fmtTime(j.last)));
    tr.firstChild.append(link(j.job, jobHash(j.job)));
    tr.addEventListener('click', (ev) => {
      if (ev.target.tagName !== 'A') location.hash = jobHash(j.job);
    });
    if (j.changed) {
      page.applied[j.job] = Date.now();
      j.changed = false;
    }
    return tr;
  });
  body.replaceChildren(...rows);
}

// ---- the job page ----------------------------------------------------------------

function openJob(id) {
  const j = { id, loaded: false, notFound: false, announced: false, announce: null,
    expected: new Set(), seen: new Map(), rows: new Map(), pending: [], open: new Set(),
    dirty: true, needSummary: new Set(), summaryBusy: false, drawn: false };
  page.job = j;
  page.marks.jobOpen = performance.now();
  document.getElementById('job-title').textContent = 'Job ' + id;
  document.getElementById('job-info').textContent = 'loading…';
  document.getElementById('job-counts').replaceChildren();
  chunked('job-missing', []);
  chunked('job-results', []);
  loadJob(j);
}

async function loadJob(j) {
  let d;
  try {
    d = await getJSON('api/jobs/' + encodeURIComponent(j.id));
  } catch (e) {
    // 404: neither an announce nor a result yet; they may come.
    if (e.status === 404) d = { notFound: true };
    else if (page.job === j) document.getElementById('job-info').textContent = e.message;
    if (!d) return;
  }
  page.marks.jobFetched = performance.now();
  later(() => { if (page.job === j) applyJob(j, d); });
}

function applyJob(j, d) {
  j.announced = !!d.announced;
  j.announce = d.announce || null;
  j.expected = new Set(d.expected || []);
  j.seen = new Map((d.missing || []).map((m) => [m.host, m]));
  // Results streamed while this was fetched (a reload) stay.
  const streamed = j.rows;
  j.rows = new Map();
  for (const r of d.results || []) setJobRow(j, r);
  for (const [h, r] of streamed) if (!j.rows.has(h)) j.rows.set(h, r);
  j.notFound = !!d.notFound && j.rows.size === 0;
  j.loaded = true;
  const p = j.pending;
  j.pending = [];
  for (const r of p) jobResult(j, r);
  j.dirty = true;
  const pj = page.jobs.get(j.id);
  if (pj && j.announced) pj.expected = j.expected.size;
}

function setJobRow(j, r) {
  const old = j.rows.get(r.host);
  const row = Object.assign(old || {}, r);
  row.el = null;   // drawn again
  j.rows.set(r.host, row);
}

// One result from the stream: [job, host, status, module, received_at].
function jobResult(j, r) {
  if (!j.loaded) {
    j.pending.push(r);
    return;
  }
  const [, host, status, module, receivedAt] = r;
  if (j.rows.has(host)) return;
  setJobRow(j, { host, status, module, received_at: receivedAt });
  j.needSummary.add(host);
  j.notFound = false;
  j.dirty = true;   // renderJob() asks for the summaries, once per frame
}

// The stream carries no summaries: one query per batch fetches those of the
// results received since the oldest waiting one (not one per result).
async function fillSummaries(j) {
  if (j.summaryBusy || j.needSummary.size === 0) return;
  j.summaryBusy = true;
  // Those waiting now get one round: one not found (not archived here, or
  // a clock far off) is shown without a summary rather than asked again.
  const round = new Set(j.needSummary);
  try {
    let oldest = Infinity;
    for (const h of round) oldest = Math.min(oldest, j.rows.get(h).received_at);
    // A minute of slack for the browser's and the server's clocks.
    const since = Math.max(1000, Date.now() - oldest + 60000);
    for (let off = 0; off < 50000 && j.needSummary.size > 0; off += 1000) {
      const d = await getJSON('api/results?job=' + encodeURIComponent(j.id) +
        '&since=' + since + 'ms&limit=1000&offset=' + off);
      if (page.job !== j) return;
      later(() => {
        for (const r of d.results) {
          if (!j.needSummary.has(r.host)) continue;
          j.needSummary.delete(r.host);
          delete r.output;   // fetched again on click
          delete r.data;
          setJobRow(j, r);
        }
        j.dirty = true;
      });
      if (d.results.length < 1000) break;
    }
  } catch (e) {
    console.warn(e);
  } finally {
    j.summaryBusy = false;
  }
  // More arrived meanwhile: the next round after this frame.
  later(() => {
    for (const h of round) {
      if (j.needSummary.delete(h)) j.rows.get(h).el = null;
    }
    j.dirty = true;   // and those that came meanwhile: the next round
  });
}

function jobCounts(j) {
  const c = { expected: j.expected.size, answered: 0, missing: 0, offline: 0, silent: 0,
    unexpected: 0, pass: 0, fail: 0, error: 0, timeout: 0, crashed: 0, rejected: 0, other: 0 };
  const missing = [];
  // As /api/jobs/<id> counts: answered are expected hosts with a result
  // (every result when nothing was announced); the others are unexpected.
  for (const r of j.rows.values()) {
    if (j.announced && !j.expected.has(r.host)) c.unexpected++;
    else c.answered++;
    if (r.status in c && r.status !== 'expected' && r.status !== 'answered') c[r.status]++;
    else c.other++;
  }
  for (const h of j.expected) {
    if (j.rows.has(h)) continue;
    const live = page.hosts.get(h);
    const seen = j.seen.get(h);
    const online = live ? live.state === 'online' : !!(seen && seen.online);
    missing.push({ host: h, online, at: live ? live.at : seen && seen.at });
    c.missing++;
    if (online) c.silent++; else c.offline++;
  }
  return { c, missing };
}

function missingRow(j, m) {
  const tr = el('tr', null, m.online ? 'silent' : 'offline');
  tr.dataset.host = m.host;
  const td = el('td');
  td.append(link(m.host, hostHash(m.host)));
  tr.append(td, el('td', m.online ? 'silent (online)' : 'offline', 'state'),
    el('td', fmtDate(m.at)));
  return tr;
}

function resultRow(j, r) {
  const tr = el('tr', null, 'clickable ' + (BAD.has(r.status) ? 'bad' : ''));
  tr.dataset.host = r.host;
  const td = el('td');
  td.append(link(r.host, hostHash(r.host)));
  if (j.announced && !j.expected.has(r.host)) td.append(el('span', ' unexpected', 'tag'));
  const took = r.finished_at && r.started_at ?
    ((r.finished_at - r.started_at) / 1000).toFixed(2) + ' s' : '';
  tr.append(td, el('td', r.status, 'status ' + r.status),
    el('td', r.summary || r.reason || (j.needSummary.has(r.host) ? '…' : ''), 'summary'),
    el('td', r.module || r.kind || ''), el('td', took, 'n'));
  tr.addEventListener('click', (ev) => {
    if (ev.target.tagName === 'A') return;
    if (j.open.has(r.host)) j.open.delete(r.host); else j.open.add(r.host);
    j.dirty = true;
    later(() => {});
  });
  return tr;
}

// Output and data of one result, fetched on the first click.
function detailRow(j, r) {
  if (r.detailEl) return r.detailEl;
  const tr = el('tr', null, 'detail');
  tr.dataset.host = r.host;
  const td = el('td');
  td.colSpan = 5;
  td.append(el('span', 'loading…'));
  tr.append(td);
  r.detailEl = tr;
  getJSON('api/results?job=' + encodeURIComponent(j.id) + '&host=' +
    encodeURIComponent(r.host) + '&limit=1').then((d) => {
    const x = d.results[0] || {};
    const parts = [];
    const info = [`exit ${x.exit_code ?? '–'}`, x.signal ? `signal ${x.signal}` : '',
      x.module_version ? `module ${x.module} ${x.module_version}` : '',
      x.agent_version ? `agent ${x.agent_version}` : '',
      x.started_at ? `started ${fmtDate(x.started_at)}` : ''].filter(Boolean).join(', ');
    parts.push(el('div', info, 'meta'));
    if (x.reason) parts.push(el('div', 'reason: ' + x.reason, 'meta'));
    parts.push(el('h4', 'output'), el('pre', x.output || '(none)', 'output'));
    parts.push(el('h4', 'data'),
      el('pre', x.data === undefined ? '(none)' : JSON.stringify(x.data, null, 2), 'data'));
    td.replaceChildren(...parts);
  }).catch((e) => td.replaceChildren(el('span', e.message, 'error')));
  return tr;
}

// Rows into the container's tables of CHUNK rows each (style.css: each
// table is laid out only near the viewport).  A detail row stays in the
// chunk of its result.
const CHUNK = 100;
function chunked(id, trs) {
  const box = document.getElementById(id);
  const tables = [...box.children].slice(1);   // the first holds the header
  let k = 0, n = 0;
  for (let i = 0; i < trs.length; i = n, k++) {
    n = i + CHUNK;
    if (n < trs.length && trs[n].classList.contains('detail')) n++;
    let t = tables[k];
    if (!t) {
      t = el('div', null, 'chunk');
      t.append(el('table'));
      t.firstChild.append(el('tbody'));
      box.append(t);
    }
    t.firstChild.tBodies[0].replaceChildren(...trs.slice(i, n));
  }
  for (; k < tables.length; k++) tables[k].remove();
}

function renderJob() {
  const j = page.job;
  if (!j || !j.dirty) return;
  j.dirty = false;
  if (j.needSummary.size > 0) fillSummaries(j);
  const t0 = performance.now();
  const info = document.getElementById('job-info');
  if (!j.loaded) return;
  const a = j.announce;
  if (a) {
    const f = (a.filter || []).map((p) => p.join(' ')).join('; ');
    info.textContent = [`${a.kind || ''} ${a.module || ''}`.trim(), `target ${a.target}`,
      f ? `filter ${f}` : '', a.operator ? `by ${a.operator}` : '',
      `issued ${fmtDate(a.issued_at)}`, a.timeout_ms ? `timeout ${a.timeout_ms / 1000} s` : '',
      `until ${fmtDate(a.not_after)}`].filter(Boolean).join(' · ');
  } else if (j.notFound) {
    info.textContent = 'not known to this server (yet): results will appear as they arrive';
  } else {
    info.textContent = 'not announced: the expected hosts are unknown, only results are shown';
  }
  const { c, missing } = jobCounts(j);
  const counts = [];
  for (const k of Object.keys(c)) {
    if (!j.announced && ['expected', 'missing', 'offline', 'silent', 'unexpected'].includes(k))
      continue;
    if (c[k] === 0 && !['expected', 'answered', 'missing', 'pass', 'fail'].includes(k)) continue;
    const s = el('span', null, 'count ' + k);
    s.dataset.k = k;
    s.append(el('b', c[k]), el('span', ' ' + k));
    counts.push(s);
  }
  document.getElementById('job-counts').replaceChildren(...counts);

  document.getElementById('job-missing-box').hidden = !j.announced || missing.length === 0;
  missing.sort((x, y) => (x.online === y.online ? (x.host < y.host ? -1 : 1) : x.online ? 1 : -1));
  chunked('job-missing', missing.slice(0, MAX_ROWS).map((m) => missingRow(j, m)));

  const rows = [...j.rows.values()].sort((x, y) => {
    const bx = x.status === 'pass' ? 1 : 0, by = y.status === 'pass' ? 1 : 0;
    return bx - by || (x.host < y.host ? -1 : x.host > y.host ? 1 : 0);
  });
  const trs = [];
  for (const r of rows.slice(0, MAX_ROWS)) {
    if (!r.el) r.el = resultRow(j, r);
    trs.push(r.el);
    if (j.open.has(r.host)) trs.push(detailRow(j, r));
  }
  chunked('job-results', trs);
  const more = [];
  if (rows.length > MAX_ROWS) more.push(`${rows.length - MAX_ROWS} more results not drawn`);
  if (missing.length > MAX_ROWS) more.push(`${missing.length - MAX_ROWS} more missing not drawn`);
  document.getElementById('job-more').textContent = more.join('; ');
  if (!j.drawn) {
    j.drawn = true;
    page.marks.jobDrawn = performance.now();
    page.marks.jobBuild = page.marks.jobDrawn - t0;
    // The next frame begins after this one was painted.
    requestAnimationFrame(() => { page.marks.jobPainted = performance.now(); });
  }
  page.marks.jobRendered = performance.now();
}

// ---- the host page ---------------------------------------------------------------

function openHost(name) {
  page.host = { name, data: null, dirty: false, busy: false };
  document.getElementById('host-title').textContent = 'Host ' + name;
  document.getElementById('host-info').textContent = 'loading…';
  for (const id of ['host-facts', 'host-update', 'host-presence', 'host-results'])
    document.querySelector('#' + id + ' tbody').replaceChildren();
  document.getElementById('host-facts-at').textContent = '';
  loadHost(page.host);
}

async function loadHost(h) {
  h.busy = true;
  try {
    const enc = encodeURIComponent(h.name);
    const [info, hist] = await Promise.all([
      // Without /api/hosts/<h> (an older server): the grid's presence.
      getJSON('api/hosts/' + enc).catch((e) => { if (e.status === 404) return null; throw e; }),
      getJSON('api/hosts/' + enc + '/history?limit=50'),
    ]);
    if (page.host !== h) return;
    later(() => { h.data = { info, hist }; h.dirty = true; });
  } catch (e) {
    if (page.host === h) document.getElementById('host-info').textContent = e.message;
  } finally {
    h.busy = false;
  }
}

// The open host changed (a status or a result): again, at most once a second.
function reloadHostSoon() {
  const h = page.host;
  if (!h || h.timer) return;
  h.timer = setTimeout(() => { h.timer = null; if (page.host === h) loadHost(h); }, 1000);
}

function kvRows(obj) {
  return Object.keys(obj).sort().map((k) => {
    const tr = el('tr');
    tr.dataset.k = k;
    tr.append(el('th', k), el('td', fmtValue(obj[k])));
    return tr;
  });
}

function renderHostPage() {
  const h = page.host;
  if (!h || !h.dirty || !h.data) return;
  h.dirty = false;
  const { info, hist } = h.data;
  const live = page.hosts.get(h.name);
  const st = info ? (info.online ? 'online' : 'offline') : live ? live.state : 'unknown';
  const parts = [st, `version ${(info || live || {}).version || '?'}`,
    `channel ${(info || live || {}).channel || '?'}`];
  if (info && info.groups && info.groups.length) parts.push('groups ' + info.groups.join(', '));
  if (info && info.reason) parts.push(info.reason);
  const at = info ? info.at : live && live.at;
  if (at) parts.push('since ' + fmtDate(at));
  const hi = document.getElementById('host-info');
  hi.textContent = parts.join(' · ');
  hi.className = 'info ' + st;
  hi.dataset.state = st;

  const facts = info && info.facts;
  document.querySelector('#host-facts tbody').replaceChildren(...(facts ? kvRows(facts) :
    [el('tr', null).appendChild(el('td', 'no facts stored')).parentNode]));
  document.getElementById('host-facts-at').textContent =
    info && info.facts_at ? '(' + fmtDate(info.facts_at) + ')' : '';
  const upd = info && info.update;
  document.querySelector('#host-update tbody').replaceChildren(...(upd ? kvRows(upd) :
    [el('tr', null).appendChild(el('td', 'no update reported')).parentNode]));

  const pres = (info && info.presence) || hist.presence || [];
  document.querySelector('#host-presence tbody').replaceChildren(...pres.map((p) => {
    const tr = el('tr', null, p.state);
    tr.append(el('td', p.state, 'state'), el('td', fmtDate(p.at)), el('td', p.version || ''),
      el('td', p.channel || ''), el('td', p.reason || ''));
    return tr;
  }));
  document.querySelector('#host-results tbody').replaceChildren(...hist.results.map((r) => {
    const tr = el('tr', null, BAD.has(r.status) ? 'bad' : '');
    tr.dataset.job = r.job;
    const td = el('td');
    td.append(link(r.job, jobHash(r.job)));
    tr.append(td, el('td', r.status, 'status ' + r.status), el('td', r.module || r.kind || ''),
      el('td', r.summary || r.reason || ''), el('td', fmtDate(r.received_at)));
    return tr;
  }));
}

// ---- routes ---------------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const qi = hash.indexOf('?');
  const path = qi < 0 ? hash : hash.slice(0, qi);
  const q = new URLSearchParams(qi < 0 ? '' : hash.slice(qi + 1));
  const parts = path.split('/').filter(Boolean).map((s) => {
    try { return decodeURIComponent(s); } catch (e) { return s; }
  });
  let view = 'fleet';
  if (parts[0] === 'jobs' && parts[1]) view = 'job';
  else if (parts[0] === 'hosts' && parts[1]) view = 'host';
  page.view = view;
  for (const v of ['fleet', 'job', 'host'])
    document.getElementById('view-' + v).hidden = v !== view;
  if (view !== 'job') page.job = null;
  if (view !== 'host') page.host = null;
  if (view === 'job') {
    if (!page.job || page.job.id !== parts[1]) openJob(parts[1]);
    document.title = 'muster job ' + parts[1];
  } else if (view === 'host') {
    openHost(parts[1]);
    document.title = 'muster host ' + parts[1];
  } else {
    document.title = 'muster fleet';
    applyFilters(readFilters(q));
  }
  window.scrollTo(0, 0);
}

// ---- the frame ------------------------------------------------------------------

function render() {
  page.frame = false;
  const q = page.queue;
  page.queue = [];
  for (const fn of q) fn();
  renderHosts();
  renderJobs();
  renderJob();
  renderHostPage();
  page.frames++;
  document.getElementById('summary').textContent =
    `${page.hosts.size} hosts, ${page.jobs.size} jobs`;
}

// ---- releases (/api/releases, halt.c): few rows that change slowly, so
// polled, not streamed ----------------------------------------------------------

function nextStep(r) {
  const now = Date.now();
  const s = (r.schedule || []).find(([at, pct]) => at > now && pct > r.rollout);
  return s ? `${s[1]}% at ${new Date(s[0]).toISOString().replace('.000', '')}` : '';
}

function setReleases(list) {
  const rows = list.map((r) => {
    const tr = el('tr');
    tr.dataset.channel = r.channel;
    const halt = r.halted ? `halted: ${r.halted.reason}` :
      r.halt_rule ? `at > ${r.halt_rule.failed_pct}% of >= ${r.halt_rule.min_hosts}` : '';
    tr.append(el('td', r.channel), el('td', r.version), el('td', r.rollout + '%', 'n'),
      el('td', nextStep(r)), el('td', r.attempted, 'n attempted'),
      el('td', r.healthy, 'n healthy'), el('td', r.testing, 'n testing'),
      el('td', r.failed, 'n failed'), el('td', r.pending, 'n pending'),
      el('td', halt, r.halted ? 'halt halted' : 'halt'));
    return tr;
  });
  document.querySelector('#releases tbody').replaceChildren(...rows);
}

function loadReleases() {
  getJSON('api/releases').then((r) => later(() => setReleases(r.releases)))
    .catch(() => {});
}

async function snapshot() {
  const [h, j] = await Promise.all([getJSON('api/hosts'), getJSON('api/jobs?limit=' + MAX_JOBS)]);
  later(() => {
    for (const x of h.hosts) setHost(x);
    setJobs(j.jobs);
  });
  loadReleases();
}

function resync() {
  snapshot().catch((e) => console.error(e));
  if (page.job) loadJob(page.job);
  if (page.host) loadHost(page.host);
}

function connect() {
  const es = new EventSource('api/events');
  const conn = document.getElementById('conn');
  let first = true;
  es.addEventListener('hello', () => {
    conn.textContent = 'live';
    conn.className = 'conn up';
    // Subscribed first, then the snapshot: nothing falls in between.  (A
    // job or host page opened before this loads itself, and what streamed
    // meanwhile is merged by host.)
    if (first) snapshot().catch((e) => console.error(e));
    else resync();
    first = false;
  });
  es.addEventListener('host', (e) => {
    const h = JSON.parse(e.data);
    later(() => setHost(h));
  });
  es.addEventListener('results', (e) => {
    const list = JSON.parse(e.data);
    later(() => { for (const r of list) addResult(r); });
  });
  es.addEventListener('announce', (e) => {
    const a = JSON.parse(e.data);
    later(() => addAnnounce(a));
  });
  es.addEventListener('resync', resync);
  es.onerror = () => {
    conn.textContent = 'reconnecting';
    conn.className = 'conn down';
  };
}

// The releases' counts move once a second on the server: every 5 s here.
setInterval(() => { if (page.view === 'fleet') loadReleases(); }, 5000);

// Other servers archive their share of results: catch up now and then.
setInterval(() => {
  getJSON('api/jobs?limit=' + MAX_JOBS).then((j) => later(() => setJobs(j.jobs)))
    .catch(() => {});
  // New hosts may match the fleet's filter now.
  if (page.view === 'fleet' && (page.filter.group || page.filter.fact || page.filter.module)) {
    page.matchStale = true;
    page.modStale = true;
    applyFilters(page.filter);
  }
}, 10000);

wireFilters();
window.addEventListener('hashchange', route);
route();
connect();
