// Component entry point: binds app.js to the host's imports and exports
// `tarn:postgres/handler@0.1.0`.

import { Database, Transaction } from 'tarn:postgres/database@0.1.0';
import { getEnvironment } from 'wasi:cli/environment@0.2.6';
import { DbFailure, handle as handleWith, settingsFromEnv } from './app.js';

// An import returning `result<T, error>` returns T or throws; the thrown
// value carries the `error` variant as `payload`.
function unwrap(e) {
  if (e && typeof e === 'object') {
    if (e.payload && typeof e.payload === 'object' && 'tag' in e.payload) return e.payload;
    if ('tag' in e) return e;
  }
  return { tag: 'connection-failed', val: String(e) };
}

function call(f) {
  try {
    return f();
  } catch (e) {
    throw new DbFailure(unwrap(e));
  }
}

class Tx {
  constructor(tx) {
    this.tx = tx;
  }
  query(sql, params) {
    return call(() => this.tx.query(sql, params));
  }
  execute(sql, params) {
    return call(() => this.tx.execute(sql, params));
  }
  commit() {
    return call(() => Transaction.commit(this.tx));
  }
  rollback() {
    return call(() => Transaction.rollback(this.tx));
  }
}

class Db {
  constructor(db) {
    this.db = db;
  }
  query(sql, params) {
    return call(() => this.db.query(sql, params));
  }
  execute(sql, params) {
    return call(() => this.db.execute(sql, params));
  }
  begin(options) {
    return new Tx(call(() => this.db.begin(options)));
  }
  health() {
    return this.db.health();
  }
  poolStats() {
    return this.db.poolStats();
  }
  poolConfig() {
    return this.db.poolConfig();
  }
}

const backend = {
  open(name) {
    return new Db(call(() => Database.open(name)));
  },
};

export const handler = {
  handle(req) {
    const env = new Map(getEnvironment());
    return handleWith(backend, settingsFromEnv((k) => env.get(k)), req);
  },
};
