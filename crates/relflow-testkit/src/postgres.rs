//! A throwaway database on the machine's PostgreSQL.

use std::process::Command;

/// Where the shared PostgreSQL is, as a libpq connection string prefix.
const SERVER: &str = "host=127.0.0.1 user=postgres";

/// A fresh, empty PostgreSQL database on 127.0.0.1:5432 for one test,
/// dropped (with its connections) when this is dropped.
#[derive(Debug)]
pub struct PgDatabase {
    name: String,
}

fn psql_in(db: &str, sql: &str) -> Command {
    let mut cmd = Command::new("psql");
    cmd.args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-qc", sql]);
    cmd
}

fn psql(sql: &str) -> Command {
    psql_in("postgres", sql)
}

impl PgDatabase {
    /// Creates `relflow_test_<unique>`; panics if PostgreSQL is not reachable.
    pub fn new() -> PgDatabase {
        let name = format!("relflow_test_{}", crate::unique_suffix());
        crate::run(
            &mut psql(&format!("CREATE DATABASE {name}")),
            "psql CREATE DATABASE (PostgreSQL on 127.0.0.1:5432; scripts/test.sh starts it)",
        );
        PgDatabase { name }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `sql` in it (as the superuser), e.g. to inject a fault.
    pub fn sql(&self, sql: &str) {
        crate::run(&mut psql_in(&self.name, sql), "psql in the test database");
    }

    /// Its libpq connection string, as relflow's `[store] url` takes it.
    pub fn url(&self) -> String {
        format!("{SERVER} dbname={}", self.name)
    }
}

impl Default for PgDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // FORCE: a test that failed half-way may still hold connections.
        let _ = psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).output();
    }
}
