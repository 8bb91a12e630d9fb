//! The request path: from a checked request to its response, through the
//! routing snapshot, the version choice and the run of a guest in either
//! format.
//!
//! - [`handler`]: admission, routing, body, guest run, response, access log.
//! - [`rollout`]: version choice per request: override header, sticky key,
//!   random draw.
//! - [`run_wagi`]: one request's run of a WAGI module: store, limits,
//!   deadline and outcome; [`wagi`] maps the request to its environment and
//!   argv and its stdout to the response.
//! - [`run_component`]: one request's run of a wasi:http component.
//! - [`outcome`]: what both formats' runs come to: the response, the timing,
//!   the ways a run fails.
//! - [`stream`]: a response whose guest is still writing it: the run polled
//!   by hand, and the body that carries it under the stream limits.
//! - [`upload`]: a request body streamed to a component as it arrives.
//! - [`error`]: statuses the host answers with itself.
//! - [`id`]: request ids.

pub mod error;
pub mod handler;
pub mod id;
pub mod outcome;
pub mod rollout;
pub mod run_component;
pub mod run_wagi;
pub mod stream;
pub mod upload;
pub mod wagi;
