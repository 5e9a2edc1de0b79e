//! Operators: the people who hold operator certificates, and their roles.

use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{StoreError, Tx, canonical_serial, corrupt, invalid, sql};

/// An operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorRecord {
    /// Login: 1–32 of `a-z 0-9 . - _`, starting with a letter.
    pub login: String,
    /// The person's name.
    pub name: String,
    /// Their one role.
    #[serde(with = "super::serde_text")]
    pub role: pki::Role,
    /// The province they work for (its two-digit code), if not the ministry.
    pub province: Option<String>,
    /// The serial of their current certificate (lower-case hex), if they have one.
    pub serial: Option<String>,
}

impl Tx<'_> {
    /// Adds an operator or replaces the record with the same login.
    pub fn upsert_operator(&mut self, rec: &OperatorRecord, who: &str) -> Result<(), StoreError> {
        if !pki::binding::valid_login(&rec.login) {
            return Err(invalid(format!(
                "bad operator login `{}` (1–32 of a-z 0-9 . - _, starting with a letter)",
                rec.login
            )));
        }
        let serial = rec.serial.as_deref().map(canonical_serial).transpose()?;
        self.conn()
            .execute(
                "INSERT INTO operators (login, name, role, province, serial)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (login) DO UPDATE SET
                    name = excluded.name, role = excluded.role,
                    province = excluded.province, serial = excluded.serial",
                params![rec.login, rec.name, rec.role.as_str(), rec.province, serial],
            )
            .map_err(sql("recording an operator"))?;
        let now = self.now();
        self.append_change(
            who,
            "upsert operator",
            &json!({
                "login": rec.login,
                "name": rec.name,
                "role": rec.role.as_str(),
                "province": rec.province,
                "serial": serial,
            }),
            now,
        )?;
        Ok(())
    }

    /// Every operator, by login.
    pub fn operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        let reading = "reading operators";
        let mut stmt = self
            .conn()
            .prepare("SELECT login, name, role, province, serial FROM operators ORDER BY login")
            .map_err(sql(reading))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(sql(reading))?;
        let mut operators = Vec::new();
        for row in rows {
            let (login, name, role, province, serial) = row.map_err(sql(reading))?;
            let role = role
                .parse()
                .map_err(|e| corrupt(format!("operator {login} role: {e}")))?;
            operators.push(OperatorRecord {
                login,
                name,
                role,
                province,
                serial,
            });
        }
        Ok(operators)
    }
}
