// The scenario through the node `mysql` driver: query with ? placeholders (escaped
// client-side), beginTransaction/commit/rollback, and a pool.
'use strict';
const mysql = require('mysql');
const { env, scenario, emit, errorRecord, result, guard } = require('./common');

function q(conn, sql, params) {
  return new Promise((resolve, reject) => {
    conn.query(sql, params || [], (err, rows, fields) => (err ? reject(err) : resolve(result(rows, fields))));
  });
}
const call = (conn, method) => new Promise((resolve, reject) => conn[method]((err) => (err ? reject(err) : resolve({}))));

async function step(conn, label, sql, params) {
  try {
    emit(label, await q(conn, sql, params));
  } catch (err) {
    emit(label, errorRecord(err));
  }
}

async function main() {
  const opts = { host: env.host, port: env.port, user: env.user, password: env.password, database: env.database, charset: 'utf8mb4_general_ci' };
  const conn = mysql.createConnection(opts);
  try {
    await call(conn, 'connect');
  } catch (err) {
    emit('connect.open', errorRecord(err));
    return;
  }
  emit('connect.open');
  for (const [label, sql, params] of scenario()) await step(conn, label, sql, params);

  await guard('helper.begin', () => call(conn, 'beginTransaction'));
  await step(conn, 'helper.insert_then_rollback', "INSERT INTO items (id, name, qty, price) VALUES (20, 'rolled', 1, NULL)");
  await guard('helper.rollback', () => call(conn, 'rollback'));
  await guard('helper.begin_again', () => call(conn, 'beginTransaction'));
  await step(conn, 'helper.insert_then_commit', "INSERT INTO items (id, name, qty, price) VALUES (21, 'kept', 1, NULL)");
  await step(conn, 'helper.update_other_shard', 'UPDATE items SET qty = qty + 1 WHERE id = 2');
  await guard('helper.commit', () => call(conn, 'commit'));
  await step(conn, 'helper.check', 'SELECT id, qty FROM items WHERE id IN (2, 20, 21) ORDER BY id');
  await step(conn, 'helper.escape_object', 'INSERT INTO items SET ?', { id: 30, name: "o'brien", qty: 3, price: null });
  await step(conn, 'helper.restore', "INSERT IGNORE INTO items (id, name, qty, price) VALUES (30, 'o''brien', 3, NULL)");
  await step(conn, 'helper.bulk_values', 'INSERT INTO items (id, name, qty, price) VALUES ?', [[[31, 'b31', 3, '3.10'], [32, 'b32', 3, null]]]);
  await new Promise((resolve) => conn.end(resolve));

  const pool = mysql.createPool({ ...opts, connectionLimit: 2 });
  await guard('pool.queries', async () => {
    const results = await Promise.all([1, 2, 3, 4].map((id) => q(pool, 'SELECT id, name FROM items WHERE id = ?', [id])));
    return { results };
  });
  await guard('pool.transaction', async () => {
    const c = await new Promise((resolve, reject) => pool.getConnection((e, c) => (e ? reject(e) : resolve(c))));
    try {
      await call(c, 'beginTransaction');
      await q(c, 'UPDATE items SET qty = 0 WHERE id IN (1, 2)');
      const inside = await q(pool, 'SELECT id, qty FROM items WHERE id IN (1, 2) ORDER BY id');
      await call(c, 'rollback');
      return { other_during: inside };
    } finally {
      c.release();
    }
  });
  await step(pool, 'end.items', 'SELECT * FROM items ORDER BY id');
  await new Promise((resolve) => pool.end(resolve));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
