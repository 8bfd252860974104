//! The dashboard and JSON API, in layers that import downwards only:
//!
//! - the router (`routes`): the route table and the gates every request
//!   passes: the names the server answers to (`host`), the bodies it reads
//!   (`body_type`), credentials and CSRF (checked by `auth`);
//! - the handlers, one module per resource: what the recorder is and does
//!   (`system`), stored footage as lists and files (`recordings`), live and
//!   playback streams (`stream`), MP4 export with byte ranges (`export`),
//!   the clock (`clock`), incidents (`incidents`), who is asking (`account`)
//!   and the embedded dashboard files (`assets`);
//! - what handlers share (`context`: the context and the error type);
//! - every JSON answer as a type (`answers`), at the bottom;
//! - underneath: a bounded HTTP server (`server`), token and session
//!   checks (`auth`), session cookies and their key (`session`), names from the card in headers and URLs
//!   (`names`) and randomness for tokens and keys (`random`).

pub mod account;
pub mod answers;
pub mod assets;
pub mod auth;
pub mod body_type;
pub mod clock;
pub mod context;
pub mod export;
pub mod host;
pub mod incidents;
pub mod names;
pub mod random;
pub mod recordings;
pub mod routes;
pub mod server;
pub mod session;
pub mod share;
pub mod stream;
pub mod system;
/// Test support: handlers over a data folder with recorded frames, for the
/// fuzz targets. Not part of the API's surface.
#[doc(hidden)]
pub mod testutil;
pub mod track;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use context::ApiContext;
use server::{HttpServer, Limits};

/// The running dashboard and API.
pub struct HttpService {
    pub ctx: Arc<ApiContext>,
    server: HttpServer,
}

impl HttpService {
    pub fn start(
        ctx: ApiContext,
        addr: SocketAddr,
        limits: Limits,
    ) -> std::io::Result<HttpService> {
        let ctx = Arc::new(ctx);
        let server = HttpServer::start(addr, limits, ctx.clone())?;
        *ctx.server_stats.lock().unwrap_or_else(|e| e.into_inner()) = Some(server.stats.clone());
        Ok(HttpService { ctx, server })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr
    }

    /// Ends streams and stops serving.
    pub fn stop(self) {
        self.ctx.stop.store(true, Ordering::SeqCst);
        self.server.stop(Duration::from_secs(3));
    }
}
