//! A DNS server for outbound-HTTP tests: answers `A` queries over UDP on a
//! loopback port from a table the test changes while it runs, with the TTL
//! the test chose, and counts the queries it was asked. Names not in the
//! table get NXDOMAIN. A node points `[outbound] dns` at it.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

type Table = Arc<Mutex<HashMap<String, (Ipv4Addr, u32)>>>;

/// A running DNS server; stops when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    table: Table,
    queries: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    /// Starts on `127.0.0.1` and a free port.
    pub async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let table: Table = Arc::default();
        let queries = Arc::new(AtomicU64::new(0));
        let (t, q) = (table.clone(), queries.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                q.fetch_add(1, Ordering::SeqCst);
                let answer = answer(&query, &t);
                if let Ok(bytes) = answer.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        Self {
            addr,
            table,
            queries,
            task,
        }
    }

    /// Where it listens: the value for `[outbound] dns`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers `name` (lower case, no trailing dot) with `ip` and `ttl` seconds.
    pub fn set(&self, name: &str, ip: Ipv4Addr, ttl: u32) {
        self.table
            .lock()
            .unwrap()
            .insert(name.to_string(), (ip, ttl));
    }

    /// Queries answered so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(query: &Message, table: &Table) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    let mut known = true;
    for q in query.queries() {
        reply.add_query(q.clone());
        let name = q
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        match table.lock().unwrap().get(&name) {
            Some((ip, ttl)) if q.query_type() == RecordType::A => {
                reply.add_answer(Record::from_rdata(q.name().clone(), *ttl, RData::A(A(*ip))));
            }
            // The name exists but has no address of this type.
            Some(_) => {}
            None => known = false,
        }
    }
    reply.set_response_code(match known {
        true => ResponseCode::NoError,
        false => ResponseCode::NXDomain,
    });
    reply
}
