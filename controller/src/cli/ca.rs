//! `jinbao-controller ca …`: create the national root, the ministry CA and the province CAs,
//! and list them with what an operator checks: fingerprint, validity, CRL state.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Result, bail};
use clap::Subcommand;
use pki::authority::fingerprint;
use pki::crl::CrlSummary;
use pki::store::{CaDir, StoreError, read_certificate};
use pki::{AuthorityScope, KeyAlgorithm};
use topology::{NodeId, Tier};

use super::model::{Files, Model};
use super::table;

#[derive(Debug, Subcommand)]
pub(crate) enum CaCommand {
    /// Create the national root CA and the ministry's issuing CA (in DIR/ca; never
    /// overwrites one that exists).
    Init {
        /// Key algorithm of the CAs: p256 (ECDSA P-256, the default) or ed25519.
        #[arg(long, default_value = "p256")]
        algorithm: KeyAlgorithm,
    },
    /// Create a province's issuing CA, signed by the root and limited to the province's
    /// blocks; `all` creates every province's CA that does not exist yet.
    Province {
        /// 2-digit province code (14 for 山西), or `all`.
        province: String,
        /// Key algorithm: p256 (default) or ed25519.
        #[arg(long, default_value = "p256")]
        algorithm: KeyAlgorithm,
    },
    /// List the CAs: validity, CRL number and next update, certificate file.
    List,
}

pub(crate) fn run(
    command: CaCommand,
    files: &Files,
    dir: &Path,
    now: SystemTime,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let store = CaDir::at(dir);
    match command {
        CaCommand::Init { algorithm } => {
            let root = store.init(algorithm, now)?;
            let model = Model::load(files)?;
            store.create_authority(
                AuthorityScope::Ministry,
                algorithm,
                &model.network,
                &model.allocation,
                now,
            )?;
            writeln!(
                out,
                "created the national root CA and the ministry CA ({algorithm}) in {}",
                store.path().display()
            )?;
            writeln!(
                out,
                "root SHA-256 fingerprint (compare it out of band before trusting the root):\n  {}",
                fingerprint(root.certificate())
            )?;
            writeln!(out, "next: jinbao-controller ca province all")?;
        }
        CaCommand::Province {
            province,
            algorithm,
        } => create_provinces(&store, files, &province, algorithm, now, out)?,
        CaCommand::List => list(&store, now, out)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn create_provinces(
    store: &CaDir,
    files: &Files,
    province: &str,
    algorithm: KeyAlgorithm,
    now: SystemTime,
    out: &mut dyn Write,
) -> Result<()> {
    let model = Model::load(files)?;
    let network = &model.network;
    let wanted: Vec<AuthorityScope> = if province == "all" {
        network
            .nodes()
            .iter()
            .filter(|node| node.tier == Tier::Province)
            .filter_map(|node| match node.id {
                NodeId::DataCentre(code) => Some(AuthorityScope::Province(code)),
                _ => None,
            })
            .collect()
    } else {
        match province.parse::<AuthorityScope>() {
            Ok(scope @ AuthorityScope::Province(_)) => vec![scope],
            _ => bail!("expected a 2-digit province code (e.g. 14) or `all`, not `{province}`"),
        }
    };
    let progress = wanted.len() > 1 && std::io::stderr().is_terminal();
    let (mut created, mut kept) = (0, 0);
    for (done, scope) in wanted.iter().enumerate() {
        let made = store.create_authority(*scope, algorithm, network, &model.allocation, now);
        match made {
            Ok(_) => {
                created += 1;
                writeln!(out, "created the {scope} CA ({algorithm})")?;
            }
            Err(StoreError::Exists(_)) if wanted.len() > 1 => kept += 1,
            Err(err) => return Err(err.into()),
        }
        if progress {
            eprint!("\rprovince CAs {}/{}", done + 1, wanted.len());
        }
    }
    if progress {
        eprintln!();
    }
    if wanted.len() > 1 {
        writeln!(out, "{created} created, {kept} already there")?;
    }
    Ok(())
}

fn list(store: &CaDir, now: SystemTime, out: &mut dyn Write) -> Result<()> {
    store.root()?;
    let mut rows = table::new(
        &[
            "authority",
            "name",
            "valid until",
            "CRL",
            "revoked",
            "next update",
            "certificate",
        ],
        &[3, 4],
    );
    let scopes = std::iter::once(AuthorityScope::Root).chain(store.authorities()?);
    for scope in scopes {
        let path = store.certificate_path(scope);
        let (_, summary) = read_certificate(&path)?;
        let crl = store
            .crl(scope)
            .map_err(anyhow::Error::from)
            .and_then(|der| {
                CrlSummary::read(&der)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", store.crl_path(scope).display()))
            });
        let (number, revoked, next) = match &crl {
            Ok(crl) => (
                crl.number.to_string(),
                crl.listed.len().to_string(),
                super::crl::next_update(crl, now),
            ),
            Err(_) => ("-".into(), "-".into(), "missing".into()),
        };
        rows.add_row(vec![
            scope.to_string(),
            summary.common_name,
            table::when(summary.not_after),
            number,
            revoked,
            next,
            path.display().to_string(),
        ]);
    }
    writeln!(out, "{}", table::render(&rows))?;
    Ok(())
}
