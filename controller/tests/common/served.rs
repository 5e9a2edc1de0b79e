//! A real `jinbao-controller` on a directory of its own: `init`, operator certificates made
//! as the README says, `serve` under a supervisor, and requests with curl over mutual TLS.
//!
//! Servers run under a small `sh` supervisor holding a pipe from the test process: when the
//! test binary exits, the supervisor stops its server and removes the work directory. A
//! server can also be killed with SIGKILL (its pid is in the work directory) and another
//! started on the same directory.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// `$0` binary, `$1` dir, `$2` listen, `$3` work, `$4` log name. The server's pid goes to
/// `$3/$4.pid`, so a test can kill it with SIGKILL.
const SUPERVISOR: &str = r#"
"$0" --dir "$1" serve --listen "$2" </dev/null 2>"$3/$4.log" &
server=$!
echo "$server" >"$3/$4.pid"
read -r _ignored
kill "$server" 2>/dev/null
wait "$server"
rm -rf "$3"
"#;

/// Who a request comes from: the TLS client certificate curl presents.
#[derive(Clone, Copy)]
pub enum As<'a> {
    /// No client certificate.
    Nobody,
    /// An operator's certificate (`<login>.pem`, `<login>.key` in the work directory).
    Operator(&'a str),
    /// A node's chain and TLS key.
    Node(&'a Path, &'a Path),
}

impl<'a> As<'a> {
    /// The operator's login.
    pub fn login(self) -> &'a str {
        match self {
            As::Operator(login) => login,
            _ => unreachable!("not an operator"),
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Asserts the status; the body as JSON (`Null` if empty).
    #[track_caller]
    pub fn ok(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        if self.body.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts a refusal: `status`, a body that is exactly `{"error": "…"}`, and an error
    /// text that contains every one of `words`. Returns the text.
    #[track_caller]
    pub fn refused(&self, status: u16, words: &[&str]) -> String {
        assert_eq!(self.status, status, "{self:?}");
        let value = self.json();
        let object = value.as_object().unwrap_or_else(|| panic!("{value}"));
        assert_eq!(
            object.len(),
            1,
            "a refusal is {{\"error\": …}} only: {value}"
        );
        let error = object["error"].as_str().unwrap().to_owned();
        for word in words {
            assert!(error.contains(word), "expected {word:?} in {error:?}");
        }
        error
    }
}

/// A controller directory in a work directory of its own, and its servers.
pub struct Served {
    pub work: PathBuf,
    pub dir: PathBuf,
    /// The user local commands run as (`local:<user>` in the change log).
    local_user: &'static str,
    url: Mutex<String>,
    /// The supervisors; their standard input stays open as long as this process lives.
    servers: Mutex<Vec<Child>>,
    starts: AtomicUsize,
    bodies: AtomicUsize,
}

impl Served {
    /// A fresh work directory (`jinbao-<name>-<pid>-<nanos>` under the temporary directory)
    /// with an initialised controller directory, and `operators` (login, role, province)
    /// made. No server runs yet: see [`Served::serve`].
    pub fn init(
        name: &str,
        local_user: &'static str,
        operators: &[(&str, &str, Option<&str>)],
    ) -> Served {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let work =
            std::env::temp_dir().join(format!("jinbao-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(work.join("bodies")).unwrap();
        let served = Served {
            dir: work.join("controller"),
            work,
            local_user,
            url: Mutex::new(String::new()),
            servers: Mutex::new(Vec::new()),
            starts: AtomicUsize::new(0),
            bodies: AtomicUsize::new(0),
        };
        served.ok(&["init"]);
        for &(login, role, province) in operators {
            served.operator(login, role, province);
        }
        served
    }

    /// Starts a server on the directory, on a new port if another process took the first
    /// one before the server bound it. The supervisor is never waited for: it lives as long
    /// as this process and ends when this process does.
    #[allow(clippy::zombie_processes)]
    pub fn serve(&self) {
        for _ in 0..3 {
            let n = self.starts.fetch_add(1, Ordering::Relaxed);
            let name = format!("serve-{n}");
            let listen: SocketAddr = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let supervisor = Command::new("sh")
                .args(["-c", SUPERVISOR, env!("CARGO_BIN_EXE_jinbao-controller")])
                .arg(&self.dir)
                .arg(listen.to_string())
                .arg(&self.work)
                .arg(&name)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            self.servers.lock().unwrap().push(supervisor);
            let log = self.work.join(format!("{name}.log"));
            let deadline = Instant::now() + Duration::from_secs(30);
            while TcpStream::connect(listen).is_err() {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                if said.contains("error:") || Instant::now() > deadline {
                    eprintln!("the controller did not start on {listen}: {said}");
                    self.kill_server(&name);
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if TcpStream::connect(listen).is_ok() {
                *self.url.lock().unwrap() = format!("https://localhost:{}", listen.port());
                return;
            }
        }
        panic!("the controller did not start");
    }

    /// The running server's base URL.
    pub fn url(&self) -> String {
        self.url.lock().unwrap().clone()
    }

    /// SIGKILL to the last server started: no shutdown of any kind.
    pub fn kill_9(&self) {
        let n = self.starts.load(Ordering::Relaxed) - 1;
        self.kill_server(&format!("serve-{n}"));
    }

    fn kill_server(&self, name: &str) {
        let pid_file = self.work.join(format!("{name}.pid"));
        let deadline = Instant::now() + Duration::from_secs(5);
        let pid = loop {
            if let Ok(pid) = std::fs::read_to_string(&pid_file)
                && !pid.trim().is_empty()
            {
                break pid.trim().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no pid in {}",
                pid_file.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let killed = Command::new("kill").args(["-9", &pid]).status().unwrap();
        assert!(killed.success());
        // Gone once its port refuses connections.
        let url = self.url();
        if let Some(port) = url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()) {
            let deadline = Instant::now() + Duration::from_secs(5);
            while TcpStream::connect(("127.0.0.1", port)).is_ok() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// `jinbao-controller --dir DIR ARGS…` as the local user.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_jinbao-controller"))
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .env("USER", self.local_user)
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; standard output and standard error.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> (String, String) {
        let output = self.run(args);
        let out = String::from_utf8(output.stdout).unwrap();
        let err = String::from_utf8(output.stderr).unwrap();
        assert!(output.status.success(), "{args:?}: {out}{err}");
        (out, err)
    }

    /// An operator's key, request and certificate, made as the README says; the
    /// certificate's serial goes to `<login>.serial`.
    pub fn operator(&self, login: &str, role: &str, province: Option<&str>) {
        let [key, csr, pem] = ["key", "csr", "pem"].map(|ext| self.path(&format!("{login}.{ext}")));
        let (request, _) = self.ok(&[
            "cert", "request", "--login", login, "--name", login, "--key", &key,
        ]);
        std::fs::write(&csr, request).unwrap();
        let mut args = vec![
            "cert", "issue", "--csr", &csr, "--role", role, "--output", &pem,
        ];
        args.extend(province.iter().flat_map(|p| ["--province", p]));
        let (_, said) = self.ok(&args);
        let serial = said
            .strip_prefix("issued ")
            .and_then(|s| s.split_whitespace().next());
        std::fs::write(self.path(&format!("{login}.serial")), serial.unwrap()).unwrap();
    }

    /// A path in the work directory.
    pub fn path(&self, name: &str) -> String {
        self.work.join(name).display().to_string()
    }

    /// Writes a file in the work directory; its path.
    pub fn file(&self, name: &str, text: &str) -> String {
        let path = self.work.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// One request with curl; `Err` with curl's exit code and message if no HTTP answer.
    pub fn curl(
        &self,
        who: As<'_>,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<Reply, String> {
        let mut curl = Command::new("curl");
        curl.args([
            "-sS",
            "--max-time",
            "30",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
        ])
        .arg("--cacert")
        .arg(self.dir.join("ca/root.pem"));
        match who {
            As::Nobody => {}
            As::Operator(login) => {
                let [pem, key] = ["pem", "key"].map(|ext| self.path(&format!("{login}.{ext}")));
                curl.args(["--cert", &pem, "--key", &key]);
            }
            As::Node(chain, key) => {
                curl.arg("--cert").arg(chain).arg("--key").arg(key);
            }
        }
        if let Some((content_type, bytes)) = body {
            let n = self.bodies.fetch_add(1, Ordering::Relaxed);
            let file = self.work.join("bodies").join(n.to_string());
            std::fs::write(&file, bytes).unwrap();
            curl.args(["-H", &format!("Content-Type: {content_type}")])
                .arg("--data-binary")
                .arg(format!("@{}", file.display()));
        }
        let output = curl.arg(format!("{}{path}", self.url())).output().unwrap();
        if !output.status.success() {
            let said = String::from_utf8_lossy(&output.stderr);
            return Err(format!("curl exit {:?}: {said}", output.status.code()));
        }
        let text = String::from_utf8(output.stdout).unwrap();
        let (body, status) = text.rsplit_once('\n').unwrap();
        Ok(Reply {
            status: status.parse().unwrap(),
            body: body.to_owned(),
        })
    }

    /// One request that must get an HTTP answer.
    #[track_caller]
    pub fn call(
        &self,
        who: As<'_>,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Reply {
        self.curl(who, method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }
}
