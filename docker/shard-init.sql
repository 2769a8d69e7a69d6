-- The account xaproxy uses on this shard: exactly what the proxy needs, nothing more
-- (xaproxy check-config --connect checks it). DDL through the proxy needs the second
-- line's CREATE, ALTER, DROP, INDEX; leave them out if clients never run DDL.
CREATE USER 'xaproxy'@'%' IDENTIFIED BY 'xaproxy-secret';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES, CREATE, ALTER, DROP, INDEX ON `shop`.* TO 'xaproxy'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `xaproxy`.* TO 'xaproxy'@'%';
