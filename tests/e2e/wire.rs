//! What the hosts put on the wire: every answer and every API request leaves in one piece.
//!
//! A body written after its head goes out in a second TCP segment, which Nagle's algorithm
//! holds until the peer ACKs the first; Linux delays that ACK by ~40 ms. A Knative dispatcher
//! would wait that long for each reply, and the component that long for each API answer.
//! These checks count socket reads, not milliseconds.

use podgateway_test_harness::Runtime;
use podgateway_test_harness::http_client::RawConnection;

use crate::world::*;

/// Forty events on one keep-alive connection, one at a time as Knative sends them, over every
/// path: created (and its routing gate removed), redelivered (409 then GET), failed without
/// an API call, ignored (204),
/// refused (400). Each answer arrives in one read; so does each API request.
fn answers_and_api_requests_leave_in_one_piece(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    let mut connection = RawConnection::open(&world.app.base_url()).expect("a connection");
    for round in 0..8 {
        let id = format!("wire-{round}");
        let cases: [(&str, &str, u16); 5] = [
            (PENDING, r#"{"gateway_name":"foo"}"#, 200),
            (PENDING, r#"{"gateway_name":"foo"}"#, 200),
            (PENDING, r#"{"gateway_name":"not valid!"}"#, 200),
            ("com.example.other", "{}", 204),
            ("", "{}", 400),
        ];
        for (event_type, data, status) in cases {
            let mut headers = binary(&id, event_type);
            if event_type.is_empty() {
                headers.retain(|(name, _)| *name != "ce-type");
            }
            world.count_request();
            let answer = connection.post(&headers, data.as_bytes()).expect("an answer");
            assert_eq!(answer.status, status, "{}", answer.head);
            assert_eq!(
                answer.reads, 1,
                "{event_type} {data}: the answer came in {} reads:\n{}",
                answer.reads, answer.head
            );
        }
    }
    let requests = world.kube.requests();
    let statuses: Vec<_> = requests.iter().map(|r| r.status.unwrap_or_default()).collect();
    assert_eq!(statuses, [201, 200, 409, 200].repeat(8));
    for request in &requests {
        assert_eq!(request.reads, 1, "{} {} came in {} reads", request.method, request.path, request.reads);
    }
}

crate::scenarios!(answers_and_api_requests_leave_in_one_piece);
