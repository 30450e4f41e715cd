//! What the store's PostgreSQL tests share: a throwaway database on the server named by
//! TOLLGATE_TEST_POSTGRES (by default postgres://tollgate:tollgate@127.0.0.1:5432/postgres,
//! which `.ci/run` sets up).

#![allow(dead_code)] // each test file uses part of it

/// The admin URL of the test server.
pub fn pg_admin_url() -> String {
    std::env::var("TOLLGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://tollgate:tollgate@127.0.0.1:5432/postgres".into())
}

/// A connection to the admin database, or a panic saying how to get one.
pub fn admin() -> postgres::Client {
    let url = pg_admin_url();
    postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| {
        panic!("cannot reach PostgreSQL at {url} ({e}); .ci/run installs and starts it, or set TOLLGATE_TEST_POSTGRES")
    })
}

/// A throwaway PostgreSQL database, dropped with the value.
pub struct PgDb {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl PgDb {
    /// A new, empty database.
    pub fn create() -> PgDb {
        let name = format!("tollgate_test_{}", ulid::Ulid::new().to_string().to_lowercase());
        admin().batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let admin_url = pg_admin_url();
        let url = format!("{}/{name}", &admin_url[..admin_url.rfind('/').expect("a database in the URL")]);
        PgDb { name, url }
    }

    /// A plain connection to it (no options: as any other client, or an older tollgate).
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&pg_admin_url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}
