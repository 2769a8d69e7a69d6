// The scenario through MariaDB Connector/J (JDBC), run as a single-file program:
//   java -cp mariadb-java-client.jar ConnectorJ.java default|serverprep|clientprep
// "default" connects with a bare URL (the driver's defaults), the others set
// useServerPrepStmts=true/false. After the shared steps (PreparedStatement for
// those with parameters): setAutoCommit(false), setSavepoint/rollback(sp)/
// releaseSavepoint, commit/rollback, setQueryTimeout (Connector/J sends
// SET STATEMENT max_statement_time=... FOR ...; one that fires), cancel() from
// another thread (KILL QUERY over a second connection), executeBatch.
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.*;
import java.util.*;

public class ConnectorJ {
    static final StringBuilder out = new StringBuilder();

    static String q(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c)); else b.append(c);
            }
        }
        return b.append('"').toString();
    }

    static String val(Object v) {
        if (v == null) return "null";
        if (v instanceof Integer || v instanceof Long || v instanceof Short) return v.toString();
        if (v instanceof Boolean) return v.toString();
        if (v instanceof BigDecimal) return q("decimal:" + ((BigDecimal) v).toPlainString());
        if (v instanceof Double || v instanceof Float) return q("float:" + v);
        if (v instanceof byte[]) return q("bytes:" + HexFormat.of().formatHex((byte[]) v));
        if (v instanceof List) {
            StringJoiner j = new StringJoiner(", ", "[", "]");
            for (Object o : (List<?>) v) j.add(val(o));
            return j.toString();
        }
        if (v instanceof String) return q((String) v);
        return q(v.getClass().getSimpleName() + ":" + v);
    }

    static void emit(String label, Map<String, Object> record) {
        TreeMap<String, Object> m = new TreeMap<>(record);
        m.put("step", label);
        StringJoiner j = new StringJoiner(", ", "{", "}");
        for (Map.Entry<String, Object> e : m.entrySet()) j.add(q(e.getKey()) + ": " + val(e.getValue()));
        System.out.println(j);
        System.out.flush();
    }

    static Map<String, Object> error(SQLException e) {
        Map<String, Object> m = new HashMap<>();
        m.put("error", e.getErrorCode());
        // Connector/J prefixes the server's message with its own context; keep the server's part.
        String msg = String.valueOf(e.getMessage());
        int nl = msg.indexOf('\n');
        msg = nl >= 0 ? msg.substring(0, nl) : msg;
        // "(conn=N) " names the connection, which differs between any two connections
        // (and sometimes happens to be equal): it is not part of what is compared
        m.put("message", msg.replaceFirst("^\\(conn=\\d+\\) ", ""));
        m.put("sqlstate", e.getSQLState());
        return m;
    }

    static Map<String, Object> read(Statement st, boolean hasResult) throws SQLException {
        Map<String, Object> m = new HashMap<>();
        if (hasResult) {
            try (ResultSet rs = st.getResultSet()) {
                ResultSetMetaData md = rs.getMetaData();
                List<Object> cols = new ArrayList<>();
                for (int i = 1; i <= md.getColumnCount(); i++) cols.add(md.getColumnLabel(i));
                List<Object> rows = new ArrayList<>();
                while (rs.next()) {
                    List<Object> row = new ArrayList<>();
                    for (int i = 1; i <= md.getColumnCount(); i++) row.add(rs.getObject(i));
                    rows.add(row);
                }
                m.put("columns", cols);
                m.put("rows", rows);
            }
        } else {
            m.put("affected", st.getUpdateCount());
        }
        return m;
    }

    static void step(Connection c, String label, String sql, List<Object> params) {
        try {
            if (params == null) {
                try (Statement st = c.createStatement()) {
                    emit(label, read(st, st.execute(sql)));
                }
            } else {
                try (PreparedStatement ps = c.prepareStatement(sql)) {
                    for (int i = 0; i < params.size(); i++) {
                        Object p = params.get(i);
                        if (p instanceof Integer) ps.setInt(i + 1, (Integer) p); else ps.setString(i + 1, (String) p);
                    }
                    emit(label, read(ps, ps.execute()));
                }
            }
        } catch (SQLException e) {
            emit(label, error(e));
        }
    }

    interface Action { Map<String, Object> run() throws SQLException; }

    static void guard(String label, Action a) {
        try {
            Map<String, Object> r = a.run();
            emit(label, r == null ? Map.of() : r);
        } catch (SQLException e) {
            emit(label, error(e));
        }
    }

    // Runs `a` while another thread calls st.cancel() every 200 ms until it ends (the
    // driver sends KILL QUERY <connection id> over a second connection; one that reaches
    // an idle connection does nothing, so a cancel cannot come too early).
    static Map<String, Object> cancelled(Statement st, Action a) throws SQLException {
        final boolean[] done = {false};
        Thread canceller = new Thread(() -> {
            try {
                while (true) {
                    Thread.sleep(200);
                    synchronized (done) { if (done[0]) return; }
                    st.cancel();
                }
            } catch (Exception e) {
                // the statement is gone: nothing left to cancel
            }
        });
        canceller.start();
        try {
            return a.run();
        } finally {
            synchronized (done) { done[0] = true; }
            try { canceller.join(); } catch (InterruptedException e) { }
        }
    }

    public static void main(String[] args) throws Exception {
        String mode = args[0];
        String url = "jdbc:mariadb://" + System.getenv("XAP_HOST") + ":" + System.getenv("XAP_PORT") + "/" + System.getenv("XAP_DATABASE");
        if (mode.equals("serverprep")) url += "?useServerPrepStmts=true";
        if (mode.equals("clientprep")) url += "?useServerPrepStmts=false";
        Connection c;
        try {
            c = DriverManager.getConnection(url, System.getenv("XAP_USER"), System.getenv("XAP_PASSWORD"));
        } catch (SQLException e) {
            emit("connect.open", error(e));
            return;
        }
        emit("connect.open", Map.of("autocommit", c.getAutoCommit()));
        Path scenario = Path.of(System.getProperty("user.dir"), "..", "scenario.tsv");
        for (String line : Files.readAllLines(scenario, StandardCharsets.UTF_8)) {
            if (line.isEmpty() || line.startsWith("#")) continue;
            String[] parts = line.split("\t");
            List<Object> params = null;
            if (parts.length > 2) {
                params = new ArrayList<>();
                for (int i = 2; i < parts.length; i++) {
                    String p = parts[i];
                    params.add(p.startsWith("i:") ? (Object) Integer.valueOf(p.substring(2)) : p.substring(2));
                }
            }
            step(c, parts[0], parts[1], params);
        }

        guard("helper.autocommit_off", () -> { c.setAutoCommit(false); return null; });
        step(c, "helper.update1", "UPDATE items SET qty = 1000 WHERE id = 1", null);
        Savepoint[] sp = new Savepoint[1];
        guard("helper.set_savepoint", () -> { sp[0] = c.setSavepoint("before_two"); return null; });
        step(c, "helper.update2", "UPDATE items SET qty = 2000 WHERE id = 2", null);
        guard("helper.rollback_to_savepoint", () -> { c.rollback(sp[0]); return null; });
        guard("helper.release_savepoint", () -> { c.releaseSavepoint(sp[0]); return null; });
        guard("helper.commit", () -> { c.commit(); return null; });
        step(c, "helper.check", "SELECT id, qty FROM items WHERE id IN (1, 2) ORDER BY id", null);
        step(c, "helper.update_then_rollback", "UPDATE items SET qty = 0 WHERE id IN (1, 2)", null);
        guard("helper.rollback", () -> { c.rollback(); return null; });
        guard("helper.autocommit_on", () -> { c.setAutoCommit(true); return null; });
        step(c, "helper.check_rolled_back", "SELECT id, qty FROM items WHERE id IN (1, 2) ORDER BY id", null);

        guard("timeout.update", () -> {
            try (Statement st = c.createStatement()) {
                st.setQueryTimeout(30);
                return Map.of("affected", st.executeUpdate("UPDATE items SET qty = qty + 1 WHERE id = 5"));
            }
        });
        guard("timeout.select", () -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT qty FROM items WHERE id = ?")) {
                ps.setQueryTimeout(30);
                ps.setInt(1, 5);
                return read(ps, ps.execute());
            }
        });
        step(c, "timeout.after", "SELECT id, qty FROM items WHERE id = 5", null);
        // a timeout that fires: MariaDB ends the statement after 1 s with 1969
        guard("timeout.fires", () -> {
            try (Statement st = c.createStatement()) {
                st.setQueryTimeout(1);
                return read(st, st.execute("SELECT SLEEP(20) AS slept FROM items WHERE id = 5"));
            }
        });
        step(c, "timeout.fired_after", "SELECT id, qty FROM items WHERE id = 5", null);
        // Statement.cancel() from another thread, plain and prepared: 1317 as on MariaDB
        guard("cancel.sleep", () -> {
            try (Statement st = c.createStatement()) {
                return cancelled(st, () -> read(st, st.execute("SELECT SLEEP(60) AS slept FROM items WHERE id = 5")));
            }
        });
        step(c, "cancel.after", "SELECT id, qty FROM items WHERE id = 5", null);
        guard("cancel.prepared", () -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT SLEEP(60) AS slept FROM items WHERE id = ?")) {
                ps.setInt(1, 5);
                return cancelled(ps, () -> read(ps, ps.execute()));
            }
        });
        step(c, "cancel.prepared_after", "SELECT id, qty FROM items WHERE id = 5", null);
        guard("batch.insert", () -> {
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO items (id, name, qty, price) VALUES (?, ?, ?, ?)")) {
                for (int id = 30; id < 33; id++) {
                    ps.setInt(1, id); ps.setString(2, "b" + id); ps.setInt(3, 3); ps.setBigDecimal(4, new BigDecimal("3.30"));
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                List<Object> l = new ArrayList<>();
                for (int n : counts) l.add(n);
                return Map.of("counts", l);
            }
        });
        guard("prepared.reexecute", () -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT name FROM items WHERE id = ?")) {
                List<Object> l = new ArrayList<>();
                for (int id : new int[] {1, 2, 999}) {
                    ps.setInt(1, id);
                    l.add(read(ps, ps.execute()).get("rows"));
                }
                return Map.of("rows", l);
            }
        });
        step(c, "end.items", "SELECT * FROM items ORDER BY id", null);
        c.close();
    }
}
