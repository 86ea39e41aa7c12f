// The duplex dashboard: polls the admin server's JSON API once a second and draws it.
// Plain JavaScript and canvas, served from the binary; no build step.
'use strict';

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2'];
let token = sessionStorage.getItem('duplex-token') || '';
const hash = new URLSearchParams(location.hash.slice(1));
if (hash.get('token')) {
  token = hash.get('token');
  sessionStorage.setItem('duplex-token', token);
  history.replaceState(null, '', location.pathname);
}

const $ = (sel) => document.querySelector(sel);
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token) headers['Authorization'] = 'Bearer ' + token;
  const res = await fetch(path, Object.assign({}, options, { headers }));
  if (res.status === 401) {
    $('#auth').hidden = false;
    throw new Error('the admin server needs a token');
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.status + ' ' + res.statusText);
  return body;
}

function showError(e) {
  const box = $('#error');
  box.textContent = e ? String(e.message || e) : '';
  box.hidden = !e;
}

function display(v) {
  if (v === null || v === undefined) return 'NULL';
  if (v === '') return '(empty)';
  if (typeof v === 'object' && v.$blob !== undefined) return '<blob ' + v.$blob.length / 2 + ' bytes>';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function seconds(s) {
  if (s < 1) return (s * 1000).toFixed(0) + ' ms';
  if (s < 120) return s.toFixed(1) + ' s';
  return (s / 60).toFixed(1) + ' min';
}

function drawChart(canvas, series, unit, objective) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height, left = 44, bottom = 18;
  ctx.clearRect(0, 0, w, h);
  let max = objective || 0;
  let tmin = Infinity, tmax = -Infinity;
  for (const s of series) {
    for (const [t, v] of s.points) {
      max = Math.max(max, v);
      tmin = Math.min(tmin, t);
      tmax = Math.max(tmax, t);
    }
  }
  max = max > 0 ? max * 1.15 : 1;
  if (!isFinite(tmin) || tmax === tmin) { tmin = Date.now() - 60000; tmax = Date.now(); }
  const x = (t) => left + (w - left - 6) * (t - tmin) / (tmax - tmin);
  const y = (v) => (h - bottom) - (h - bottom - 6) * v / max;
  ctx.strokeStyle = '#e5e7eb';
  ctx.fillStyle = '#6b7280';
  ctx.font = '11px sans-serif';
  for (let i = 0; i <= 4; i++) {
    const v = max * i / 4;
    ctx.beginPath(); ctx.moveTo(left, y(v)); ctx.lineTo(w, y(v)); ctx.stroke();
    ctx.fillText(v >= 100 ? v.toFixed(0) : v.toFixed(1), 2, y(v) + 4);
  }
  const span = (tmax - tmin) / 1000;
  ctx.fillText('-' + seconds(span), left, h - 4);
  ctx.fillText('now', w - 26, h - 4);
  if (objective) {
    ctx.strokeStyle = '#b91c1c';
    ctx.setLineDash([4, 4]);
    ctx.beginPath(); ctx.moveTo(left, y(objective)); ctx.lineTo(w, y(objective)); ctx.stroke();
    ctx.setLineDash([]);
  }
  series.forEach((s, i) => {
    ctx.strokeStyle = COLORS[i % COLORS.length];
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.points.forEach(([t, v], j) => (j ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
    ctx.stroke();
    ctx.lineWidth = 1;
  });
}

function renderOverview(o) {
  const badge = $('#ready');
  badge.textContent = o.ready ? 'ready' : 'not ready';
  badge.className = 'badge ' + (o.ready ? 'ok' : 'bad');
  $('#updated').textContent = 'updated ' + new Date(o.time_ms).toLocaleTimeString();
  $('#objective').textContent = 'objective ' + seconds(o.objective_seconds);
  const alerts = $('#alerts');
  alerts.replaceChildren(...o.endpoints.filter((e) => e.alerting)
    .map((e) => el('div', { class: 'alert', 'data-alert': e.name }, '⚠ ' + e.alert)));
  const rows = o.endpoints.map((e) => el('tr', { 'data-endpoint': e.name },
    el('td', {}, el('b', {}, e.name)),
    el('td', { class: 'state ' + (e.connected ? 'ok' : 'bad'), title: e.last_error || '' },
      e.stopped ? 'stopped' : e.connected ? 'connected' : 'unreachable'),
    el('td', { class: 'num' }, seconds(e.lag_seconds)),
    el('td', { class: 'num' }, e.capture_backlog < 0 ? 'unknown' : e.capture_backlog),
    el('td', { class: 'num' }, e.apply_backlog < 0 ? '?' : e.apply_backlog),
    el('td', { class: 'num' }, e.captured),
    el('td', { class: 'num' }, e.applied),
    el('td', { class: 'num' }, e.dead_letters < 0 ? '?' : e.dead_letters)));
  $('#endpoints tbody').replaceChildren(...rows);
  const names = o.endpoints.map((e) => e.name);
  const rate = names.map((n) => ({ name: n, points: [] }));
  const lag = names.map((n) => ({ name: n, points: [] }));
  for (let i = 0; i < o.history.length; i++) {
    const h = o.history[i], prev = o.history[i - 1];
    names.forEach((n, k) => {
      const cur = h.endpoints[n];
      if (!cur) return;
      lag[k].points.push([h.time_ms, cur.lag_seconds]);
      const p = prev && prev.endpoints[n];
      if (p) {
        const dt = (h.time_ms - prev.time_ms) / 1000;
        rate[k].points.push([h.time_ms, dt > 0 ? Math.max(0, cur.applied - p.applied) / dt : 0]);
      }
    });
  }
  drawChart($('#throughput'), rate, 'rows/s');
  drawChart($('#lag'), lag, 's', o.objective_seconds);
  $('#legend').replaceChildren(...names.map((n, i) =>
    el('span', {}, el('i', { style: 'background:' + COLORS[i % COLORS.length] }), n)));
}

async function resolve(id, body, row) {
  row.querySelectorAll('button').forEach((b) => (b.disabled = true));
  try {
    await api('/api/v1/conflicts/' + id + '/resolve', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    showError(null);
  } catch (e) {
    showError(e);
  }
  refreshConflicts();
}

function renderConflicts(list) {
  const open = list.filter((c) => c.status === 'open');
  $('#conflict-count').textContent = open.length ? '(' + open.length + ')' : '';
  $('#no-conflicts').hidden = open.length > 0;
  const rows = open.map((c) => {
    const row = el('tr', { 'data-conflict-id': c.id });
    const sides = el('div', { class: 'sides' });
    for (const [ep, side] of Object.entries(c.values)) {
      const deleted = side.deleted === true;
      sides.append(el('div', { class: 'side', 'data-side': ep },
        el('div', { class: 'ep' }, ep + (side.ts ? ' · ' + new Date(side.ts).toLocaleString() : '')),
        el('div', { class: 'val' }, deleted ? '(deleted)' : display(side.value)),
        deleted ? '' : el('button', {
          'data-take': ep, onclick: () => resolve(c.id, { take: ep }, row),
        }, 'Take ' + ep)));
    }
    const input = el('input', { type: 'text', placeholder: 'JSON or text', 'data-value-input': c.id });
    const own = el('div', {}, input, ' ', el('button', {
      class: 'secondary', 'data-use-value': c.id,
      onclick: () => {
        let v;
        try { v = JSON.parse(input.value); } catch (e) { v = input.value; }
        resolve(c.id, { value: v }, row);
      },
    }, 'Use value'));
    row.append(el('td', {}, c.id), el('td', {}, c.collection + ' ', el('code', {}, JSON.stringify(c.key))),
      el('td', {}, c.field || '(row)'), el('td', { class: 'val' }, display(c.base)),
      el('td', {}, sides), el('td', {}, own));
    return row;
  });
  const body = $('#conflicts tbody');
  // Keep what an operator is typing: only redraw when the queue changed.
  const key = JSON.stringify(open.map((c) => [c.id, c.values]));
  if (body.dataset.key !== key) {
    body.dataset.key = key;
    body.replaceChildren(...rows);
  }
}

async function retry(id, button) {
  button.disabled = true;
  try {
    await api('/api/v1/dead-letters/' + id + '/retry', { method: 'POST' });
    showError(null);
  } catch (e) {
    showError(e);
  }
  refreshDead();
}

async function drop(id, button) {
  if (!confirm('Drop dead letter ' + id + '? Its writes will never be applied; the records may ' +
      'stay different on that endpoint until they change again.')) return;
  button.disabled = true;
  try {
    await api('/api/v1/dead-letters/' + id, { method: 'DELETE' });
    showError(null);
  } catch (e) {
    showError(e);
  }
  refreshDead();
}

function renderDead(list) {
  $('#dead-count').textContent = list.length ? '(' + list.length + ')' : '';
  $('#no-dead').hidden = list.length > 0;
  $('#dead-letters tbody').replaceChildren(...list.map((d) => {
    const button = el('button', { 'data-retry': d.id }, d.retry_requested ? 'Retrying…' : 'Retry');
    button.onclick = () => retry(d.id, button);
    if (d.retry_requested) button.disabled = true;
    const dropButton = el('button', { 'data-drop': d.id }, 'Drop');
    dropButton.onclick = () => drop(d.id, dropButton);
    const records = d.ops.map((op) => op.collection + ' ' + JSON.stringify(op.key)).join(', ');
    return el('tr', { 'data-dead-letter-id': d.id }, el('td', {}, d.id), el('td', {}, d.endpoint),
      el('td', {}, el('code', {}, records)), el('td', {}, d.reason),
      el('td', {}, new Date(d.created_at).toLocaleString()), el('td', {}, button, ' ', dropButton));
  }));
}

async function refreshOverview() { renderOverview(await api('/api/v1/overview')); }
async function refreshConflicts() { renderConflicts(await api('/api/v1/conflicts')); }
async function refreshDead() { renderDead(await api('/api/v1/dead-letters')); }

async function tick() {
  try {
    await Promise.all([refreshOverview(), refreshConflicts(), refreshDead()]);
    showError(null);
  } catch (e) {
    showError(e);
    $('#ready').textContent = 'no data';
    $('#ready').className = 'badge bad';
  }
}

$('#token-save').onclick = () => {
  token = $('#token').value;
  sessionStorage.setItem('duplex-token', token);
  $('#auth').hidden = true;
  tick();
};
tick();
setInterval(tick, 1000);
