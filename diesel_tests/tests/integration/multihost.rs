//! Shared helpers of the `MultiHostConnection` tests: schema, URLs, "where did it run".

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer};
use diesel_multidb::{MultiHostConnection, StatementRoute};

use diesel_multidb_testkit::PgCluster;

pub(crate) type Conn = MultiHostConnection<PgConnection>;

diesel::table! {
    users (id) {
        id -> Integer,
        name -> Text,
    }
}

diesel::table! {
    audit (id) {
        id -> Integer,
        note -> Text,
    }
}

diesel::define_sql_function! {
    /// The port of the server that runs the statement.
    fn inet_server_port() -> Integer;
}

diesel::define_sql_function! {
    /// Whether the server that runs the statement is a standby.
    fn pg_is_in_recovery() -> Bool;
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, AsChangeset)]
#[diesel(table_name = users)]
pub(crate) struct User {
    pub(crate) id: i32,
    pub(crate) name: String,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub(crate) struct NewUser<'a> {
    pub(crate) name: &'a str,
}

/// A row for `COPY FROM` (which needs every column given).
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct CopyUser {
    pub(crate) name: String,
}

/// The server's own answer to "who are you".
#[derive(Debug, QueryableByName)]
pub(crate) struct Server {
    #[diesel(sql_type = Integer)]
    pub(crate) port: i32,
    #[diesel(sql_type = Bool)]
    pub(crate) in_recovery: bool,
}

pub(crate) const WHO: &str =
    "SELECT inet_server_port() AS port, pg_is_in_recovery() AS in_recovery";

/// `postgres://postgres@127.0.0.1:p1,.../db?params`.
pub(crate) fn url(ports: &[u16], db: &str, params: &str) -> String {
    let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut url = format!("postgres://postgres@{}/{db}", hosts.join(","));
    if !params.is_empty() {
        url.push('?');
        url.push_str(params);
    }
    url
}

/// The cluster's ports, primary first.
pub(crate) fn all_ports(cluster: &PgCluster) -> Vec<u16> {
    let mut ports = vec![cluster.primary_port()];
    ports.extend(cluster.standby_ports());
    ports
}

/// A fresh database on the shared cluster with the test schema, replicated to the standbys.
pub(crate) fn fresh_db(prefix: &str) -> (&'static PgCluster, String) {
    let cluster = PgCluster::shared();
    let db = cluster.create_database(prefix);
    let mut conn = PgConnection::establish(&url(&[cluster.primary_port()], &db, ""))
        .unwrap_or_else(|e| panic!("connecting to the primary's database {db}: {e}"));
    conn.batch_execute(
        "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);
         CREATE TABLE audit (id serial PRIMARY KEY, note text NOT NULL);
         CREATE FUNCTION add_audit(n text) RETURNS integer LANGUAGE sql AS
           $$ INSERT INTO audit (note) VALUES (n) RETURNING inet_server_port() $$;
         INSERT INTO users (name) VALUES ('alice'), ('bob');",
    )
    .expect("creating the test schema");
    cluster.wait_for_replay();
    (cluster, db)
}

pub(crate) fn connect(url: &str) -> Conn {
    crate::trace();
    Conn::establish(url).unwrap_or_else(|e| panic!("establishing {url}: {e}"))
}

/// Waits until `conn`'s next read would run on a standby: its standby session is open (it
/// opens in the background) and the standby has replayed the connection's writes.
pub(crate) fn ready(conn: &mut Conn) {
    assert!(
        conn.wait_for_standby(std::time::Duration::from_secs(10)),
        "no standby became ready for reads: {:#?}",
        conn.topology()
    );
}

/// [`connect`], then [`ready`].
pub(crate) fn connect_ready(url: &str) -> Conn {
    let mut conn = connect(url);
    ready(&mut conn);
    conn
}

/// Runs `WHO` through `conn` and returns the server's answer.
pub(crate) fn who(conn: &mut Conn) -> Server {
    diesel::sql_query(WHO)
        .get_result(conn)
        .expect("asking the server who it is")
}

/// Asserts that the last statement ran on a standby of `cluster`, per the route and per the
/// port the server reported.
pub(crate) fn assert_on_standby(cluster: &PgCluster, conn: &Conn, server_port: i32) {
    let route = conn.last_route().expect("a statement ran");
    assert!(
        route.is_replica(),
        "expected a standby, ran on {route}; {conn:?} {:#?}",
        conn.topology()
    );
    assert!(
        cluster.standby_ports().contains(&(server_port as u16)),
        "server port {server_port} is not a standby of {:?}",
        cluster.standby_ports()
    );
    assert_eq!(route.host().port(), server_port as u16);
}

/// Asserts that the last statement was routed to the primary (for statements that cannot
/// report the server themselves; `assert_on_primary` checks the server's answer too).
pub(crate) fn assert_routed_to_primary(conn: &Conn) {
    let route = conn.last_route().expect("a statement ran");
    assert!(
        matches!(route, StatementRoute::Primary(_)),
        "expected the primary, ran on {route}"
    );
}

/// Asserts that the last statement ran on the primary at `primary_port`.
pub(crate) fn assert_on_primary(conn: &Conn, primary_port: u16, server_port: i32) {
    let route = conn.last_route().expect("a statement ran");
    assert!(
        matches!(route, StatementRoute::Primary(_)),
        "expected the primary, ran on {route}"
    );
    assert_eq!(server_port as u16, primary_port, "the server that answered");
    assert_eq!(route.host().port(), primary_port);
}

/// Runs `sql` on one node's database `db` directly (no routing) and returns the first column
/// of the first row as text.
pub(crate) fn query_in(port: u16, db: &str, sql: &str) -> String {
    #[derive(QueryableByName)]
    struct One {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let mut conn = PgConnection::establish(&url(&[port], db, ""))
        .unwrap_or_else(|e| panic!("connecting to 127.0.0.1:{port}/{db}: {e}"));
    diesel::sql_query(format!("SELECT ({sql})::text AS v"))
        .get_result::<One>(&mut conn)
        .unwrap_or_else(|e| panic!("{sql} on 127.0.0.1:{port}/{db}: {e}"))
        .v
}

/// A statement that writes (it takes a transaction id), reporting the server that ran it.
pub(crate) fn write_port(conn: &mut Conn) -> i32 {
    #[derive(QueryableByName)]
    struct Port {
        #[diesel(sql_type = Integer)]
        port: i32,
    }
    diesel::sql_query("SELECT inet_server_port() AS port, txid_current() AS xid")
        .get_result::<Port>(conn)
        .expect("a write")
        .port
}
