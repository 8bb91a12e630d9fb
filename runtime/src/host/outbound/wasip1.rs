//! The `http_*` functions of the `wedge` host module, and a request's
//! outbound state: its open responses (a handle is an index), how many
//! calls it made, the time they took (`outbound_us` in the access event) and
//! the last error's message (`http_error`).
//!
//! Every function returns a status code (see [`crate::host::abi::status`]); results
//! go to out-pointers, checked before anything is sent. Each call's time is
//! the least of `[outbound] timeout` and what the request has left, less a
//! little, so the guest hears `timeout` while it can still answer.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};
use tokio::time::Instant;
use wasmtime::{Caller, Linker};

use super::call::{Call, GuestTimeouts, HOST_HEADERS, Opened};
use super::{CallError, RequestOutbound};
use crate::host::abi::status::{NOT_FOUND, OK};
use crate::host::memory::{self, memory};

/// `http_send` flags: follow redirects.
const FOLLOW_REDIRECTS: i32 = 1;

/// Longest URL a guest may send.
const MAX_URL: usize = 8 << 10;

/// Largest header block a guest may send.
const MAX_HEADERS: usize = 64 << 10;

/// A request's outbound calls.
pub struct OutboundCtx {
    /// The function's client, name, telemetry and the request's deadline.
    request: RequestOutbound,
    /// Open responses; a handle is an index.
    open: Vec<Option<Opened>>,
    calls: u32,
    spent: Duration,
    last_error: Option<String>,
}

impl OutboundCtx {
    /// The outbound state of a request that may call out with `request`.
    pub fn new(request: RequestOutbound) -> Self {
        Self {
            request,
            open: Vec::new(),
            calls: 0,
            spent: Duration::ZERO,
            last_error: None,
        }
    }

    /// Time spent in outbound calls so far.
    pub fn spent(&self) -> Duration {
        self.spent
    }

    fn opened(&mut self, handle: i32) -> Result<&mut Opened, CallError> {
        usize::try_from(handle)
            .ok()
            .and_then(|h| self.open.get_mut(h))
            .and_then(Option::as_mut)
            .ok_or_else(|| CallError::Invalid("unknown or closed response handle".into()))
    }

    /// A free handle, if the request may open another response.
    fn slot(&mut self, max: u32) -> Result<usize, CallError> {
        if let Some(free) = self.open.iter().position(Option::is_none) {
            return Ok(free);
        }
        if self.open.len() >= max as usize {
            return Err(CallError::Busy(format!(
                "{max} responses are open in this request ([outbound] max_per_request): read them to the end or close them"
            )));
        }
        self.open.push(None);
        Ok(self.open.len() - 1)
    }

    /// Turns a result into a status, remembering the error's message.
    fn finish(&mut self, result: Result<(), CallError>) -> i32 {
        match result {
            Ok(()) => OK,
            Err(e) => {
                let code = e.code();
                self.last_error = Some(e.to_string());
                code
            }
        }
    }

    /// Sends `call`, counting it; the response takes a handle.
    async fn send(&mut self, call: Call) -> Result<(u32, u16), CallError> {
        let client = self
            .request
            .client
            .clone()
            .ok_or_else(|| CallError::Denied("this node makes no outbound calls".into()))?;
        let config = client.node.config();
        if self.calls >= config.max_calls_per_request {
            return Err(CallError::Busy(format!(
                "this request made {} calls ([outbound] max_calls_per_request)",
                self.calls
            )));
        }
        let slot = self.slot(config.max_per_request)?;
        self.calls += 1;
        let origin = client.origin_of(&call.url).ok();
        let deadline = client.call_deadline(self.request.deadline);
        let (result, took) = client
            .send_counted(
                call,
                deadline,
                &self.request.telemetry,
                &self.request.function,
                origin.as_ref(),
            )
            .await;
        self.spent += took;
        let opened = result?;
        let status = opened.status.as_u16();
        self.open[slot] = Some(opened);
        Ok((slot as u32, status))
    }
}

/// Reads `method`, `url` and `headers` as the guest wrote them.
fn parse_call(
    method: &[u8],
    url: &[u8],
    headers: &[u8],
    body: Vec<u8>,
    flags: i32,
) -> Result<Call, CallError> {
    if flags & !FOLLOW_REDIRECTS != 0 {
        return Err(CallError::Invalid(format!(
            "unknown http_send flags {flags:#x}"
        )));
    }
    let method =
        Method::from_bytes(method).map_err(|_| CallError::Invalid("not an HTTP method".into()))?;
    if url.len() > MAX_URL {
        return Err(CallError::Invalid(format!(
            "a URL is at most {MAX_URL} bytes"
        )));
    }
    let url = Uri::try_from(url).map_err(|e| CallError::Invalid(format!("bad URL: {e}")))?;
    if url.scheme().is_none() || url.authority().is_none() {
        return Err(CallError::Invalid(
            "the URL must be absolute: scheme://host/...".into(),
        ));
    }
    if url.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(CallError::Invalid(
            "a URL carries no user or password; send an Authorization header".into(),
        ));
    }
    if headers.len() > MAX_HEADERS {
        return Err(CallError::Invalid(format!(
            "headers are at most {MAX_HEADERS} bytes"
        )));
    }
    let mut map = HeaderMap::new();
    for line in headers.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let colon = line
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(|| CallError::Invalid("a header line is `name: value`".into()))?;
        let name = HeaderName::from_bytes(&line[..colon])
            .map_err(|_| CallError::Invalid("a header name is a token".into()))?;
        if HOST_HEADERS.contains(&name) {
            return Err(CallError::Invalid(format!(
                "the host sets `{name}` itself, from the URL and the body"
            )));
        }
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).map_err(|_| {
            CallError::Invalid(format!("the value of `{name}` is not a header value"))
        })?;
        map.append(name, value);
    }
    Ok(Call {
        method,
        url,
        headers: map,
        body: Bytes::from(body),
        follow_redirects: flags & FOLLOW_REDIRECTS != 0,
        timeouts: GuestTimeouts::default(),
    })
}

/// Adds the `http_*` functions to `linker`; `ctx` finds a request's [`OutboundCtx`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    ctx: fn(&mut T) -> &mut OutboundCtx,
) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        "wedge",
        "http_send",
        move |mut caller: Caller<'_, T>,
              (
            method_ptr,
            method_len,
            url_ptr,
            url_len,
            headers_ptr,
            headers_len,
            body_ptr,
            body_len,
            flags,
            out,
        ): (i32, i32, i32, i32, i32, i32, i32, i32, i32, i32)| {
            Box::new(async move {
                let result = async {
                    let mem = memory(&mut caller).map_err(invalid)?;
                    let call = {
                        let read = |ptr, len| memory::read(mem, &caller, ptr, len).map_err(invalid);
                        parse_call(
                            &read(method_ptr, method_len)?,
                            &read(url_ptr, url_len)?,
                            &read(headers_ptr, headers_len)?,
                            read(body_ptr, body_len)?,
                            flags,
                        )?
                    };
                    memory::check(mem, &caller, out, 8).map_err(invalid)?;
                    let (handle, status) = ctx(caller.data_mut()).send(call).await?;
                    let mut result = [0u8; 8];
                    result[..4].copy_from_slice(&handle.to_le_bytes());
                    result[4..].copy_from_slice(&u32::from(status).to_le_bytes());
                    memory::write(mem, &mut caller, out, &result).map_err(invalid)
                }
                .await;
                ctx(caller.data_mut()).finish(result)
            })
        },
    )?;

    linker.func_wrap(
        "wedge",
        "http_headers",
        move |mut caller: Caller<'_, T>, handle: i32, buf: i32, cap: i32, len_out: i32| -> i32 {
            let result = (|| {
                let mem = memory(&mut caller).map_err(invalid)?;
                memory::check(mem, &caller, len_out, 4).map_err(invalid)?;
                memory::check(mem, &caller, buf, cap as u32 as usize).map_err(invalid)?;
                let headers = ctx(caller.data_mut()).opened(handle)?.headers.clone();
                memory::write_sized(mem, &mut caller, buf, cap, len_out, &headers).map_err(invalid)
            })();
            ctx(caller.data_mut()).finish(result)
        },
    )?;

    linker.func_wrap_async(
        "wedge",
        "http_read",
        move |mut caller: Caller<'_, T>, (handle, buf, cap, n_out): (i32, i32, i32, i32)| {
            Box::new(async move {
                let result = async {
                    let mem = memory(&mut caller).map_err(invalid)?;
                    memory::check(mem, &caller, n_out, 4).map_err(invalid)?;
                    memory::check(mem, &caller, buf, cap as u32 as usize).map_err(invalid)?;
                    let started = Instant::now();
                    let outbound = ctx(caller.data_mut());
                    let read = outbound.opened(handle)?.read(cap as u32 as usize).await;
                    outbound.spent += started.elapsed();
                    if read.is_err() {
                        // A body that failed cannot be read on; its handle is free.
                        outbound.open[handle as usize] = None;
                    }
                    let chunk = read?;
                    memory::write(mem, &mut caller, buf, &chunk).map_err(invalid)?;
                    let n = chunk.len() as u32;
                    memory::write(mem, &mut caller, n_out, &n.to_le_bytes()).map_err(invalid)
                }
                .await;
                ctx(caller.data_mut()).finish(result)
            })
        },
    )?;

    linker.func_wrap(
        "wedge",
        "http_close",
        move |mut caller: Caller<'_, T>, handle: i32| -> i32 {
            let outbound = ctx(caller.data_mut());
            let result = outbound.opened(handle).map(|_| ());
            if result.is_ok() {
                outbound.open[handle as usize] = None;
            }
            outbound.finish(result)
        },
    )?;

    linker.func_wrap(
        "wedge",
        "http_error",
        move |mut caller: Caller<'_, T>, buf: i32, cap: i32, len_out: i32| -> i32 {
            let result = (|| -> Result<bool, CallError> {
                let mem = memory(&mut caller).map_err(invalid)?;
                memory::check(mem, &caller, len_out, 4).map_err(invalid)?;
                memory::check(mem, &caller, buf, cap as u32 as usize).map_err(invalid)?;
                let Some(message) = ctx(caller.data_mut()).last_error.clone() else {
                    return Ok(false);
                };
                memory::write_sized(mem, &mut caller, buf, cap, len_out, message.as_bytes())
                    .map_err(invalid)?;
                Ok(true)
            })();
            // Reading the message is not itself an error that replaces it.
            match result {
                Ok(true) => OK,
                Ok(false) => NOT_FOUND,
                Err(e) => e.code(),
            }
        },
    )?;
    Ok(())
}

fn invalid(e: crate::store::KvError) -> CallError {
    CallError::Invalid(e.to_string())
}
