//! Integration tests of the ocpi crate: in-process (`oneshot`) where HTTP doesn't matter, real sockets on
//! 127.0.0.1:0 for handshakes and the client.

mod client;
mod client_modules;
mod fuzz;
mod handshake;
mod helpers;
mod modules;
mod pagination;
mod server;
mod versions;
