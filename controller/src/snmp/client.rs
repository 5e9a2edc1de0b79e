//! One SNMP agent, asked for one [`Sample`]: sysUpTime.0 and, per interface, ifHCInOctets,
//! ifHCOutOctets and ifOperStatus, with SNMPv2c or SNMPv3 authPriv over `snmp2`.
//!
//! Everything that comes back from the network is checked before use: the error-status,
//! the number, order and names of the varbinds, and their types. Nothing here panics on a
//! reply; every failure is a [`PollError`] that names the agent.
//!
//! Telling failures apart: a v3 agent answers a wrong user name or authentication password
//! with an unauthenticated Report, which surfaces as [`PollError::Auth`] right away. A wrong
//! v2c community and a wrong v3 *privacy* password cannot be told from a dead device: the
//! agent (net-snmp included) drops the request silently, so they surface as
//! [`PollError::Timeout`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use snmp2::{AsyncSession, Oid, Pdu, Value, v3};
use thiserror::Error;

use super::inventory::{AuthProtocol, Credentials, PrivProtocol};
use super::rate::{InterfaceSample, OperStatus, Sample};

/// sysUpTime.0 (SNMPv2-MIB).
pub const SYS_UPTIME: [u64; 9] = [1, 3, 6, 1, 2, 1, 1, 3, 0];
/// ifHCInOctets (IF-MIB ifXTable column 6), indexed by ifIndex.
pub const IF_HC_IN_OCTETS: [u64; 11] = [1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6];
/// ifHCOutOctets (IF-MIB ifXTable column 10), indexed by ifIndex.
pub const IF_HC_OUT_OCTETS: [u64; 11] = [1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 10];
/// ifOperStatus (IF-MIB ifTable column 8), indexed by ifIndex.
pub const IF_OPER_STATUS: [u64; 10] = [1, 3, 6, 1, 2, 1, 2, 2, 1, 8];

/// Varbinds per GET request. 30 keeps replies near 1 kB, far below any agent's maximum
/// message size, so a device with many interfaces never gets `tooBig`.
pub const MAX_VARBINDS_PER_REQUEST: usize = 30;

/// How often one request is repeated when the v3 agent reports new engine boots/time (after
/// discovery, or after it restarted). Each repeat follows a reply, never a timeout.
const MAX_ENGINE_RESYNCS: usize = 3;

/// Request ids of successive sessions start far apart, so a late reply meant for a dropped
/// session can never match a request of a new one.
static NEXT_SESSION_REQUEST_ID: AtomicI32 = AtomicI32::new(1);
const REQUEST_IDS_PER_SESSION: i32 = 1 << 20;

/// An interface column the poller reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IfColumn {
    /// ifHCInOctets.
    HcInOctets,
    /// ifHCOutOctets.
    HcOutOctets,
    /// ifOperStatus.
    OperStatus,
}

impl IfColumn {
    /// The column's OID, without the ifIndex.
    pub fn oid_prefix(self) -> &'static [u64] {
        match self {
            IfColumn::HcInOctets => &IF_HC_IN_OCTETS,
            IfColumn::HcOutOctets => &IF_HC_OUT_OCTETS,
            IfColumn::OperStatus => &IF_OPER_STATUS,
        }
    }
}

impl fmt::Display for IfColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IfColumn::HcInOctets => "ifHCInOctets",
            IfColumn::HcOutOctets => "ifHCOutOctets",
            IfColumn::OperStatus => "ifOperStatus",
        })
    }
}

/// Why an agent had no value for a requested object (the SNMPv2 exceptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Absence {
    /// noSuchObject: the agent does not implement the column at all.
    NoSuchObject,
    /// noSuchInstance: the column exists but not that row (no such ifIndex).
    NoSuchInstance,
    /// endOfMibView (not expected in a reply to GET).
    EndOfMibView,
}

impl fmt::Display for Absence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Absence::NoSuchObject => "noSuchObject",
            Absence::NoSuchInstance => "noSuchInstance",
            Absence::EndOfMibView => "endOfMibView",
        })
    }
}

/// Why a device could not be polled. Every variant names the agent's address.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PollError {
    /// No local UDP socket could be opened towards the agent.
    #[error("{address}: cannot open a UDP socket: {source}")]
    Socket {
        /// The agent.
        address: SocketAddr,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// No reply in time: the device is down or unreachable, or (v2c) the community is
    /// wrong, or (v3) the privacy password is wrong — agents drop those silently.
    #[error("{address}: no reply within {}", humantime::format_duration(*.timeout))]
    Timeout {
        /// The agent.
        address: SocketAddr,
        /// How long we waited for one reply.
        timeout: Duration,
    },
    /// Sending or receiving failed at once (e.g. ICMP port unreachable: nothing listens).
    #[error("{address}: {operation} failed: nothing listens there, or the network refused it")]
    Network {
        /// The agent.
        address: SocketAddr,
        /// `send` or `receive`.
        operation: &'static str,
    },
    /// SNMPv3 authentication failed: unknown user, wrong authentication password, or the
    /// agent's engine could not be synchronised.
    #[error("{address}: SNMPv3 authentication failed: {detail}")]
    Auth {
        /// The agent.
        address: SocketAddr,
        /// What went wrong, as `snmp2` saw it.
        detail: String,
    },
    /// The agent has no such interface (or does not implement the column).
    #[error("{address}: interface {if_index} has no {column} ({absence})")]
    NoSuchInterface {
        /// The agent.
        address: SocketAddr,
        /// The ifIndex asked for.
        if_index: u32,
        /// The column asked for.
        column: IfColumn,
        /// What the agent answered.
        absence: Absence,
    },
    /// The agent refused the request with an error-status.
    #[error("{address}: the agent answered {} (error-status {status}) at varbind {index}", error_status_name(*.status))]
    AgentError {
        /// The agent.
        address: SocketAddr,
        /// The error-status (RFC 3416).
        status: u32,
        /// The error-index: which varbind (1-based), 0 for the whole request.
        index: u32,
    },
    /// The reply was not what was asked for.
    #[error("{address}: malformed reply: {problem}")]
    Malformed {
        /// The agent.
        address: SocketAddr,
        /// What was wrong with it.
        problem: MalformedReply,
    },
    /// The credentials cannot be used at all (checked before anything is sent).
    #[error("{address}: unusable credentials: {reason}")]
    Credentials {
        /// The agent.
        address: SocketAddr,
        /// Why.
        reason: &'static str,
    },
    /// The task polling the device ended abnormally (a bug, here or in `snmp2`); the
    /// poller carries on with the other devices and starts this one afresh.
    #[error("{address}: the poll task failed: {detail}")]
    TaskFailed {
        /// The agent.
        address: SocketAddr,
        /// What the runtime said.
        detail: String,
    },
}

impl PollError {
    /// A short stable name for the kind of failure: a metrics label and an API field.
    pub fn label(&self) -> &'static str {
        match self {
            PollError::Socket { .. } => "socket",
            PollError::Timeout { .. } => "timeout",
            PollError::Network { .. } => "network",
            PollError::Auth { .. } => "auth",
            PollError::NoSuchInterface { .. } => "no-such-interface",
            PollError::AgentError { .. } => "agent-error",
            PollError::Malformed { .. } => "malformed",
            PollError::Credentials { .. } => "credentials",
            PollError::TaskFailed { .. } => "task-failed",
        }
    }

    /// Whether the session may be at fault, so a new one (new socket, v3 engine discovery
    /// redone) could succeed where this one failed: a device swapped or re-keyed behind the
    /// same address, a stale reply from an abandoned request.
    pub(crate) fn calls_for_a_new_session(&self) -> bool {
        matches!(self, PollError::Auth { .. } | PollError::Malformed { .. })
    }

    /// Whether the session can be used again after this error.
    pub(crate) fn keeps_session(&self) -> bool {
        matches!(
            self,
            PollError::NoSuchInterface { .. } | PollError::AgentError { .. }
        )
    }
}

/// What was wrong with a reply.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MalformedReply {
    /// `snmp2` could not decode it.
    #[error("cannot decode it: {0}")]
    Decode(String),
    /// Not one varbind per requested object.
    #[error("{got} varbinds for {expected} requested")]
    VarbindCount {
        /// How many were requested.
        expected: usize,
        /// How many came back.
        got: usize,
    },
    /// A varbind names another object than the one requested at its place.
    #[error("varbind {position} is {got}, but {expected} was requested")]
    UnexpectedOid {
        /// 1-based position in the reply.
        position: usize,
        /// The requested OID.
        expected: String,
        /// The OID in the reply.
        got: String,
    },
    /// A value of the wrong SNMP type.
    #[error("{oid} should be {expected} but is {got}")]
    WrongType {
        /// The object.
        oid: String,
        /// The type the MIB defines.
        expected: &'static str,
        /// What came back.
        got: String,
    },
    /// ifOperStatus outside the values IF-MIB defines.
    #[error("ifOperStatus.{if_index} is {value}, not a status IF-MIB defines (1-7)")]
    BadOperStatus {
        /// The interface.
        if_index: u32,
        /// The value.
        value: i64,
    },
    /// sysUpTime.0 absent: every agent must have it.
    #[error("sysUpTime.0 is absent ({0})")]
    NoSysUpTime(Absence),
}

/// The RFC 3416 name of an error-status.
pub fn error_status_name(status: u32) -> &'static str {
    match status {
        0 => "noError",
        1 => "tooBig",
        2 => "noSuchName",
        3 => "badValue",
        4 => "readOnly",
        5 => "genErr",
        6 => "noAccess",
        7 => "wrongType",
        8 => "wrongLength",
        9 => "wrongEncoding",
        10 => "wrongValue",
        11 => "noCreation",
        12 => "inconsistentValue",
        13 => "resourceUnavailable",
        14 => "commitFailed",
        15 => "undoFailed",
        16 => "authorizationError",
        17 => "notWritable",
        18 => "inconsistentName",
        _ => "an undefined error-status",
    }
}

/// An open SNMP session with one agent (for v3, with its engine discovered).
///
/// Keep it between polls: a v3 session then skips discovery. Drop it after a timeout, so a
/// late reply cannot be taken for the answer to the next request.
pub struct SnmpClient {
    address: SocketAddr,
    timeout: Duration,
    // Boxed: the session holds two 64 kB buffers.
    session: Box<AsyncSession>,
}

impl fmt::Debug for SnmpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnmpClient")
            .field("address", &self.address)
            .field("timeout", &self.timeout)
            .field("version", &self.session.version())
            .finish_non_exhaustive()
    }
}

/// One object a poll asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    SysUpTime,
    /// A column of the interface `index`, the `slot`-th of the sample.
    Interface {
        slot: usize,
        index: u32,
        column: IfColumn,
    },
}

impl Wanted {
    fn oid(self) -> Oid<'static> {
        let arcs: Vec<u64> = match self {
            Wanted::SysUpTime => SYS_UPTIME.to_vec(),
            Wanted::Interface { index, column, .. } => {
                let mut arcs = column.oid_prefix().to_vec();
                arcs.push(u64::from(index));
                arcs
            }
        };
        // Only an OID starting with an arc above 2 (or 0/1 followed by one above 39) can be
        // refused; these all start 1.3.
        Oid::from(&arcs).expect("MIB-2 OIDs start with 1.3 and are always encodable")
    }
}

/// A varbind's value, owned, reduced to what a poll can use.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reading {
    Ticks(u32),
    Counter64(u64),
    Integer(i64),
    Absent(Absence),
    Other(String),
}

impl Reading {
    fn of(value: &Value<'_>) -> Reading {
        match value {
            Value::Timeticks(ticks) => Reading::Ticks(*ticks),
            Value::Counter64(count) => Reading::Counter64(*count),
            Value::Integer(number) => Reading::Integer(*number),
            Value::NoSuchObject => Reading::Absent(Absence::NoSuchObject),
            Value::NoSuchInstance => Reading::Absent(Absence::NoSuchInstance),
            Value::EndOfMibView => Reading::Absent(Absence::EndOfMibView),
            other => Reading::Other(shorten(format!("{other:?}"))),
        }
    }

    fn describe(&self) -> String {
        match self {
            Reading::Ticks(ticks) => format!("TIMETICKS: {ticks}"),
            Reading::Counter64(count) => format!("COUNTER64: {count}"),
            Reading::Integer(number) => format!("INTEGER: {number}"),
            Reading::Absent(absence) => absence.to_string(),
            Reading::Other(text) => text.clone(),
        }
    }
}

/// At most 80 characters of something an agent sent, for an error message.
fn shorten(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(80) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Maps a `snmp2` error to what it means for the poll.
fn classify(address: SocketAddr, err: snmp2::Error) -> PollError {
    match err {
        snmp2::Error::AuthFailure(kind) => PollError::Auth {
            address,
            detail: kind.to_string(),
        },
        snmp2::Error::AuthUpdated => PollError::Auth {
            address,
            detail: "the agent's engine boots/time kept changing".to_owned(),
        },
        snmp2::Error::Send => PollError::Network {
            address,
            operation: "send",
        },
        snmp2::Error::Receive => PollError::Network {
            address,
            operation: "receive",
        },
        other => PollError::Malformed {
            address,
            problem: MalformedReply::Decode(other.to_string()),
        },
    }
}

fn v3_security(
    user: &str,
    auth: AuthProtocol,
    auth_password: &str,
    privacy: PrivProtocol,
    privacy_password: &str,
) -> v3::Security {
    let auth_protocol = match auth {
        AuthProtocol::Md5 => v3::AuthProtocol::Md5,
        AuthProtocol::Sha1 => v3::AuthProtocol::Sha1,
        AuthProtocol::Sha224 => v3::AuthProtocol::Sha224,
        AuthProtocol::Sha256 => v3::AuthProtocol::Sha256,
        AuthProtocol::Sha384 => v3::AuthProtocol::Sha384,
        AuthProtocol::Sha512 => v3::AuthProtocol::Sha512,
    };
    let (cipher, key_extension) = match privacy {
        PrivProtocol::Des => (v3::Cipher::Des, None),
        PrivProtocol::Aes128 => (v3::Cipher::Aes128, None),
        PrivProtocol::Aes192 => (v3::Cipher::Aes192, Some(v3::KeyExtension::Blumenthal)),
        PrivProtocol::Aes256 => (v3::Cipher::Aes256, Some(v3::KeyExtension::Blumenthal)),
        PrivProtocol::Aes192c => (v3::Cipher::Aes192, Some(v3::KeyExtension::Reeder)),
        PrivProtocol::Aes256c => (v3::Cipher::Aes256, Some(v3::KeyExtension::Reeder)),
    };
    let security = v3::Security::new(user.as_bytes(), auth_password.as_bytes())
        .with_auth_protocol(auth_protocol)
        .with_auth(v3::Auth::AuthPriv {
            cipher,
            privacy_password: privacy_password.as_bytes().to_vec(),
        });
    match key_extension {
        Some(method) => security.with_key_extension_method(method),
        None => security,
    }
}

impl SnmpClient {
    /// Opens a session with the agent at `address`; for v3, discovers its engine (one
    /// round trip). `timeout` bounds each round trip, here and in [`SnmpClient::sample`].
    pub async fn connect(
        address: SocketAddr,
        credentials: &Credentials,
        timeout: Duration,
    ) -> Result<SnmpClient, PollError> {
        let request_id =
            NEXT_SESSION_REQUEST_ID.fetch_add(REQUEST_IDS_PER_SESSION, Ordering::Relaxed);
        // Each session is two 64 kB buffers, and unoptimised builds copy a value once per
        // `?`, `map_err` or `Ok(…)` it passes through: box it straight out of `snmp2`.
        let session: io::Result<AsyncSession> = match credentials {
            Credentials::V2c { community } => {
                if community.expose().is_empty() {
                    return Err(PollError::Credentials {
                        address,
                        reason: "the community is empty",
                    });
                }
                AsyncSession::new_v2c(address, community.expose().as_bytes(), request_id).await
            }
            Credentials::V3 {
                user,
                auth,
                auth_password,
                privacy,
                privacy_password,
            } => {
                // snmp2 derives keys by cycling through the password: an empty one would
                // make it index an empty slice.
                if auth_password.expose().is_empty() || privacy_password.expose().is_empty() {
                    return Err(PollError::Credentials {
                        address,
                        reason: "an SNMPv3 password is empty",
                    });
                }
                let security = v3_security(
                    user,
                    *auth,
                    auth_password.expose(),
                    *privacy,
                    privacy_password.expose(),
                );
                AsyncSession::new_v3(address, request_id, security).await
            }
        };
        let session = match session {
            Ok(session) => Box::new(session),
            Err(source) => return Err(PollError::Socket { address, source }),
        };
        let mut client = SnmpClient {
            address,
            timeout,
            session,
        };
        if matches!(credentials, Credentials::V3 { .. }) {
            match tokio::time::timeout(timeout, client.session.init()).await {
                Err(_elapsed) => return Err(PollError::Timeout { address, timeout }),
                Ok(Err(err)) => return Err(classify(address, err)),
                Ok(Ok(())) => {}
            }
        }
        Ok(client)
    }

    /// The agent's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Reads sysUpTime.0 and the counters and status of `interfaces` (ifIndex values),
    /// in as few GET requests as [`MAX_VARBINDS_PER_REQUEST`] allows.
    pub async fn sample(&mut self, interfaces: &[u32]) -> Result<Sample, PollError> {
        let wanted: Vec<Wanted> = std::iter::once(Wanted::SysUpTime)
            .chain(interfaces.iter().enumerate().flat_map(|(slot, &index)| {
                [
                    IfColumn::HcInOctets,
                    IfColumn::HcOutOctets,
                    IfColumn::OperStatus,
                ]
                .map(|column| Wanted::Interface {
                    slot,
                    index,
                    column,
                })
            }))
            .collect();
        let mut sys_uptime = None;
        let mut samples: Vec<InterfaceSample> = interfaces
            .iter()
            .map(|&index| InterfaceSample {
                index,
                in_octets: 0,
                out_octets: 0,
                oper: OperStatus::Unknown,
            })
            .collect();
        for chunk in wanted.chunks(MAX_VARBINDS_PER_REQUEST) {
            let readings = self.get(chunk).await?;
            for (&want, reading) in chunk.iter().zip(readings) {
                match want {
                    Wanted::SysUpTime => sys_uptime = Some(uptime_from(self.address, reading)?),
                    Wanted::Interface {
                        slot,
                        index,
                        column,
                    } => {
                        let value = interface_value(self.address, index, column, reading)?;
                        if let Some(sample) = samples.get_mut(slot) {
                            match value {
                                InterfaceValue::In(octets) => sample.in_octets = octets,
                                InterfaceValue::Out(octets) => sample.out_octets = octets,
                                InterfaceValue::Oper(status) => sample.oper = status,
                            }
                        }
                    }
                }
            }
        }
        // `wanted` starts with sysUpTime and `get` checked the reply has every varbind.
        let sys_uptime = sys_uptime.ok_or(PollError::Malformed {
            address: self.address,
            problem: MalformedReply::VarbindCount {
                expected: wanted.len(),
                got: 0,
            },
        })?;
        Ok(Sample {
            sys_uptime,
            interfaces: samples,
        })
    }

    /// One GET of `wanted`, repeated (at most [`MAX_ENGINE_RESYNCS`] times) when a v3
    /// agent reports that its engine boots/time moved on.
    async fn get(&mut self, wanted: &[Wanted]) -> Result<Vec<Reading>, PollError> {
        let oids: Vec<Oid<'static>> = wanted.iter().map(|w| w.oid()).collect();
        let refs: Vec<&Oid<'static>> = oids.iter().collect();
        let (address, timeout) = (self.address, self.timeout);
        for _ in 0..MAX_ENGINE_RESYNCS {
            match tokio::time::timeout(timeout, self.session.get_many(&refs)).await {
                Err(_elapsed) => return Err(PollError::Timeout { address, timeout }),
                Ok(Err(snmp2::Error::AuthUpdated)) => {
                    tracing::debug!(%address, "SNMPv3 engine boots/time updated; asking again");
                }
                Ok(Err(err)) => return Err(classify(address, err)),
                Ok(Ok(pdu)) => return read_reply(address, &oids, pdu),
            }
        }
        Err(classify(address, snmp2::Error::AuthUpdated))
    }
}

enum InterfaceValue {
    In(u64),
    Out(u64),
    Oper(OperStatus),
}

fn uptime_from(address: SocketAddr, reading: Reading) -> Result<u32, PollError> {
    let malformed = |problem| PollError::Malformed { address, problem };
    match reading {
        Reading::Ticks(ticks) => Ok(ticks),
        Reading::Absent(absence) => Err(malformed(MalformedReply::NoSysUpTime(absence))),
        other => Err(malformed(MalformedReply::WrongType {
            oid: "sysUpTime.0".to_owned(),
            expected: "TimeTicks",
            got: other.describe(),
        })),
    }
}

fn interface_value(
    address: SocketAddr,
    if_index: u32,
    column: IfColumn,
    reading: Reading,
) -> Result<InterfaceValue, PollError> {
    let malformed = |problem| PollError::Malformed { address, problem };
    match (column, reading) {
        (_, Reading::Absent(absence)) => Err(PollError::NoSuchInterface {
            address,
            if_index,
            column,
            absence,
        }),
        (IfColumn::HcInOctets, Reading::Counter64(octets)) => Ok(InterfaceValue::In(octets)),
        (IfColumn::HcOutOctets, Reading::Counter64(octets)) => Ok(InterfaceValue::Out(octets)),
        (IfColumn::OperStatus, Reading::Integer(value)) => OperStatus::from_mib(value)
            .map(InterfaceValue::Oper)
            .ok_or_else(|| malformed(MalformedReply::BadOperStatus { if_index, value })),
        (column, other) => Err(malformed(MalformedReply::WrongType {
            oid: format!("{column}.{if_index}"),
            expected: match column {
                IfColumn::OperStatus => "INTEGER",
                IfColumn::HcInOctets | IfColumn::HcOutOctets => "Counter64",
            },
            got: other.describe(),
        })),
    }
}

/// Checks a reply against the request: no error-status, one varbind per OID, in order.
fn read_reply(
    address: SocketAddr,
    oids: &[Oid<'static>],
    pdu: Pdu<'_>,
) -> Result<Vec<Reading>, PollError> {
    if pdu.error_status != snmp2::snmp::ERRSTATUS_NOERROR {
        return Err(PollError::AgentError {
            address,
            status: pdu.error_status,
            index: pdu.error_index,
        });
    }
    let malformed = |problem| PollError::Malformed { address, problem };
    let mut readings = Vec::with_capacity(oids.len());
    for (position, (oid, value)) in pdu.varbinds.enumerate() {
        let Some(expected) = oids.get(position) else {
            return Err(malformed(MalformedReply::VarbindCount {
                expected: oids.len(),
                got: position + 1,
            }));
        };
        if oid != *expected {
            return Err(malformed(MalformedReply::UnexpectedOid {
                position: position + 1,
                expected: expected.to_string(),
                got: shorten(oid.to_string()),
            }));
        }
        readings.push(Reading::of(&value));
    }
    if readings.len() != oids.len() {
        return Err(malformed(MalformedReply::VarbindCount {
            expected: oids.len(),
            got: readings.len(),
        }));
    }
    Ok(readings)
}

#[cfg(test)]
mod tests;
