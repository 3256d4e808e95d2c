//! The suite's private cluster, with the password role `--db-scram` logs in as.

use tarn_bench::database::BenchDatabase;

#[tokio::test]
async fn the_scram_role_needs_its_password() {
    let work = tarn_tests::TempDir::new("bench-scram");
    let db = BenchDatabase::open(None, &work.path().join("pgdata"))
        .await
        .unwrap_or_else(|e| panic!("start the private cluster: {e:#}"));
    let url = db.scram_url().await.expect("create the password role");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("log in with the password");
    tokio::spawn(conn);
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(user, "bench_scram");
    let wrong = url.replacen("bench-password", "wrong", 1);
    let error = tokio_postgres::connect(&wrong, tokio_postgres::NoTls)
        .await
        .err()
        .expect("a wrong password is refused");
    assert_eq!(
        error.as_db_error().map(|e| e.code().code()),
        Some("28P01"),
        "{error:#}"
    );
    // Running it again (the cluster is kept between suite runs) keeps working.
    assert_eq!(db.scram_url().await.expect("again"), url);
}
