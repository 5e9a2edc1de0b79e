//! Real TLS over 127.0.0.1 for the tests: one handshake with the server in a thread, a few
//! bytes each way, and each side's outcome with the precise rustls error.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use pki::VerifyError;
use pki::tls::verify_error;
use rustls::{
    AlertDescription, ClientConfig, ClientConnection, ConnectionCommon, HandshakeKind,
    ServerConfig, ServerConnection, SideData, StreamOwned,
};
use rustls_pki_types::{CertificateDer, ServerName};

/// No socket operation may block longer than this, so a broken handshake cannot hang a test.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// What the client sends.
pub const HELLO: &[u8] = b"ping from the client";
/// What the server answers.
pub const REPLY: &[u8] = b"pong from the server";

/// One side of a completed connection: what it received and the chain its peer presented.
#[derive(Debug)]
pub struct Session {
    pub received: Vec<u8>,
    pub peer: Vec<CertificateDer<'static>>,
    pub kind: Option<HandshakeKind>,
}

/// A side's result; socket failures that carry no TLS error become `Error::General`.
pub type Outcome = Result<Session, rustls::Error>;

/// Runs one TLS session on `tcp`: handshake, send `send`, read `reply_len` bytes. On failure
/// the socket is half-closed and drained, so the alert reaches the peer instead of a reset.
pub fn talk<C, S>(conn: C, tcp: TcpStream, send: &[u8], reply_len: usize) -> Outcome
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(TIMEOUT)).unwrap();
    let mut stream = StreamOwned::new(conn, tcp);
    let mut session = || -> io::Result<Session> {
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        stream.write_all(send)?;
        stream.flush()?;
        let mut received = vec![0; reply_len];
        stream.read_exact(&mut received)?;
        let peer = stream.conn.peer_certificates().unwrap_or_default();
        let peer = peer.iter().map(|c| c.clone().into_owned()).collect();
        let kind = stream.conn.handshake_kind();
        Ok(Session {
            received,
            peer,
            kind,
        })
    };
    match session() {
        Ok(session) => {
            stream.conn.send_close_notify();
            let _ = stream.flush();
            Ok(session)
        }
        Err(err) => {
            let _ = stream.sock.shutdown(Shutdown::Write);
            let _ = io::copy(&mut stream.sock, &mut io::sink());
            Err(tls_error(err))
        }
    }
}

pub fn tls_error(err: io::Error) -> rustls::Error {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls.clone(),
        None => rustls::Error::General(format!("i/o: {err}")),
    }
}

/// One handshake on 127.0.0.1: the server in a thread, the client here dialling `name`.
/// Returns (client outcome, server outcome).
pub fn handshake(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
    name: ServerName<'static>,
) -> (Outcome, Outcome) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let address = listener.local_addr().unwrap();
    let server = ServerConnection::new(server.clone()).unwrap();
    let client = ClientConnection::new(client.clone(), name).unwrap();
    let serving = thread::spawn(move || {
        let (tcp, _) = listener.accept().map_err(tls_error)?;
        talk(server, tcp, REPLY, HELLO.len())
    });
    let tcp = TcpStream::connect_timeout(&address, TIMEOUT).unwrap();
    let client = talk(client, tcp, HELLO, REPLY.len());
    (client, serving.join().unwrap())
}

/// The server refused the client's certificate: the client got `alert`; the refusal.
pub fn refused_by_server(
    (client, server): (Outcome, Outcome),
    alert: AlertDescription,
) -> VerifyError {
    refused(server, client, alert)
}

/// The client refused the server's certificate: the server got `alert`; the refusal.
pub fn refused_by_client(
    (client, server): (Outcome, Outcome),
    alert: AlertDescription,
) -> VerifyError {
    refused(client, server, alert)
}

/// `refusing` failed with a verification error and `alerted` received `alert`: the error.
fn refused(refusing: Outcome, alerted: Outcome, alert: AlertDescription) -> VerifyError {
    assert_eq!(alerted.unwrap_err(), rustls::Error::AlertReceived(alert));
    let err = refusing.unwrap_err();
    verify_error(&err).unwrap_or_else(|| panic!("no verification error in {err:?}"))
}
