//! `jinbao-agent keys generate` and `jinbao-agent csr`, run as a node engineer runs them:
//! keys are private and never overwritten, and the request asks for what the plan gives.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

use agent::identity::KeyDir;
use pki::request::{Request, read_request_pem};
use topology::{Plane, Zone};

struct Node {
    dir: PathBuf,
}

impl Node {
    fn new(name: &str) -> Node {
        let dir =
            std::env::temp_dir().join(format!("jinbao-agent-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Node { dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_jinbao-agent"))
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .expect("the binary runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        String::from_utf8(output.stderr).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn keys_are_private_per_plane_and_never_overwritten() {
    let node = Node::new("keys");
    let printed = node.ok(&["keys", "generate"]);
    let keys = KeyDir::new(&node.dir);
    let public = keys.wireguard_public(Plane::Business).unwrap();
    assert_eq!(
        printed.trim(),
        public.to_string(),
        "prints the public key, like `wg pubkey`"
    );
    let tls = std::fs::read(keys.tls_key_path()).unwrap();
    let err = node.fails(&["keys", "generate"]);
    assert!(
        err.contains("wireguard-business.key already exists"),
        "{err}"
    );
    assert_eq!(keys.wireguard_public(Plane::Business).unwrap(), public);

    let office = node.ok(&[
        "keys",
        "generate",
        "--plane",
        "office",
        "--algorithm",
        "ed25519",
    ]);
    assert_ne!(
        office.trim(),
        printed.trim(),
        "each plane has its own WireGuard key"
    );
    assert_eq!(
        std::fs::read(keys.tls_key_path()).unwrap(),
        tls,
        "the TLS key is kept"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(keys.tls_key_path()), 0o600);
        assert_eq!(mode(keys.wireguard_key_path(Plane::Business)), 0o600);
        assert_eq!(mode(keys.wireguard_key_path(Plane::Office)), 0o600);
    }
}

#[test]
fn a_request_asks_for_the_plans_zones_and_addresses() {
    let node = Node::new("csr");
    let err = node.fails(&["csr", "--node", "dc:1401"]);
    assert!(
        err.contains("run `jinbao-agent keys generate --plane business` first"),
        "{err}"
    );
    node.ok(&["keys", "generate"]);
    let pem = node.ok(&["csr", "--node", "dc:1401", "--plane", "business"]);
    let Request::Node(request) = read_request_pem(pem.as_bytes()).unwrap() else {
        panic!("not a node request")
    };
    let keys = KeyDir::new(&node.dir);
    assert_eq!(request.binding.node.to_string(), "dc:1401");
    assert_eq!(
        request.binding.zones,
        [Zone::Mgmt, Zone::Exchange, Zone::Production]
    );
    let addresses: Vec<String> = request.addresses.iter().map(|a| a.to_string()).collect();
    assert_eq!(addresses, ["10.32.64.1", "10.32.64.65", "10.32.64.129"]);
    assert_eq!(
        request.binding.wireguard_key,
        keys.wireguard_public(Plane::Business).unwrap()
    );

    let one = node.ok(&["csr", "--node", "dc:1401", "--zones", "production"]);
    let Request::Node(one) = read_request_pem(one.as_bytes()).unwrap() else {
        panic!("not a node request")
    };
    assert_eq!(
        one.addresses,
        ["10.32.64.129".parse::<std::net::IpAddr>().unwrap()]
    );

    assert!(
        node.fails(&["csr", "--node", "dc:9999"])
            .contains("no node dc:9999")
    );
    let err = node.fails(&["csr", "--node", "dc:1401", "--zones", "dmz"]);
    assert!(
        err.contains("has no dmz zone on the business plane"),
        "{err}"
    );
}

#[test]
fn openssl_reads_the_request() {
    if !Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("skipping: no openssl binary");
        return;
    }
    let node = Node::new("openssl");
    node.ok(&["keys", "generate"]);
    let csr = node.dir.join("req.pem");
    node.ok(&[
        "csr",
        "--node",
        "dc:1401",
        "--output",
        &csr.display().to_string(),
    ]);
    let output = Command::new("openssl")
        .args(["req", "-noout", "-verify", "-text", "-in"])
        .arg(&csr)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    for expected in [
        "verify OK",
        "CN = dc:1401",
        "URI:spiffe://jinbao/business/dc:1401",
        "IP Address:10.32.64.1,",
        "1.3.6.1.4.1.4294960000.1.1",
    ] {
        assert!(text.contains(expected), "missing {expected}:\n{text}");
    }
}
