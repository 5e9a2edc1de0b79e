//! One-time, expiring enrollment tokens.
//!
//! A token is `<id>.<secret>`: the id is 16 lower-case hex digits (64 random bits, the row's
//! key, safe to show and log), the secret 43 characters of unpadded base64url (256 random
//! bits from the system generator). The store keeps only the SHA-256 of the secret's text, so
//! neither the database file nor a backup of it can enroll a node. Redeeming looks the id
//! up, compares the hash in constant time, refuses a used or expired token and marks it used
//! in the caller's transaction: if enrollment then fails and the transaction rolls back, the
//! token is still good.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use topology::NodeId;

use super::time::{from_ms, rfc3339, to_ms};
use super::{StoreError, Tx, corrupt, invalid, sql};

/// Random bytes in a token id.
const ID_BYTES: usize = 8;
/// Random bytes in a token secret.
const SECRET_BYTES: usize = 32;

/// A token just created: the only time its secret exists outside the node's hands.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    /// The token's id (the part before the dot).
    pub id: String,
    /// The whole token, `<id>.<secret>`, to hand to the node's installer. Shown once.
    pub token: String,
    /// The node it enrolls.
    pub node: NodeId,
    /// When it stops working (millisecond precision).
    #[serde(with = "super::time::serde_rfc3339")]
    pub expires_at: SystemTime,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("id", &self.id)
            .field("token", &"<secret>")
            .field("node", &self.node)
            .field("expires_at", &rfc3339(self.expires_at))
            .finish()
    }
}

/// A token as the store remembers it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The token's id.
    pub id: String,
    /// The node it enrolls.
    pub node: NodeId,
    /// When it was created.
    #[serde(with = "super::time::serde_rfc3339")]
    pub created_at: SystemTime,
    /// Who created it.
    pub created_by: String,
    /// When it stops working.
    #[serde(with = "super::time::serde_rfc3339")]
    pub expires_at: SystemTime,
    /// When it was redeemed, if it was.
    #[serde(with = "super::time::serde_rfc3339_option")]
    pub used_at: Option<SystemTime>,
}

/// Why an enrollment token was refused. The messages never quote the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRefusal {
    /// Not of the form `<16 hex digits>.<43 base64url characters>`.
    #[error("malformed enrollment token (expected `<id>.<secret>` exactly as issued)")]
    Malformed,
    /// No token with that id, or the secret does not match (the two are not told apart).
    #[error("unknown enrollment token")]
    Unknown,
    /// Redeemed already: a token enrolls once.
    #[error("enrollment token already used at {}", rfc3339(*at))]
    Used {
        /// When it was redeemed.
        at: SystemTime,
    },
    /// Past its expiry.
    #[error("enrollment token expired at {}", rfc3339(*at))]
    Expired {
        /// When it expired.
        at: SystemTime,
    },
}

/// The id and secret of a well-formed token.
fn parse(token: &str) -> Result<(&str, &str), TokenRefusal> {
    let (id, secret) = token
        .trim()
        .split_once('.')
        .ok_or(TokenRefusal::Malformed)?;
    let id_ok = id.len() == 2 * ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let secret_ok = URL_SAFE_NO_PAD
        .decode(secret)
        .is_ok_and(|bytes| bytes.len() == SECRET_BYTES);
    if id_ok && secret_ok {
        Ok((id, secret))
    } else {
        Err(TokenRefusal::Malformed)
    }
}

/// The stored form of a secret.
fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether `a == b`, in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| StoreError::Randomness)?;
    Ok(bytes)
}

impl Tx<'_> {
    /// Creates a single-use token that enrolls `node` until `now + ttl`.
    pub fn create_token(
        &mut self,
        node: &NodeId,
        ttl: Duration,
        now: SystemTime,
        who: &str,
    ) -> Result<NewToken, StoreError> {
        if ttl.is_zero() {
            return Err(invalid("an enrollment token needs a lifetime above zero"));
        }
        let created_ms = to_ms(now)?;
        let expires_ms = to_ms(
            now.checked_add(ttl)
                .ok_or_else(|| invalid("token lifetime out of range"))?,
        )?;
        let id = hex::encode(random::<ID_BYTES>()?);
        let secret = URL_SAFE_NO_PAD.encode(random::<SECRET_BYTES>()?);
        self.conn()
            .execute(
                "INSERT INTO enrollment_tokens
                   (id, node, secret_sha256, created_at_ms, created_by, expires_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    node.to_string(),
                    secret_hash(&secret).as_slice(),
                    created_ms,
                    who,
                    expires_ms
                ],
            )
            .map_err(sql("storing an enrollment token"))?;
        let expires_at = from_ms(expires_ms, "token expiry")?;
        self.append_change(
            who,
            "create token",
            &json!({ "token": id, "node": node, "expires_at": rfc3339(expires_at) }),
            now,
        )?;
        Ok(NewToken {
            token: format!("{id}.{secret}"),
            id,
            node: *node,
            expires_at,
        })
    }

    /// Redeems `token` at `now` and returns the node it enrolls; marks it used. Refusals are
    /// [`StoreError::Token`].
    pub fn redeem_token(&mut self, token: &str, now: SystemTime) -> Result<NodeId, StoreError> {
        let (id, secret) = parse(token)?;
        let now_ms = to_ms(now)?;
        let reading = "reading an enrollment token";
        let row: Option<(String, Vec<u8>, i64, Option<i64>)> = self
            .conn()
            .query_row(
                "SELECT node, secret_sha256, expires_at_ms, used_at_ms
                 FROM enrollment_tokens WHERE id = ?1",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()
            .map_err(sql(reading))?;
        let Some((node, stored_hash, expires_ms, used_ms)) = row else {
            tracing::warn!(token = id, "unknown enrollment token");
            return Err(TokenRefusal::Unknown.into());
        };
        if !constant_time_eq(&secret_hash(secret), &stored_hash) {
            tracing::warn!(token = id, "enrollment token with a wrong secret");
            return Err(TokenRefusal::Unknown.into());
        }
        if let Some(used_ms) = used_ms {
            tracing::warn!(token = id, "replayed enrollment token");
            return Err(TokenRefusal::Used {
                at: from_ms(used_ms, &format!("token {id} use time"))?,
            }
            .into());
        }
        if now_ms >= expires_ms {
            tracing::warn!(token = id, "expired enrollment token");
            return Err(TokenRefusal::Expired {
                at: from_ms(expires_ms, &format!("token {id} expiry"))?,
            }
            .into());
        }
        let node: NodeId = node
            .parse()
            .map_err(|e| corrupt(format!("enrollment token {id}: {e}")))?;
        self.conn()
            .execute(
                "UPDATE enrollment_tokens SET used_at_ms = ?1 WHERE id = ?2",
                params![now_ms, id],
            )
            .map_err(sql("marking an enrollment token used"))?;
        self.append_change(
            &node.to_string(),
            "redeem token",
            &json!({ "token": id, "node": node }),
            now,
        )?;
        Ok(node)
    }

    /// Every token, oldest first, without secrets.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let reading = "reading enrollment tokens";
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT id, node, created_at_ms, created_by, expires_at_ms, used_at_ms
                 FROM enrollment_tokens ORDER BY created_at_ms, id",
            )
            .map_err(sql(reading))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, Option<i64>>(5)?,
                ))
            })
            .map_err(sql(reading))?;
        let mut tokens = Vec::new();
        for row in rows {
            let (id, node, created_ms, created_by, expires_ms, used_ms) =
                row.map_err(sql(reading))?;
            let field = |name: &str| format!("enrollment token {id} {name}");
            tokens.push(TokenRecord {
                node: node
                    .parse()
                    .map_err(|e| corrupt(format!("{}: {e}", field("node"))))?,
                created_at: from_ms(created_ms, &field("created_at"))?,
                created_by,
                expires_at: from_ms(expires_ms, &field("expires_at"))?,
                used_at: used_ms
                    .map(|ms| from_ms(ms, &field("used_at")))
                    .transpose()?,
                id,
            });
        }
        Ok(tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tokens_shaped_as_issued_parse() {
        let secret = URL_SAFE_NO_PAD.encode([7u8; SECRET_BYTES]);
        let good = format!("0123456789abcdef.{secret}");
        assert_eq!(parse(&good), Ok(("0123456789abcdef", secret.as_str())));
        assert_eq!(
            parse(&format!(" {good}\n")).map(|p| p.0),
            Ok("0123456789abcdef")
        );
        for bad in [
            String::new(),
            ".".to_owned(),
            "0123456789abcdef".to_owned(),
            format!("0123456789ABCDEF.{secret}"),
            format!("0123456789abcde.{secret}"),
            format!("0123456789abcdef.{secret}="),
            format!("0123456789abcdef.{}", &secret[1..]),
            format!("0123456789abcdef.{secret}.x"),
            format!("0123456789abcdef.{}", URL_SAFE_NO_PAD.encode([7u8; 16])),
        ] {
            assert_eq!(parse(&bad), Err(TokenRefusal::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn hashes_compare_by_content() {
        let a = secret_hash("a");
        assert!(constant_time_eq(&a, &secret_hash("a")));
        assert!(!constant_time_eq(&a, &secret_hash("b")));
        assert!(!constant_time_eq(&a, &a[..31]));
    }

    #[test]
    fn new_tokens_do_not_print_their_secret() {
        let token = NewToken {
            id: "0123456789abcdef".into(),
            token: "0123456789abcdef.s3cr3t".into(),
            node: NodeId::MINISTRY,
            expires_at: SystemTime::UNIX_EPOCH,
        };
        assert!(!format!("{token:?}").contains("s3cr3t"));
    }
}
