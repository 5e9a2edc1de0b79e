//! The agent's side of the controller's HTTPS API: enroll, follow the config, report health.
//!
//! HTTP/1.1 over TLS 1.3. Enrollment and the long-poll (held by the controller for
//! [`LONG_POLL`]) take a connection each, which re-verifies the controller's certificate
//! against the current CRLs every time; health reports, every second or so, ride one kept
//! connection ([`Session`]), so a national lab of hundreds of agents does not pay a TLS
//! handshake per report. Who the agent trusts and
//! which certificate it presents is the caller's [`rustls::ClientConfig`]
//! (`pki::tls::controller_client_config`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::control::{
    EnrollRequest, EnrollResponse, HealthReport, LONG_POLL, MAX_BODY, Refusal, SignedBundle,
};

/// How long a call other than the long-poll may take, connection included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call to the controller failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No TCP connection.
    #[error("cannot reach the controller at {addr}: {source}")]
    Connect {
        /// The controller.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS handshake failed (the controller's certificate, or ours, was refused).
    #[error("TLS with the controller at {addr}: {source}")]
    Tls {
        /// The controller.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// HTTP went wrong.
    #[error("HTTP with the controller: {0}")]
    Http(String),
    /// The controller said no.
    #[error("the controller refused ({status}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// Its explanation.
        message: String,
    },
    /// The answer was not what the API promises.
    #[error("the controller's answer does not decode: {0}")]
    Decode(String),
    /// No answer in time.
    #[error("the controller did not answer within {0:?}")]
    Timeout(Duration),
}

/// A controller, and how to talk to it.
#[derive(Clone)]
pub struct ControllerClient {
    addr: SocketAddr,
    tls: TlsConnector,
}

impl ControllerClient {
    /// The controller at `addr`, reached with `tls`.
    pub fn new(addr: SocketAddr, tls: rustls::ClientConfig) -> ControllerClient {
        ControllerClient {
            addr,
            tls: TlsConnector::from(Arc::new(tls)),
        }
    }

    /// The controller's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Enrolls with a one-time token: the certificates and the first bundle.
    pub async fn enroll(&self, request: &EnrollRequest) -> Result<EnrollResponse, ClientError> {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/enroll",
                Some(json(request)?),
                CALL_TIMEOUT,
            )
            .await?;
        decode(status, &body)
    }

    /// The next bundle after `version`: `None` when the controller had nothing newer within
    /// its long-poll window.
    pub async fn next_bundle(&self, version: u64) -> Result<Option<SignedBundle>, ClientError> {
        let path = format!("/v1/agent/bundle?after={version}");
        let (status, body) = self
            .call(Method::GET, &path, None, LONG_POLL + CALL_TIMEOUT)
            .await?;
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        decode(status, &body).map(Some)
    }

    /// Reports this agent's status.
    pub async fn report(&self, status: &HealthReport) -> Result<(), ClientError> {
        let (code, body) = self
            .call(
                Method::POST,
                "/v1/agent/health",
                Some(json(status)?),
                CALL_TIMEOUT,
            )
            .await?;
        if code.is_success() {
            Ok(())
        } else {
            Err(refused(code, &body))
        }
    }

    /// One request on a fresh connection, within `limit`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        limit: Duration,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        tokio::time::timeout(limit, self.call_now(method, path, body))
            .await
            .map_err(|_| ClientError::Timeout(limit))?
    }

    async fn call_now(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let (mut sender, connection) = self.connect().await?;
        let answer = self.send(&mut sender, method, path, body).await;
        connection.abort();
        answer
    }

    /// A new TLS connection with HTTP/1.1 on it.
    async fn connect(&self) -> Result<(Sender, tokio::task::JoinHandle<()>), ClientError> {
        let addr = self.addr;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        // Requests are small and answered at once: without this, every request waits for
        // the controller's delayed ACK (~40 ms per call on Linux, measured by the lab's
        // scale bench: 44 ms a request, 2 ms with it). Failing to set it costs only speed.
        let _ = tcp.set_nodelay(true);
        // Identity is the controller's certificate, not this name.
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|source| ClientError::Tls { addr, source })?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok((sender, connection))
    }

    /// One request on an open connection.
    async fn send(
        &self,
        sender: &mut Sender,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.addr.to_string());
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        sender
            .ready()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY * 8)
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        Ok((status, body))
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Why an operator's login files do not make a session.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// A file cannot be read, or is not what it should be.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// The certificate and key do not make a TLS identity.
    #[error("the operator certificate and key do not make a TLS identity: {0}")]
    Identity(String),
}

/// A session with the controller's admin API as an operator: `root` is the national root
/// the controller chains to, `certificate` and `key` the operator's (what `jinbao-controller
/// cert issue` and `cert request` made). What the dashboard and `audit run --live` log in
/// with.
pub fn operator_session(
    controller: SocketAddr,
    root: &std::path::Path,
    certificate: &std::path::Path,
    key: &std::path::Path,
) -> Result<Session, LoginError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|e| LoginError::File {
            path: path.display().to_string(),
            why: e.to_string(),
        })
    };
    let root_pem = read(root)?;
    let root_der =
        CertificateDer::from_pem_slice(root_pem.as_bytes()).map_err(|e| LoginError::File {
            path: root.display().to_string(),
            why: format!("not a PEM certificate: {e}"),
        })?;
    let credentials = pki::tls::Credentials::from_pem(&read(certificate)?, &read(key)?)
        .map_err(|e| LoginError::Identity(e.to_string()))?;
    let tls = pki::tls::controller_client_config(
        pki::tls::ControllerTrust::Bootstrap(root_der),
        Some(credentials),
    )
    .map_err(|e| LoginError::Identity(e.to_string()))?;
    Ok(Session::new(ControllerClient::new(controller, tls)))
}

/// A connection kept open for repeated calls — health reports every second or so — so they
/// cost one TLS handshake, not one each. Reopened when it fails (the controller restarted);
/// the controller re-checks the certificate on a kept connection whenever its CRLs change.
pub struct Session {
    client: ControllerClient,
    open: Option<(Sender, tokio::task::JoinHandle<()>)>,
    limit: Duration,
}

impl Session {
    /// A session with the controller (nothing is opened yet).
    pub fn new(client: ControllerClient) -> Session {
        Session {
            client,
            open: None,
            limit: CALL_TIMEOUT,
        }
    }

    /// The same, with calls allowed `limit` each (a live audit answers in tens of seconds).
    pub fn with_limit(mut self, limit: Duration) -> Session {
        self.limit = limit;
        self
    }

    /// Reports this agent's status on the kept connection.
    pub async fn report(&mut self, status: &HealthReport) -> Result<(), ClientError> {
        let (code, answer) = self
            .call(Method::POST, "/v1/agent/health", Some(json(status)?))
            .await?;
        if code.is_success() {
            Ok(())
        } else {
            Err(refused(code, &answer))
        }
    }

    /// `GET path` on the kept connection, decoded: what an operator's dashboard reads.
    pub async fn get<T: DeserializeOwned>(&mut self, path: &str) -> Result<T, ClientError> {
        let (code, answer) = self.call(Method::GET, path, None).await?;
        decode(code, &answer)
    }

    /// `POST path` with `body` as JSON on the kept connection, decoded.
    pub async fn post<T: DeserializeOwned>(
        &mut self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let (code, answer) = self.call(Method::POST, path, Some(json(body)?)).await?;
        decode(code, &answer)
    }

    /// One request on the kept connection, within [`CALL_TIMEOUT`].
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        // A kept connection the controller closed fails at once: then one fresh try.
        for fresh in [false, true] {
            if fresh || self.open.is_none() {
                self.close();
                let connected = tokio::time::timeout(CALL_TIMEOUT, self.client.connect()).await;
                self.open = Some(connected.map_err(|_| ClientError::Timeout(CALL_TIMEOUT))??);
            }
            let limit = self.limit;
            let Some((sender, _)) = self.open.as_mut() else {
                continue;
            };
            let sent = tokio::time::timeout(
                limit,
                self.client.send(sender, method.clone(), path, body.clone()),
            )
            .await;
            match sent {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(err)) if fresh => return Err(err),
                Err(_) if fresh => return Err(ClientError::Timeout(limit)),
                Ok(Err(_)) | Err(_) => {}
            }
        }
        Err(ClientError::Http("no connection".into()))
    }

    fn close(&mut self) {
        if let Some((_, connection)) = self.open.take() {
            connection.abort();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(value).map_err(|e| ClientError::Decode(e.to_string()))
}

fn decode<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T, ClientError> {
    if !status.is_success() {
        return Err(refused(status, body));
    }
    serde_json::from_slice(body).map_err(|e| ClientError::Decode(e.to_string()))
}

fn refused(status: StatusCode, body: &[u8]) -> ClientError {
    let message = serde_json::from_slice::<Refusal>(body)
        .map(|r| r.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).chars().take(500).collect());
    ClientError::Refused {
        status: status.as_u16(),
        message,
    }
}
