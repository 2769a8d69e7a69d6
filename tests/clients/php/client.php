<?php
// The scenario through PHP: PDO (native or emulated prepares) or mysqli.
// Usage: php client.php pdo_native|pdo_emulated|mysqli
// After the shared steps: PDO's beginTransaction/commit/rollBack/inTransaction,
// prepared statements reused with new values, and mysqli's begin_transaction,
// savepoint/release_savepoint and prepare/bind_param.

$mode = $argv[1];
$host = getenv('XAP_HOST'); $port = (int)getenv('XAP_PORT');
$user = getenv('XAP_USER'); $pass = getenv('XAP_PASSWORD'); $db = getenv('XAP_DATABASE');

function emit($label, $record = []) {
    $record['step'] = $label;
    ksort($record);
    echo json_encode($record, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION), "\n";
}

function norm_rows($rows) {
    $out = [];
    foreach ($rows as $row) {
        $r = [];
        foreach ($row as $v) { $r[] = is_float($v) ? "float:" . var_export($v, true) : $v; }
        $out[] = $r;
    }
    return $out;
}

function scenario() {
    $steps = [];
    foreach (file(__DIR__ . '/../scenario.tsv', FILE_IGNORE_NEW_LINES) as $line) {
        if ($line === '' || $line[0] === '#') continue;
        $parts = explode("\t", $line);
        $label = array_shift($parts); $sql = array_shift($parts);
        $params = null;
        if ($parts) {
            $params = [];
            foreach ($parts as $p) { $params[] = substr($p, 0, 2) === 'i:' ? (int)substr($p, 2) : substr($p, 2); }
        }
        $steps[] = [$label, $sql, $params];
    }
    return $steps;
}

// ---- PDO ---------------------------------------------------------------------------------
function pdo_step($pdo, $label, $sql, $params = null) {
    try {
        if ($params === null) {
            $st = $pdo->query($sql);
        } else {
            $st = $pdo->prepare($sql);
            foreach ($params as $i => $v) { $st->bindValue($i + 1, $v, is_int($v) ? PDO::PARAM_INT : PDO::PARAM_STR); }
            $st->execute();
        }
        if ($st->columnCount() > 0) {
            $cols = [];
            for ($i = 0; $i < $st->columnCount(); $i++) { $cols[] = $st->getColumnMeta($i)['name']; }
            emit($label, ['columns' => $cols, 'rows' => norm_rows($st->fetchAll(PDO::FETCH_NUM))]);
        } else {
            emit($label, ['affected' => $st->rowCount(), 'insert_id' => $pdo->lastInsertId()]);
        }
    } catch (PDOException $e) {
        emit($label, ['error' => $e->errorInfo[1] ?? null, 'message' => $e->errorInfo[2] ?? $e->getMessage()]);
    }
}

function pdo_guard($label, $fn) {
    try { emit($label, $fn() ?: []); }
    catch (PDOException $e) { emit($label, ['error' => $e->errorInfo[1] ?? null, 'message' => $e->errorInfo[2] ?? $e->getMessage()]); }
}

function run_pdo($host, $port, $user, $pass, $db, $emulated) {
    try {
        $pdo = new PDO("mysql:host=$host;port=$port;dbname=$db;charset=utf8mb4", $user, $pass, [
            PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
            PDO::ATTR_EMULATE_PREPARES => $emulated,
        ]);
    } catch (PDOException $e) {
        emit('connect.open', ['error' => $e->getCode(), 'message' => $e->getMessage()]);
        return;
    }
    emit('connect.open', ['emulated' => (bool)$pdo->getAttribute(PDO::ATTR_EMULATE_PREPARES)]);
    foreach (scenario() as [$label, $sql, $params]) { pdo_step($pdo, $label, $sql, $params); }

    pdo_guard('helper.begin', fn() => ['ok' => $pdo->beginTransaction(), 'in' => $pdo->inTransaction()]);
    pdo_step($pdo, 'helper.insert_then_rollback', "INSERT INTO items (id, name, qty, price) VALUES (20, 'rolled', 1, NULL)");
    pdo_guard('helper.rollback', fn() => ['ok' => $pdo->rollBack(), 'in' => $pdo->inTransaction()]);
    pdo_guard('helper.begin_again', fn() => ['ok' => $pdo->beginTransaction()]);
    pdo_step($pdo, 'helper.insert_then_commit', "INSERT INTO items (id, name, qty, price) VALUES (21, 'kept', 1, NULL)");
    pdo_step($pdo, 'helper.update_other_shard', "UPDATE items SET qty = qty + 1 WHERE id = 2");
    pdo_guard('helper.commit', fn() => ['ok' => $pdo->commit(), 'in' => $pdo->inTransaction()]);
    pdo_step($pdo, 'helper.check', "SELECT id, qty FROM items WHERE id IN (2, 20, 21) ORDER BY id");

    pdo_guard('prepared.reuse', function () use ($pdo) {
        $st = $pdo->prepare("INSERT INTO items (id, name, qty, price) VALUES (:id, :name, :qty, :price)");
        $n = 0;
        foreach ([[30, 'a30', '3.30'], [31, 'a31', null], [32, 'a32', '3.32']] as [$id, $name, $price]) {
            $st->execute([':id' => $id, ':name' => $name, ':qty' => 3, ':price' => $price]);
            $n += $st->rowCount();
        }
        return ['affected' => $n];
    });
    pdo_guard('prepared.limit_string', function () use ($pdo) {
        $st = $pdo->prepare("SELECT id FROM items ORDER BY id LIMIT ?");
        $st->execute(['2']);  // execute() binds every value as a string
        return ['rows' => norm_rows($st->fetchAll(PDO::FETCH_NUM))];
    });
    pdo_guard('prepared.duplicate', function () use ($pdo) {
        $st = $pdo->prepare("INSERT INTO items (id, name, qty) VALUES (?, ?, ?)");
        $st->execute([1, 'dup', 1]);
        return ['affected' => $st->rowCount()];
    });
    pdo_step($pdo, 'end.items', "SELECT * FROM items ORDER BY id");
}

// ---- mysqli ------------------------------------------------------------------------------
function mysqli_result($m, $label, $res, $stmt = null) {
    if ($res instanceof mysqli_result) {
        $cols = array_map(fn($f) => $f->name, $res->fetch_fields());
        emit($label, ['columns' => $cols, 'rows' => norm_rows($res->fetch_all(MYSQLI_NUM))]);
    } else {
        $src = $stmt ?? $m;
        emit($label, ['affected' => $src->affected_rows, 'insert_id' => $src->insert_id]);
    }
}

function mysqli_step($m, $label, $sql, $params = null) {
    try {
        if ($params === null) {
            mysqli_result($m, $label, $m->query($sql));
        } else {
            $st = $m->prepare($sql);
            $types = implode('', array_map(fn($v) => is_int($v) ? 'i' : 's', $params));
            $st->bind_param($types, ...$params);
            $st->execute();
            mysqli_result($m, $label, $st->get_result(), $st);
            $st->close();
        }
    } catch (mysqli_sql_exception $e) {
        emit($label, ['error' => $e->getCode(), 'message' => $e->getMessage()]);
    }
}

function mysqli_guard($label, $fn) {
    try { emit($label, $fn() ?: []); }
    catch (mysqli_sql_exception $e) { emit($label, ['error' => $e->getCode(), 'message' => $e->getMessage()]); }
}

function run_mysqli($host, $port, $user, $pass, $db) {
    mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
    try {
        $m = new mysqli($host, $user, $pass, $db, $port);
        $m->set_charset('utf8mb4');
    } catch (mysqli_sql_exception $e) {
        emit('connect.open', ['error' => $e->getCode(), 'message' => $e->getMessage()]);
        return;
    }
    emit('connect.open');
    foreach (scenario() as [$label, $sql, $params]) { mysqli_step($m, $label, $sql, $params); }

    mysqli_guard('helper.begin_transaction', fn() => ['ok' => $m->begin_transaction()]);
    mysqli_step($m, 'helper.insert1', "INSERT INTO items (id, name, qty, price) VALUES (20, 'one', 1, NULL)");
    mysqli_guard('helper.savepoint', fn() => ['ok' => $m->savepoint('before_two')]);
    mysqli_step($m, 'helper.insert2', "INSERT INTO items (id, name, qty, price) VALUES (21, 'two', 1, NULL)");
    mysqli_step($m, 'helper.rollback_to', "ROLLBACK TO SAVEPOINT before_two");
    mysqli_guard('helper.release_savepoint', fn() => ['ok' => $m->release_savepoint('before_two')]);
    mysqli_guard('helper.commit', fn() => ['ok' => $m->commit()]);
    mysqli_step($m, 'helper.check', "SELECT id FROM items WHERE id IN (20, 21) ORDER BY id");
    mysqli_step($m, 'helper.restore', "DELETE FROM items WHERE id = 21");
    mysqli_guard('helper.autocommit_off', fn() => ['ok' => $m->autocommit(false)]);
    mysqli_step($m, 'helper.update', "UPDATE items SET qty = 7 WHERE id IN (1, 2)");
    mysqli_guard('helper.rollback', fn() => ['ok' => $m->rollback()]);
    mysqli_guard('helper.autocommit_on', fn() => ['ok' => $m->autocommit(true)]);
    mysqli_step($m, 'helper.check_rolled_back', "SELECT id, qty FROM items WHERE id IN (1, 2) ORDER BY id");
    mysqli_guard('prepared.reexecute', function () use ($m) {
        $st = $m->prepare("SELECT name FROM items WHERE id = ?");
        $out = [];
        foreach ([1, 2, 999] as $id) {
            $st->bind_param('i', $id);
            $st->execute();
            $out[] = norm_rows($st->get_result()->fetch_all(MYSQLI_NUM));
        }
        $st->close();
        return ['rows' => $out];
    });
    mysqli_guard('multi_query', function () use ($m) {
        $m->multi_query("SELECT 1 AS a; SELECT COUNT(*) AS n FROM items; UPDATE items SET qty = qty WHERE id = 1");
        $out = [];
        do {
            if ($r = $m->store_result()) { $out[] = norm_rows($r->fetch_all(MYSQLI_NUM)); $r->free(); }
            else { $out[] = ['affected' => $m->affected_rows]; }
        } while ($m->more_results() && $m->next_result());
        return ['results' => $out];
    });
    mysqli_step($m, 'end.items', "SELECT * FROM items ORDER BY id");
}

if ($mode === 'mysqli') { run_mysqli($host, $port, $user, $pass, $db); }
else { run_pdo($host, $port, $user, $pass, $db, $mode === 'pdo_emulated'); }
