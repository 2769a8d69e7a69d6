// What the node client scripts share: the scenario, the transcript, value normalization.
'use strict';
const fs = require('fs');
const path = require('path');

const env = {
  host: process.env.XAP_HOST,
  port: Number(process.env.XAP_PORT),
  user: process.env.XAP_USER,
  password: process.env.XAP_PASSWORD,
  database: process.env.XAP_DATABASE,
  schema: process.env.XAP_SCHEMA || 'unsharded',
  workdir: process.env.XAP_WORKDIR || '.',
};

function scenario() {
  const text = fs.readFileSync(path.join(__dirname, '..', 'scenario.tsv'), 'utf8');
  const steps = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const [label, sql, ...raw] = line.split('\t');
    const params = raw.map((p) => (p.startsWith('i:') ? Number(p.slice(2)) : p.slice(2)));
    steps.push([label, sql, raw.length ? params : null]);
  }
  return steps;
}

function norm(value) {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value)) return 'buffer:' + value.toString('hex');
  if (value instanceof Date) return 'date:' + (isNaN(value) ? 'invalid' : value.toISOString());
  if (typeof value === 'bigint') return 'bigint:' + value.toString();
  if (typeof value === 'number' && !Number.isInteger(value)) return 'float:' + value;
  if (Array.isArray(value)) return value.map(norm);
  if (typeof value === 'object') {
    const out = {};
    for (const k of Object.keys(value).sort()) out[k] = norm(value[k]);
    return out;
  }
  return value;
}

function sortKeys(obj) {
  const out = {};
  for (const k of Object.keys(obj).sort()) out[k] = obj[k];
  return out;
}

function emit(label, record = {}) {
  process.stdout.write(JSON.stringify(sortKeys({ step: label, ...record })) + '\n');
}

function errorRecord(err) {
  return { error: err.errno ?? err.parent?.errno ?? null, message: err.sqlMessage ?? err.parent?.sqlMessage ?? String(err.message) };
}

// Rows of mysql/mysql2 results (objects keyed by column) as arrays in column order.
function result(rows, fields) {
  if (Array.isArray(rows)) {
    const columns = (fields || []).map((f) => f.name);
    return { columns, rows: rows.map((r) => columns.map((c) => norm(r[c]))) };
  }
  return { affected: rows.affectedRows, changed: rows.changedRows, insert_id: rows.insertId };
}

async function guard(label, fn) {
  try {
    emit(label, (await fn()) || {});
  } catch (err) {
    emit(label, errorRecord(err));
  }
}

module.exports = { env, scenario, norm, emit, errorRecord, result, guard };
