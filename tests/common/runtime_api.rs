#![allow(dead_code)]
//! A minimal Lambda Runtime API on loopback, enough to run `stream` as a bootstrap for one
//! invocation: the first `next` gets the event, the function's `response` or `error` is recorded,
//! and the second `next` ends the exchange. Used by the Lambda-mode tests and by scripts/bench.
//! One request per connection: every answer says `Connection: close`, so the client never reuses one.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the function did with its invocation.
#[derive(Debug)]
pub struct Exchange {
    /// From the start of the server to the function's first `next` request.
    pub init: Duration,
    /// From handing out the event to the function's answer.
    pub invocation: Duration,
    /// `response` or `error`.
    pub kind: String,
    /// The body the function posted.
    pub body: Vec<u8>,
}

/// Reads one HTTP request line and its Content-Length body.
fn read_request(r: &mut impl BufRead) -> Option<(String, Vec<u8>)> {
    let mut first = String::new();
    r.read_line(&mut first).ok().filter(|n| *n > 0)?;
    let mut len = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((first.trim_end().to_string(), body))
}

/// Serves `event` once; returns the address for AWS_LAMBDA_RUNTIME_API and where the exchange arrives.
pub fn serve_one(event: Vec<u8>) -> (String, mpsc::Receiver<Exchange>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let (mut init, mut handed_out, mut answer) = (None, None, None);
        for conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let Some((line, body)) = read_request(&mut reader) else { continue };
            let mut conn = conn;
            if line.starts_with("GET") && line.contains("/invocation/next") {
                if init.is_none() {
                    init = Some(started.elapsed());
                    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() + 300_000;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: req-1\r\n\
                         Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                         Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:f\r\n\
                         Content-Length: {}\r\n\r\n",
                        event.len()
                    );
                    handed_out = Some(Instant::now());
                    let _ = conn.write_all(head.as_bytes()).and_then(|_| conn.write_all(&event));
                } else if let Some((kind, body, at)) = answer.take() {
                    // The function is back for more: the invocation is over. Leave it waiting.
                    let _ = tx.send(Exchange { init: init.unwrap_or_default(), invocation: at, kind, body });
                    std::mem::forget(conn);
                }
            } else if line.starts_with("POST") {
                let kind = if line.contains("/response") { "response" } else { "error" };
                let took = handed_out.map(|t| t.elapsed()).unwrap_or_default();
                answer = Some((kind.to_string(), body, took));
                let _ = conn.write_all(
                    b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n",
                );
            }
        }
    });
    (addr, rx)
}
