-- Run once, on the bootstrapping host (the others get it with the state transfer).
CREATE DATABASE IF NOT EXISTS perseus;
CREATE USER IF NOT EXISTS 'perseus'@'%';
GRANT ALL ON perseus.* TO 'perseus'@'%';
CREATE TABLE IF NOT EXISTS perseus.kv (k VARCHAR(128) PRIMARY KEY, v BIGINT NOT NULL, ver BIGINT NOT NULL) ENGINE=InnoDB;
