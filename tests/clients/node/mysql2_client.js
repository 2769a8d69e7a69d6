// The scenario through node `mysql2`: query (client-side escaping) for the shared
// steps, then execute() (server-side prepared statements, numbers bound as
// doubles), the promise API's beginTransaction/commit/rollback, LOAD DATA LOCAL INFILE
// (infileStreamFactory), and a pool.
'use strict';
const fs = require('fs');
const path = require('path');
const mysql = require('mysql2/promise');
const { env, scenario, emit, errorRecord, result, guard, norm } = require('./common');

async function step(conn, label, sql, params, method = 'query') {
  try {
    const [rows, fields] = await conn[method](sql, params || []);
    emit(label, result(rows, fields));
  } catch (err) {
    emit(label, errorRecord(err));
  }
}

async function main() {
  const opts = { host: env.host, port: env.port, user: env.user, password: env.password, database: env.database, charset: 'utf8mb4_general_ci' };
  let conn;
  try {
    conn = await mysql.createConnection(opts);
  } catch (err) {
    emit('connect.open', errorRecord(err));
    return;
  }
  emit('connect.open');
  for (const [label, sql, params] of scenario()) await step(conn, label, sql, params);

  await step(conn, 'execute.select', 'SELECT id, name, price FROM items WHERE id = ?', [2], 'execute');
  await step(conn, 'execute.reexecute', 'SELECT id, name, price FROM items WHERE id = ?', [7], 'execute');
  await step(conn, 'execute.insert', 'INSERT INTO items (id, name, qty, price) VALUES (?, ?, ?, ?)', [40, 'exec', 4, '4.40'], 'execute');
  await step(conn, 'execute.limit_number', 'SELECT id FROM items ORDER BY id LIMIT ?', [3], 'execute');
  await step(conn, 'execute.limit_string', 'SELECT id FROM items ORDER BY id LIMIT ?', ['3'], 'execute');
  await step(conn, 'execute.duplicate', 'INSERT INTO items (id, name, qty) VALUES (?, ?, ?)', [1, 'dup', 1], 'execute');
  await step(conn, 'execute.syntax_error', 'SELEC ?', [1], 'execute');

  await guard('helper.begin', () => conn.beginTransaction().then(() => ({})));
  await step(conn, 'helper.insert_then_rollback', "INSERT INTO items (id, name, qty, price) VALUES (20, 'rolled', 1, NULL)");
  await guard('helper.rollback', () => conn.rollback().then(() => ({})));
  await guard('helper.begin_again', () => conn.beginTransaction().then(() => ({})));
  await step(conn, 'helper.insert_then_commit', "INSERT INTO items (id, name, qty, price) VALUES (21, 'kept', 1, NULL)");
  await step(conn, 'helper.update_other_shard', 'UPDATE items SET qty = qty + 1 WHERE id = 2', [], 'execute');
  await guard('helper.commit', () => conn.commit().then(() => ({})));
  await step(conn, 'helper.check', 'SELECT id, qty FROM items WHERE id IN (2, 20, 21) ORDER BY id');
  // LOAD DATA LOCAL INFILE with the driver's infileStreamFactory: new rows, a duplicate
  // key (skipped), a bad number (a warning)
  await guard('load.local_infile', async () => {
    const file = path.join(env.workdir, 'mysql2_items.tsv');
    fs.writeFileSync(file, '50\tloaded a\t5\t5.50\n1\tduplicate\t0\t\\N\n51\tloaded b\tx\t\\N\n');
    const [r] = await conn.query({
      sql: `LOAD DATA LOCAL INFILE '${file}' INTO TABLE items`,
      infileStreamFactory: () => fs.createReadStream(file),
    });
    return { affected: r.affectedRows, info: r.info, warnings: r.warningStatus };
  });
  await step(conn, 'load.after', 'SELECT id, name, qty, price FROM items WHERE id >= 50 OR id = 1 ORDER BY id');
  // MariaDB's extended column metadata: a JSON column or expression comes back parsed
  await step(conn, 'types.json_ddl', 'CREATE TABLE docs (id INT PRIMARY KEY, doc JSON)');
  await step(conn, 'types.json_insert', `INSERT INTO docs VALUES (1, '{"a": [1, 2]}')`);
  for (const [label, sql, params, method] of [
    ['types.json_column', 'SELECT id, doc FROM docs', [], 'query'],
    ['types.json_column_execute', 'SELECT id, doc FROM docs WHERE id = ?', [1], 'execute'],
    ['types.json_over_items', "SELECT JSON_OBJECT('id', id) AS j FROM items ORDER BY id LIMIT 2", [], 'query'],
    ['types.json_aggregate', 'SELECT JSON_ARRAYAGG(id ORDER BY id) AS a FROM items WHERE id < 4', [], 'execute'],
  ]) {
    await guard(label, async () => {
      const [rows, fields] = await conn[method](sql, params);
      return { ...result(rows, fields), formats: fields.map((f) => f.extendedFormat ?? null) };
    });
  }
  // CLIENT_SESSION_TRACK: what the server reports of session state after each statement
  for (const [label, sql] of [
    ['track.time_zone', "SET time_zone = '+01:00'"],
    ['track.use', `USE ${env.database}`],
    ['track.names', 'SET NAMES utf8mb4'],
    ['track.autocommit', 'SET autocommit = 1'],
    ['track.user_variable', 'SET @tracked = 1'],
  ]) {
    await guard(label, async () => {
      const [r] = await conn.query(sql);
      return { changes: norm(r.stateChanges ?? null) };
    });
  }
  await conn.end();

  const pool = mysql.createPool({ ...opts, connectionLimit: 2 });
  await guard('pool.execute', async () => {
    const results = await Promise.all([1, 2, 3, 4].map((id) => pool.execute('SELECT id, name FROM items WHERE id = ?', [id]).then(([r, f]) => result(r, f))));
    return { results };
  });
  await guard('pool.transaction', async () => {
    const c = await pool.getConnection();
    try {
      await c.beginTransaction();
      await c.query('UPDATE items SET qty = 0 WHERE id IN (1, 2)');
      const [r, f] = await pool.query('SELECT id, qty FROM items WHERE id IN (1, 2) ORDER BY id');
      await c.rollback();
      return { other_during: result(r, f) };
    } finally {
      c.release();
    }
  });
  await step(pool, 'end.items', 'SELECT * FROM items ORDER BY id');
  await pool.end();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
