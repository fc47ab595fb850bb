//! The pool notices a PostgreSQL connection that died under it (server restarted, backend
//! killed): on checkout, once the connection's trust period is over, it is checked, dropped
//! and replaced. SQLite connections are never checked (nothing can restart them), so this
//! test has nothing to do on SQLite; CI runs it on PostgreSQL.

use std::time::Duration;

use clinic_store::pool::{self, Manager};
use clinic_store::testing::TestDatabase;
use clinic_store::{DatabaseUrl, Pool};
use diesel::prelude::*;
use diesel::sql_types::Integer;

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

fn backend_pid(pool: &Pool) -> Result<i32, diesel::result::Error> {
    let mut conn = pool::get(pool).expect("a connection");
    diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(&mut **conn)
        .map(|p| p.pid)
}

#[test]
fn a_dead_postgres_connection_is_replaced_on_checkout() {
    let db = TestDatabase::new();
    let DatabaseUrl::Postgres(url) = db.url().clone() else {
        return;
    };
    let pool = Pool::builder()
        .max_size(1)
        .test_on_check_out(true)
        .connection_timeout(Duration::from_secs(5))
        .build(Manager::checking_after(db.url().clone(), Duration::ZERO))
        .expect("pool");
    let first = backend_pid(&pool).expect("first connection works");

    let mut killer = PgConnection::establish(&url).expect("second connection");
    diesel::sql_query(format!("SELECT pg_terminate_backend({first})"))
        .execute(&mut killer)
        .expect("terminate the pooled connection's backend");

    let second = backend_pid(&pool).expect("the dead connection was replaced, not handed out");
    assert_ne!(first, second);
}
