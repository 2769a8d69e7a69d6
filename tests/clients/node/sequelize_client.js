// Sequelize over mysql2: sync(), create/findAll/update/destroy, bulkCreate, and
// transactions: managed (it sends `START TRANSACTION;` ... `COMMIT;`), unmanaged,
// rollback on throw, a nested transaction sharing the outer one with a savepoint.
'use strict';
const { Sequelize, DataTypes, Op } = require('sequelize');
const { env, emit, norm, guard } = require('./common');

const plain = (rows) => rows.map((r) => { const p = r.get({ plain: true }); return Object.keys(p).sort().map((k) => [k, norm(p[k])]); });

async function main() {
  const sequelize = new Sequelize(env.database, env.user, env.password, {
    host: env.host, port: env.port, dialect: 'mysql', logging: false, pool: { max: 2, min: 1 },
  });
  const Item = sequelize.define('Item', {
    id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: false },
    name: { type: DataTypes.STRING(40), allowNull: false },
    qty: { type: DataTypes.INTEGER, allowNull: false },
    price: { type: DataTypes.DECIMAL(10, 2), allowNull: true },
  }, { tableName: 'items', timestamps: false });
  const Note = sequelize.define('Note', { body: DataTypes.STRING(100) }, { tableName: 'notes', timestamps: false });
  const all = async () => plain(await Item.findAll({ order: [['id', 'ASC']] }));
  try {
    await guard('connect', async () => { await sequelize.authenticate(); return {}; });
    await guard('ddl.sync', async () => { await Item.sync(); await Note.sync(); return {}; });
    await guard('crud.create', async () => plain([await Item.create({ id: 1, name: 'apple', qty: 10, price: '1.50' })]));
    await guard('crud.bulk_create', async () => ({ n: (await Item.bulkCreate([
      { id: 2, name: 'pear', qty: 20, price: '2.25' }, { id: 3, name: 'plum', qty: 30 }, { id: 4, name: 'fig', qty: 40, price: '4.00' },
    ])).length }));
    await guard('crud.create_autoincrement', async () => ({ id: (await Note.create({ body: 'first' })).id }));
    await guard('crud.find_all', async () => ({ rows: await all() }));
    await guard('crud.where', async () => ({ rows: plain(await Item.findAll({ where: { qty: { [Op.gt]: 15 } }, order: [['id', 'ASC']] })) }));
    await guard('crud.update', async () => ({ result: norm(await Item.update({ qty: 11 }, { where: { id: 1 } })) }));
    await guard('crud.destroy', async () => ({ n: await Item.destroy({ where: { id: 4 } }) }));
    await guard('crud.count', async () => ({ n: await Item.count() }));

    await guard('tx.managed_commit', async () => {
      await sequelize.transaction(async (t) => {
        await Item.update({ qty: 100 }, { where: { id: 1 }, transaction: t });
        await Item.update({ qty: 200 }, { where: { id: 2 }, transaction: t });
      });
      return { rows: await all() };
    });
    await guard('tx.managed_rollback', async () => {
      let message = null;
      try {
        await sequelize.transaction(async (t) => {
          await Item.update({ qty: 0 }, { where: { id: 1 }, transaction: t });
          await Item.create({ id: 8, name: 'date', qty: 80 }, { transaction: t });
          throw new Error('abort transfer');
        });
      } catch (err) {
        message = err.message;
      }
      return { message, rows: await all() };
    });
    await guard('tx.unmanaged', async () => {
      const t = await sequelize.transaction();
      await Item.update({ qty: 5 }, { where: { id: { [Op.in]: [1, 2] } }, transaction: t });
      await t.rollback();
      return { rows: await all() };
    });
    await guard('tx.nested_savepoint', async () => {
      await sequelize.transaction(async (outer) => {
        await Item.update({ qty: 111 }, { where: { id: 1 }, transaction: outer });
        try {
          await sequelize.transaction({ transaction: outer }, async (inner) => {
            await Item.update({ qty: 222 }, { where: { id: 2 }, transaction: inner });
            throw new Error('inner abort');
          });
        } catch (err) {
          // rolled back to the savepoint; the outer transaction goes on
        }
        await Item.update({ qty: 333 }, { where: { id: 3 }, transaction: outer });
      });
      return { rows: await all() };
    });
    await guard('tx.failed_statement_inside', async () => {
      let error = null;
      try {
        await sequelize.transaction(async (t) => {
          await Item.create({ id: 9, name: 'lemon', qty: 9 }, { transaction: t });
          await Item.create({ id: 1, name: 'dup', qty: 1 }, { transaction: t });
        });
      } catch (err) {
        error = { name: err.name, errno: err.parent?.errno ?? null };
      }
      return { error, rows: await all() };
    });
    await guard('err.duplicate', async () => {
      try {
        await Item.create({ id: 1, name: 'dup', qty: 1 });
        return { created: true };
      } catch (err) {
        return { name: err.name, errno: err.parent?.errno ?? null, message: err.parent?.sqlMessage ?? null };
      }
    });
    await guard('final.items', async () => ({ rows: await all() }));
  } finally {
    await sequelize.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
