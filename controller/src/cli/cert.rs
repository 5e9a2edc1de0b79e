//! `jinbao-controller cert …`: sign node and operator requests, revoke, list what expires.
//!
//! `cert issue` prints the leaf and then its issuing CA, PEM, so the output is the chain a
//! node presents and `openssl verify -CAfile root.pem -untrusted chain.pem chain.pem` reads
//! it as is. What was issued is said on standard error, so standard output stays pipeable.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use pki::files::{self, Secrecy};
use pki::profile::{NODE_LIFETIME, OPERATOR_LIFETIME, renew_at};
use pki::request::{Request, operator_request, read_request_pem};
use pki::store::{CaDir, Stored};
use pki::{AuthorityScope, KeyAlgorithm, PrivateKey, Reason, Role, Serial};
use topology::{DivisionCode, NodeId};

use controller::store::{CertificateKind, CertificateRecord, OperatorRecord};

use super::model::{self, Files, Model};
use super::table;

/// The longest lifetime `cert issue` grants: short-lived certificates are the point.
const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

#[derive(Debug, Subcommand)]
pub(crate) enum CertCommand {
    /// Sign a node or operator request after checking it against the topology; prints the
    /// certificate and its issuing CA (PEM).
    Issue {
        /// The request (PEM), from `jinbao-agent csr` or `cert request`.
        #[arg(long, value_name = "FILE")]
        csr: PathBuf,
        /// The operator's role (operator requests only): engineer, auditor or noc.
        #[arg(long)]
        role: Option<Role>,
        /// Scope the operator to one province (operator requests only): its 2-digit code,
        /// e.g. 14. Without it the operator works on the whole network.
        #[arg(long, value_name = "CODE", value_parser = pki::binding::parse_province)]
        province: Option<DivisionCode>,
        /// How long it is valid (default 30d for nodes, 90d for operators; at most 366d).
        #[arg(long, value_parser = humantime::parse_duration)]
        lifetime: Option<Duration>,
        /// Write here instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Revoke a certificate and publish its CA's next CRL.
    Revoke {
        /// Its serial number (hex, as `cert list` prints it).
        serial: Serial,
        /// unspecified, key-compromise, affiliation-changed, superseded or
        /// cessation-of-operation.
        #[arg(long)]
        reason: Reason,
    },
    /// List issued certificates, soonest expiry first.
    List {
        /// Only those expiring within this span (e.g. 7d) and not revoked.
        #[arg(long, value_parser = humantime::parse_duration, value_name = "SPAN")]
        expiring: Option<Duration>,
        /// Only those issued by this CA (ministry or a province code).
        #[arg(long)]
        authority: Option<AuthorityScope>,
    },
    /// Make an operator's key (0600) and request, on the operator's own machine.
    Request {
        /// The login, e.g. zhangsan.
        #[arg(long)]
        login: String,
        /// The person's name, e.g. 张三.
        #[arg(long)]
        name: String,
        /// Where to write the key (never overwritten).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Key algorithm: p256 (default) or ed25519.
        #[arg(long, default_value = "p256")]
        algorithm: KeyAlgorithm,
    },
}

pub(crate) fn run(
    command: CertCommand,
    files: &Files,
    dir: &Path,
    now: SystemTime,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let store = CaDir::at(dir);
    match command {
        CertCommand::Issue {
            csr,
            role,
            province,
            lifetime,
            output,
        } => {
            let chain = issue(dir, files, &csr, role, province, lifetime, now)?;
            match output {
                Some(path) => files::replace(&path, chain.as_bytes(), Secrecy::Public)?,
                None => out.write_all(chain.as_bytes())?,
            }
        }
        CertCommand::Revoke { serial, reason } => {
            let (scope, crl) = store.revoke(&serial, reason, now)?;
            if let Some(controller) = super::serve::controller_store(dir)? {
                let who = super::serve::local_user();
                controller.write(|tx| {
                    tx.revoke_certificate(&serial.to_string(), reason.as_str(), now, &who)
                })?;
            }
            writeln!(
                out,
                "revoked {serial} ({reason}); the {scope} CA published CRL {} listing {} certificate(s): {}",
                crl.number,
                crl.listed.len(),
                store.crl_path(scope).display()
            )?;
        }
        CertCommand::List {
            expiring,
            authority,
        } => return list(&store, expiring, authority, now, out),
        CertCommand::Request {
            login,
            name,
            key,
            algorithm,
        } => {
            let private = PrivateKey::generate(algorithm)?;
            let pem = operator_request(&private, &name, &login)?;
            files::create_new(&key, private.to_pem().as_bytes(), Secrecy::Secret)
                .with_context(|| "the operator key is never overwritten".to_owned())?;
            eprintln!("created {} ({algorithm})", key.display());
            out.write_all(pem.as_bytes())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Signs the request in `csr`; returns the certificate and its CA's (PEM).
fn issue(
    dir: &Path,
    files: &Files,
    csr: &Path,
    role: Option<Role>,
    province: Option<DivisionCode>,
    lifetime: Option<Duration>,
    now: SystemTime,
) -> Result<String> {
    let store = &CaDir::at(dir);
    let (name, text) = model::read(csr)?;
    let request = read_request_pem(text.as_bytes()).with_context(|| name.clone())?;
    if lifetime.is_some_and(|l| l > MAX_LIFETIME || l.is_zero()) {
        bail!("--lifetime must be between 1s and 366d");
    }
    let (scope, issued, what, record) = match request {
        Request::Node(request) => {
            if role.is_some() || province.is_some() {
                bail!("{name} is a node request; --role and --province are for operator requests");
            }
            let binding = &request.binding;
            let scope = AuthorityScope::of_node(&binding.node);
            let ca = store.authority(scope)?;
            let model = Model::load(files)?;
            let issued = ca
                .issue_node(
                    &request,
                    &model.network,
                    &model.allocation,
                    now,
                    lifetime.unwrap_or(NODE_LIFETIME),
                )
                .with_context(|| format!("the {scope} CA refused {name}"))?;
            let zones: Vec<&str> = binding.zones.iter().map(|z| z.as_str()).collect();
            let what = format!(
                "{} on the {} plane ({})",
                binding.node,
                binding.plane,
                zones.join(", ")
            );
            let record = CertificateRecord {
                serial: issued.serial.to_string(),
                subject: binding.node.to_string(),
                kind: CertificateKind::Node,
                plane: Some(binding.plane),
                issuer: scope.to_string(),
                not_after: issued.not_after,
                pem: issued.pem(),
                revoked: None,
            };
            (scope, issued, what, (record, None))
        }
        Request::Operator(request) => {
            let Some(role) = role else {
                bail!(
                    "{name} is an operator request: say its role with --role engineer|auditor|noc"
                );
            };
            let scope = match province {
                None => "for the whole network".to_owned(),
                Some(code) => {
                    let model = Model::load(files)?;
                    let Some(ix) = model.network.lookup(&NodeId::DataCentre(code)) else {
                        bail!("--province {code}: no province {code} in the network");
                    };
                    format!("for province {code} ({})", model.network.node(ix).name)
                }
            };
            let ca = store.authority(AuthorityScope::Ministry)?;
            let issued = ca
                .issue_operator(
                    &request,
                    role,
                    province,
                    now,
                    lifetime.unwrap_or(OPERATOR_LIFETIME),
                )
                .with_context(|| format!("the ministry CA refused {name}"))?;
            let what = format!(
                "operator {} ({}) as {role} {scope}",
                request.login, request.name
            );
            let record = CertificateRecord {
                serial: issued.serial.to_string(),
                subject: request.login.clone(),
                kind: CertificateKind::Operator,
                plane: None,
                issuer: AuthorityScope::Ministry.to_string(),
                not_after: issued.not_after,
                pem: issued.pem(),
                revoked: None,
            };
            let operator = OperatorRecord {
                login: request.login.clone(),
                name: request.name.clone(),
                role,
                province: province.map(|p| p.to_string()),
                serial: Some(issued.serial.to_string()),
            };
            (
                AuthorityScope::Ministry,
                issued,
                what,
                (record, Some(operator)),
            )
        }
    };
    store.keep_issued(scope, &issued)?;
    // With a controller store here, the issuance is recorded there too (change log).
    if let Some(controller) = super::serve::controller_store(dir)? {
        let who = super::serve::local_user();
        let (certificate, operator) = record;
        controller.write(|tx| {
            tx.record_certificate(&certificate, &who)?;
            if let Some(operator) = &operator {
                tx.upsert_operator(operator, &who)?;
            }
            Ok(())
        })?;
    }
    let ca = store.authority(scope)?;
    eprintln!(
        "issued {} for {what} by the {scope} CA, valid until {}, renew after {}",
        issued.serial,
        table::when(issued.not_after),
        table::when(renew_at(now, issued.not_after)),
    );
    Ok(format!("{}{}", issued.pem(), ca.certificate_pem()))
}

fn list(
    store: &CaDir,
    expiring: Option<Duration>,
    authority: Option<AuthorityScope>,
    now: SystemTime,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    store.root()?;
    let listing = store.issued()?;
    let revoked = store.revocations()?;
    let reason_of = |serial: &Serial| {
        revoked
            .iter()
            .find(|(_, r)| r.serial == *serial)
            .map(|(_, r)| r.reason)
    };
    let mut rows = table::new(
        &[
            "serial",
            "kind",
            "subject",
            "plane/role",
            "authority",
            "valid until",
            "status",
        ],
        &[],
    );
    let mut shown = 0;
    for stored in &listing.certificates {
        let revoked = reason_of(&stored.summary.serial);
        let horizon = expiring.map(|span| now + span);
        if authority.is_some_and(|a| a != stored.authority)
            || horizon.is_some_and(|h| revoked.is_some() || stored.summary.not_after > h)
        {
            continue;
        }
        shown += 1;
        rows.add_row(row(stored, revoked, now));
    }
    writeln!(out, "{}", table::render(&rows))?;
    writeln!(
        out,
        "{shown} of {} certificates{}",
        listing.certificates.len(),
        expiring
            .map(|span| format!(" expiring within {}", table::span(span)))
            .unwrap_or_default()
    )?;
    for problem in &listing.unreadable {
        eprintln!("warning: {problem}");
    }
    Ok(if listing.unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn row(stored: &Stored, revoked: Option<Reason>, now: SystemTime) -> Vec<String> {
    let summary = &stored.summary;
    let (subject, detail) = match (&summary.node, &summary.operator) {
        (Some(node), _) => (node.node.to_string(), node.plane.to_string()),
        (_, Some(operator)) => (
            operator.login.clone(),
            match &operator.province {
                Some(province) => format!("{} ({province})", operator.role),
                None => operator.role.to_string(),
            },
        ),
        _ => (summary.common_name.clone(), "-".into()),
    };
    let status = match (revoked, summary.not_after.duration_since(now)) {
        (Some(reason), _) => format!("revoked ({reason})"),
        (None, Err(past)) => format!("expired {} ago", table::span(past.duration())),
        (None, Ok(left)) if renew_at(summary.not_before, summary.not_after) <= now => {
            format!("renew now (expires in {})", table::span(left))
        }
        (None, Ok(left)) => format!("valid ({} left)", table::span(left)),
    };
    vec![
        summary.serial.to_string(),
        summary.kind().to_owned(),
        subject,
        detail,
        stored.authority.to_string(),
        table::when(summary.not_after),
        status,
    ]
}
