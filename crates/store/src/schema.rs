//! Schema and migrations. Each migration runs once, in a transaction, and is recorded in
//! `schema_migrations`; the same DDL serves SQLite and PostgreSQL.

/// One schema change.
pub struct Migration {
    /// Version reached after it.
    pub version: i64,
    /// What it does.
    pub description: &'static str,
    /// Statements, separated by `;`.
    pub sql: &'static str,
}

/// Every migration, in order. Never edit one that has shipped: add a new one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
    version: 1,
    description: "raw ENUM queries and SIP calls; minute/hour/day rollups of counts, numbers and outcomes",
    sql: "
CREATE TABLE enum_queries (
    id TEXT PRIMARY KEY,
    ts BIGINT NOT NULL,
    device TEXT NOT NULL,
    client TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    transport TEXT NOT NULL,
    source TEXT,
    destination TEXT NOT NULL,
    direction TEXT NOT NULL,
    rule TEXT,
    action TEXT NOT NULL,
    detail TEXT,
    rcode TEXT NOT NULL,
    fail_open BIGINT NOT NULL,
    latency_us BIGINT NOT NULL,
    policy_version BIGINT,
    v BIGINT NOT NULL
);
CREATE INDEX enum_queries_ts ON enum_queries (ts);
CREATE TABLE sip_calls (
    id TEXT PRIMARY KEY,
    ts BIGINT NOT NULL,
    device TEXT NOT NULL,
    call_id TEXT NOT NULL,
    source TEXT,
    destination TEXT,
    direction TEXT NOT NULL,
    disposition TEXT NOT NULL,
    final_code BIGINT,
    pdd_ms BIGINT,
    duration_ms BIGINT,
    answered_at BIGINT,
    ended_at BIGINT,
    v BIGINT NOT NULL
);
CREATE INDEX sip_calls_ts ON sip_calls (ts);
CREATE TABLE rollup_counts (
    dataset TEXT NOT NULL,
    grain TEXT NOT NULL,
    device TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (dataset, grain, device, bucket)
) /*WITHOUT ROWID*/;
CREATE TABLE rollup_numbers (
    dataset TEXT NOT NULL,
    grain TEXT NOT NULL,
    side TEXT NOT NULL,
    device TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    number TEXT NOT NULL,
    direction TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (dataset, grain, side, device, bucket, number, direction)
) /*WITHOUT ROWID*/;
CREATE INDEX rollup_numbers_top ON rollup_numbers (dataset, grain, side, bucket, n DESC, number, direction) WHERE device = '*';
CREATE TABLE rollup_outcomes (
    dataset TEXT NOT NULL,
    grain TEXT NOT NULL,
    device TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    okey TEXT NOT NULL,
    odetail TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (dataset, grain, device, bucket, okey, odetail)
) /*WITHOUT ROWID*/",
    },
    Migration {
        version: 2,
        description: "RTP quality of SIP calls (packets, lost, jitter) from the probe",
        sql: "
ALTER TABLE sip_calls ADD COLUMN rtp_packets BIGINT;
ALTER TABLE sip_calls ADD COLUMN rtp_lost BIGINT;
ALTER TABLE sip_calls ADD COLUMN rtp_jitter_us BIGINT",
    },
    Migration {
        version: 3,
        description: "stale ENUM answers (sent after the engine's stale bound): flagged in raw records, counted in outcome rollups",
        sql: "
ALTER TABLE enum_queries ADD COLUMN stale BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollup_outcomes ADD COLUMN stale BIGINT NOT NULL DEFAULT 0",
    },
    Migration {
        version: 4,
        description: "deferred rollups: per raw table, the highest rowid already rolled up (SQLite); rows above it are rolled up on open",
        sql: "
CREATE TABLE rollup_watermark (
    tbl TEXT PRIMARY KEY,
    last_rowid BIGINT NOT NULL
);
/*SQLITE*/ INSERT INTO rollup_watermark (tbl, last_rowid) SELECT 'enum_queries', COALESCE(MAX(rowid), 0) FROM enum_queries;
/*SQLITE*/ INSERT INTO rollup_watermark (tbl, last_rowid) SELECT 'sip_calls', COALESCE(MAX(rowid), 0) FROM sip_calls",
    },
    Migration {
        version: 5,
        description: "PostgreSQL: ingest batches numbered by a sequence and marked in raw records (BRIN); batches whose rollups are not yet applied, per collector (SQLite: nothing)",
        sql: "
/*postgres*/ CREATE SEQUENCE ingest_batches;
/*postgres*/ ALTER TABLE enum_queries ADD COLUMN batch BIGINT;
/*postgres*/ ALTER TABLE sip_calls ADD COLUMN batch BIGINT;
/*postgres*/ CREATE INDEX enum_queries_batch ON enum_queries USING brin (batch);
/*postgres*/ CREATE INDEX sip_calls_batch ON sip_calls USING brin (batch);
/*postgres*/ CREATE TABLE rollup_pending_batches (batch BIGINT PRIMARY KEY, collector TEXT NOT NULL, created_at BIGINT NOT NULL);
/*postgres*/ CREATE INDEX rollup_pending_batches_collector ON rollup_pending_batches (collector)",
    },
    Migration {
        version: 6,
        description: "day fold of number rollups: per dataset, the last hour bucket whose number rows are summed into day rows (existing data: every hour present); PostgreSQL: day rows written only by sessions that know the fold (a collector of an older version still running during a rolling upgrade would count its records twice in day views: its rollup writes fail and stay pending until a current collector applies them)",
        sql: "
CREATE TABLE rollup_number_folds (
    dataset TEXT PRIMARY KEY,
    folded_through BIGINT NOT NULL
);
INSERT INTO rollup_number_folds (dataset, folded_through) SELECT 'ENUM', COALESCE(MAX(bucket), -9223372036854775807 - 1) FROM rollup_counts WHERE dataset = 'ENUM' AND grain = 'hour';
INSERT INTO rollup_number_folds (dataset, folded_through) SELECT 'SIP', COALESCE(MAX(bucket), -9223372036854775807 - 1) FROM rollup_counts WHERE dataset = 'SIP' AND grain = 'hour';
/*postgres*/ ALTER TABLE rollup_numbers ADD CONSTRAINT rollup_numbers_day_rows_by_fold_only CHECK (grain <> 'day' OR COALESCE(current_setting('tollgate.day_fold', true), '') = 'on') NOT VALID",
    },
    Migration {
        version: 7,
        description: "estimated listening quality (MOS x 100) of the worst RTP stream of SIP calls, from the probe (older rows: NULL, not measured)",
        sql: "
ALTER TABLE sip_calls ADD COLUMN mos_x100 BIGINT",
    },
    Migration {
        version: 8,
        description: "the protocol each ENUM-dataset decision was asked over: 'enum' (DNS NAPTR; every older row) or 'sip' (the engine's SIP redirect server)",
        sql: "
ALTER TABLE enum_queries ADD COLUMN protocol TEXT NOT NULL DEFAULT 'enum'",
    },
];

/// The newest schema version this build knows.
pub fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The table that records applied migrations.
pub const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL, description TEXT NOT NULL)";

/// SQL dialects the migrations are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: `/*WITHOUT ROWID*/` markers become `WITHOUT ROWID` (the primary key is the table,
    /// so a rollup upsert updates one B-tree, not two).
    Sqlite,
    /// PostgreSQL: the markers stay comments.
    Postgres,
}

/// A statement starting with this marker (in any case) runs on SQLite only.
pub const SQLITE_ONLY: &str = "/*SQLITE*/";
/// A statement starting with this marker (in any case) runs on PostgreSQL only.
pub const POSTGRES_ONLY: &str = "/*POSTGRES*/";

/// The statement without `marker`, if it starts with it (in any case).
fn marked<'a>(statement: &'a str, marker: &str) -> Option<&'a str> {
    let head = statement.get(..marker.len())?;
    head.eq_ignore_ascii_case(marker).then(|| statement[marker.len()..].trim())
}

/// Statements of a migration, in the given dialect (statements marked for the other dialect
/// left out).
pub fn statements(m: &Migration, dialect: Dialect) -> impl Iterator<Item = String> {
    m.sql.split(';').map(str::trim).filter(|s| !s.is_empty()).filter_map(move |s| match dialect {
        Dialect::Sqlite if marked(s, POSTGRES_ONLY).is_some() => None,
        Dialect::Postgres if marked(s, SQLITE_ONLY).is_some() => None,
        Dialect::Sqlite => Some(marked(s, SQLITE_ONLY).unwrap_or(s).replace("/*WITHOUT ROWID*/", "WITHOUT ROWID")),
        Dialect::Postgres => Some(marked(s, POSTGRES_ONLY).unwrap_or(s).to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_marked_for_one_dialect_are_left_out_of_the_other() {
        let m = Migration {
            version: 9,
            description: "t",
            sql: "CREATE TABLE t (a BIGINT) /*WITHOUT ROWID*/; /*SQLITE*/ SELECT 1; /*POSTGRES*/ SELECT 2; /*postgres*/ SELECT 3",
        };
        let sqlite: Vec<String> = statements(&m, Dialect::Sqlite).collect();
        assert_eq!(sqlite, vec!["CREATE TABLE t (a BIGINT) WITHOUT ROWID", "SELECT 1"]);
        let pg: Vec<String> = statements(&m, Dialect::Postgres).collect();
        assert_eq!(pg, vec!["CREATE TABLE t (a BIGINT) /*WITHOUT ROWID*/", "SELECT 2", "SELECT 3"]);
    }

    #[test]
    fn postgres_only_statements_are_skipped_on_sqlite() {
        let v5 = MIGRATIONS.iter().find(|m| m.version == 5).unwrap();
        assert_eq!(statements(v5, Dialect::Sqlite).count(), 0);
        let pg: Vec<String> = statements(v5, Dialect::Postgres).collect();
        assert!(pg.iter().all(|s| !s.to_ascii_uppercase().contains(POSTGRES_ONLY)), "{pg:?}");
        assert!(pg.iter().any(|s| s.starts_with("CREATE SEQUENCE ingest_batches")), "{pg:?}");
    }

    #[test]
    fn versions_increase() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
    }
}
