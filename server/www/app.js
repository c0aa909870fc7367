/* SPDX-License-Identifier: Apache-2.0 */
// The live page of muster-server: the fleet as a grid coloured by state,
// the latest jobs with counts filling in from server-sent events, a job's
// results (failures first) and a host's history on click.
//
// Messages only queue work; one requestAnimationFrame applies everything
// queued, so a burst of 10,000 results costs a few frames, not 10,000
// re-layouts.  All text goes in through textContent, never as HTML.
'use strict';

const MAX_JOBS = 20;
const page = {
  hosts: new Map(),        // name -> {state, version, channel, el}
  jobs: new Map(),         // id -> {job, module, total, pass, fail, last, hosts:Set}
  queue: [],               // functions to run at the next frame
  frame: false,
  applied: {},             // job id -> Date.now() of the frame that showed its counts
  frames: 0,
  results: 0,              // results applied from the stream
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

async function getJSON(url) {
  const r = await fetch(url, { cache: 'no-store' });
  if (!r.ok) throw new Error(url + ': ' + r.status);
  return r.json();
}

// ---- hosts ---------------------------------------------------------------

function setHost(h) {
  let e = page.hosts.get(h.host);
  if (!e) {
    e = { el: el('div', null, 'host') };
    e.el.dataset.host = h.host;
    e.el.addEventListener('click', () => showHost(h.host));
    page.hosts.set(h.host, e);
    page.newHosts = true;
  }
  if (e.at && h.at && h.at < e.at) return;
  Object.assign(e, { state: h.state, version: h.version, channel: h.channel, at: h.at });
  e.el.className = 'host ' + h.state;
  e.el.title = `${h.host}: ${h.state}, ${h.version || '?'} (${h.channel || '?'})`;
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
  let on = 0;
  for (const e of page.hosts.values()) if (e.state === 'online') on++;
  document.getElementById('nonline').textContent = on;
  document.getElementById('noffline').textContent = page.hosts.size - on;
}

// ---- jobs -----------------------------------------------------------------

function addResult(r) {
  const [job, host, status, module, receivedAt] = r;
  let j = page.jobs.get(job);
  if (!j) {
    j = { job, module, total: 0, pass: 0, fail: 0, last: 0, snapshot: 0, hosts: new Set() };
    page.jobs.set(job, j);
  }
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
    j.hosts = new Set();
    page.jobs.set(x.job, j);
  }
}

function fmtTime(ms) {
  return ms ? new Date(ms).toLocaleTimeString() : '';
}

function renderJobs() {
  const top = [...page.jobs.values()].sort((a, b) => b.last - a.last || (a.job < b.job ? -1 : 1))
    .slice(0, MAX_JOBS);
  const body = document.querySelector('#jobs tbody');
  const rows = top.map((j) => {
    const tr = el('tr', null, 'clickable');
    tr.dataset.job = j.job;
    tr.append(el('td', j.job), el('td', j.module || ''), el('td', j.total, 'n total'),
      el('td', j.pass, 'n pass'), el('td', j.fail, 'n fail'),
      el('td', j.total - j.pass - j.fail, 'n other'), el('td', fmtTime(j.last)));
    tr.addEventListener('click', () => showJob(j.job));
    if (j.changed) {
      page.applied[j.job] = Date.now();
      j.changed = false;
    }
    return tr;
  });
  body.replaceChildren(...rows);
}

// ---- details ----------------------------------------------------------------

function detail(title, cols, rows) {
  document.getElementById('detail').hidden = false;
  document.getElementById('detail-title').textContent = title;
  const t = document.getElementById('detail-table');
  const hr = el('tr');
  hr.append(...cols.map((c) => el('th', c[0])));
  t.tHead.replaceChildren(hr);
  t.tBodies[0].replaceChildren(...rows.map((r) => {
    const tr = el('tr');
    tr.append(...cols.map((c) => {
      const v = c[1](r);
      return el('td', v, c[2] === 'status' ? String(v) : c[2]);
    }));
    return tr;
  }));
}

async function showJob(id) {
  const d = await getJSON('api/jobs/' + encodeURIComponent(id) + '/results?limit=1000');
  detail('Job ' + id + ' (failures first)', [
    ['host', (r) => r.host], ['status', (r) => r.status, 'status'],
    ['summary', (r) => r.summary || r.reason || ''], ['module', (r) => r.module || r.kind],
    ['took', (r) => ((r.finished_at - r.started_at) / 1000).toFixed(2) + ' s'],
  ], d.results);
}

async function showHost(h) {
  const d = await getJSON('api/hosts/' + encodeURIComponent(h) + '/history?limit=100');
  detail('Host ' + h + ': recent results', [
    ['job', (r) => r.job], ['status', (r) => r.status, 'status'],
    ['module', (r) => r.module || r.kind], ['summary', (r) => r.summary || r.reason || ''],
    ['when', (r) => new Date(r.received_at).toLocaleString()],
  ], d.results);
}

// ---- the frame ------------------------------------------------------------------

function render() {
  page.frame = false;
  const q = page.queue;
  page.queue = [];
  for (const fn of q) fn();
  renderHosts();
  renderJobs();
  page.frames++;
  document.getElementById('summary').textContent =
    `${page.hosts.size} hosts, ${page.jobs.size} jobs`;
}

async function snapshot() {
  const [h, j] = await Promise.all([getJSON('api/hosts'), getJSON('api/jobs?limit=' + MAX_JOBS)]);
  later(() => {
    for (const x of h.hosts) setHost(x);
    setJobs(j.jobs);
  });
}

function connect() {
  const es = new EventSource('api/events');
  const conn = document.getElementById('conn');
  es.addEventListener('hello', () => {
    conn.textContent = 'live';
    conn.className = 'conn up';
    // Subscribed first, then the snapshot: nothing falls in between.
    snapshot().catch((e) => console.error(e));
  });
  es.addEventListener('host', (e) => {
    const h = JSON.parse(e.data);
    later(() => setHost(h));
  });
  es.addEventListener('results', (e) => {
    const list = JSON.parse(e.data);
    later(() => { for (const r of list) addResult(r); });
  });
  es.addEventListener('resync', () => snapshot().catch((e) => console.error(e)));
  es.onerror = () => {
    conn.textContent = 'reconnecting';
    conn.className = 'conn down';
  };
}

// Other servers archive their share of results: catch up now and then.
setInterval(() => {
  getJSON('api/jobs?limit=' + MAX_JOBS).then((j) => later(() => setJobs(j.jobs)))
    .catch(() => {});
}, 10000);

connect();
