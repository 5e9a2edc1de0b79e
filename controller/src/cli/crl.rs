//! `jinbao-controller crl …`: what each CA's CRL says and when the next one is due, and
//! publishing the next ones. Verifiers refuse a chain whose CRL is past its next update, so
//! an overdue CRL is an outage in waiting: `crl show` exits 1 when one is.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result};
use clap::Subcommand;
use pki::AuthorityScope;
use pki::authority::pem_crl;
use pki::crl::CrlSummary;
use pki::store::CaDir;

use super::table;

#[derive(Debug, Subcommand)]
pub(crate) enum CrlCommand {
    /// Show each CA's CRL: number, this and next update, how many it lists; with
    /// `--authority`, also the revoked serials. Exits 1 if a CRL is overdue.
    Show {
        /// Only this CA: root, ministry or a province code.
        #[arg(long)]
        authority: Option<AuthorityScope>,
        /// Print the CRLs as PEM instead (for `openssl crl -text`).
        #[arg(long)]
        pem: bool,
    },
    /// Sign and publish the next CRL of every CA (or one); run it well before next update.
    Update {
        /// Only this CA.
        #[arg(long)]
        authority: Option<AuthorityScope>,
    },
}

pub(crate) fn run(
    command: CrlCommand,
    dir: &Path,
    now: SystemTime,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let store = CaDir::at(dir);
    match command {
        CrlCommand::Show { authority, pem } => show(&store, authority, pem, now, out),
        CrlCommand::Update { authority } => {
            for scope in scopes(&store, authority)? {
                let ca = match scope {
                    AuthorityScope::Root => store.root()?,
                    _ => store.authority(scope)?,
                };
                let crl = store.publish_crl(&ca, now)?;
                writeln!(
                    out,
                    "published CRL {} of the {scope} CA ({} revoked), next update {}",
                    crl.number,
                    crl.listed.len(),
                    next_update(&crl, now)
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The root and every issuing CA, or only `only`.
fn scopes(store: &CaDir, only: Option<AuthorityScope>) -> Result<Vec<AuthorityScope>> {
    store.root()?;
    Ok(match only {
        Some(scope) => vec![scope],
        None => std::iter::once(AuthorityScope::Root)
            .chain(store.authorities()?)
            .collect(),
    })
}

fn show(
    store: &CaDir,
    authority: Option<AuthorityScope>,
    pem: bool,
    now: SystemTime,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let mut rows = table::new(
        &[
            "authority",
            "CRL",
            "this update",
            "next update",
            "revoked",
            "file",
        ],
        &[1, 4],
    );
    let mut overdue = false;
    for scope in scopes(store, authority)? {
        let der = store.crl(scope)?;
        if pem {
            write!(out, "{}", pem_crl(&der))?;
            continue;
        }
        let crl =
            CrlSummary::read(&der).with_context(|| store.crl_path(scope).display().to_string())?;
        overdue |= crl.overdue(now);
        rows.add_row(vec![
            scope.to_string(),
            crl.number.to_string(),
            table::when(crl.this_update),
            next_update(&crl, now),
            crl.listed.len().to_string(),
            store.crl_path(scope).display().to_string(),
        ]);
        if authority.is_some() && !crl.listed.is_empty() {
            writeln!(out, "{}\n", listed(&crl))?;
        }
    }
    if !pem {
        writeln!(out, "{}", table::render(&rows))?;
    }
    if overdue {
        eprintln!(
            "a CRL is past its next update: verifiers now refuse that CA's certificates; run `jinbao-controller crl update`"
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn listed(crl: &CrlSummary) -> String {
    let mut rows = table::new(&["serial", "reason", "revoked at"], &[]);
    for entry in &crl.listed {
        rows.add_row(vec![
            entry.serial.to_string(),
            entry
                .reason
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            table::when(entry.revoked_at),
        ]);
    }
    table::render(&rows)
}

/// When the next CRL is due, and how far off that is (or `OVERDUE`).
pub(crate) fn next_update(crl: &CrlSummary, now: SystemTime) -> String {
    match crl.next_update {
        None => "-".into(),
        Some(next) => match next.duration_since(now) {
            Ok(left) => format!("{} (in {})", table::when(next), table::span(left)),
            Err(past) => format!(
                "{} (OVERDUE by {})",
                table::when(next),
                table::span(past.duration())
            ),
        },
    }
}
