// knex over mysql2: the schema builder, CRUD through the query builder, knex.raw with
// bindings, and transactions: knex.transaction() (it sends `BEGIN;`), a nested
// transaction (a SAVEPOINT), rollback by throwing, a failed statement inside one.
'use strict';
const knexFactory = require('knex');
const { env, emit, norm, guard } = require('./common');

const rowsOf = (rows) => rows.map((r) => Object.keys(r).map((k) => norm(r[k])));

async function main() {
  const knex = knexFactory({
    client: 'mysql2',
    connection: { host: env.host, port: env.port, user: env.user, password: env.password, database: env.database, charset: 'utf8mb4' },
    pool: { min: 1, max: 2 },
  });
  try {
    await guard('connect', async () => ({ rows: rowsOf((await knex.raw('SELECT 1 AS one'))[0]) }));
    await guard('ddl.items', () =>
      knex.schema.createTable('items', (t) => {
        t.integer('id').primary();
        t.string('name', 40).notNullable();
        t.integer('qty').notNullable();
        t.decimal('price', 10, 2).nullable();
      }).then(() => ({})));
    await guard('ddl.notes', () => knex.schema.createTable('notes', (t) => { t.increments('id'); t.string('body', 100); }).then(() => ({})));
    await guard('crud.insert', async () => ({ result: norm(await knex('items').insert([
      { id: 1, name: 'apple', qty: 10, price: '1.50' },
      { id: 2, name: 'pear', qty: 20, price: '2.25' },
      { id: 3, name: 'plum', qty: 30, price: null },
      { id: 4, name: 'fig', qty: 40, price: '4.00' },
    ])) }));
    await guard('crud.insert_autoincrement', async () => ({ ids: await knex('notes').insert({ body: 'first' }) }));
    await guard('crud.select', async () => ({ rows: rowsOf(await knex('items').select('id', 'name', 'price').orderBy('id')) }));
    await guard('crud.where', async () => ({ rows: rowsOf(await knex('items').where('qty', '>', 15).andWhere('id', '<', 4).orderBy('id')) }));
    await guard('crud.update', async () => ({ affected: await knex('items').whereIn('id', [1, 2]).increment('qty', 1) }));
    await guard('crud.delete', async () => ({ affected: await knex('items').where({ id: 4 }).del() }));
    await guard('crud.count', async () => ({ rows: rowsOf(await knex('items').count({ n: '*' }).sum({ total: 'qty' })) }));
    await guard('raw.bindings', async () => ({ rows: rowsOf((await knex.raw('SELECT id FROM items WHERE id IN (?, ?) ORDER BY id LIMIT ?', [1, 3, 5]))[0]) }));

    await guard('tx.commit', async () => {
      await knex.transaction(async (trx) => {
        await trx('items').where({ id: 1 }).update({ qty: 100 });
        await trx('items').where({ id: 2 }).update({ qty: 200 });
      });
      return { rows: rowsOf(await knex('items').select('id', 'qty').whereIn('id', [1, 2]).orderBy('id')) };
    });
    await guard('tx.rollback_by_throwing', async () => {
      let message = null;
      try {
        await knex.transaction(async (trx) => {
          await trx('items').where({ id: 1 }).update({ qty: 0 });
          await trx('items').insert({ id: 8, name: 'date', qty: 80, price: null });
          throw new Error('abort transfer');
        });
      } catch (err) {
        message = err.message;
      }
      return { message, rows: rowsOf(await knex('items').select('id', 'qty').orderBy('id')) };
    });
    await guard('tx.nested_savepoint', async () => {
      await knex.transaction(async (trx) => {
        await trx('items').where({ id: 1 }).update({ qty: 111 });
        try {
          await trx.transaction(async (inner) => {
            await inner('items').where({ id: 2 }).update({ qty: 222 });
            throw new Error('inner abort');
          });
        } catch (err) {
          // the inner transaction rolled back to its savepoint; the outer one goes on
        }
        await trx('items').where({ id: 3 }).update({ qty: 333 });
      });
      return { rows: rowsOf(await knex('items').select('id', 'qty').orderBy('id')) };
    });
    await guard('tx.failed_statement_inside', async () => {
      let error = null;
      try {
        await knex.transaction(async (trx) => {
          await trx('items').insert({ id: 9, name: 'lemon', qty: 9, price: null });
          await trx('items').insert({ id: 1, name: 'dup', qty: 1, price: null });
        });
      } catch (err) {
        error = { errno: err.errno, message: err.sqlMessage };
      }
      return { error, rows: rowsOf(await knex('items').select('id').orderBy('id')) };
    });
    await guard('tx.manual', async () => {
      const trx = await knex.transaction();
      await trx('items').insert({ id: 10, name: 'melon', qty: 10, price: '1.00' });
      await trx.rollback();
      return { rows: rowsOf(await knex('items').select('id').where({ id: 10 })) };
    });
    await guard('err.duplicate', () => knex('items').insert({ id: 1, name: 'dup', qty: 1, price: null }));
    await guard('final.items', async () => ({ rows: rowsOf(await knex('items').orderBy('id')) }));
  } finally {
    await knex.destroy();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
