//! Reply checks on hand-encoded BER replies (test vectors), value checks and error
//! mapping: everything of the client that needs no agent.

use super::*;

fn address() -> SocketAddr {
    "192.0.2.1:161".parse().unwrap()
}

/// A BER TLV (short or long length form).
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn integer(value: i64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < 7
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    tlv(0x02, &bytes[start..])
}

fn oid(text: &str) -> Vec<u8> {
    let arcs: Vec<u64> = text.split('.').map(|a| a.parse().unwrap()).collect();
    let oid = Oid::from(&arcs).unwrap();
    tlv(0x06, oid.as_bytes())
}

/// An SNMPv2c GetResponse with the given error-status and varbinds (OID, encoded value).
fn response(error_status: i64, varbinds: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let list: Vec<u8> = varbinds
        .iter()
        .flat_map(|(name, value)| tlv(0x30, &[oid(name), value.clone()].concat()))
        .collect();
    let pdu = [
        integer(7),
        integer(error_status),
        integer(0),
        tlv(0x30, &list),
    ]
    .concat();
    let message = [integer(1), tlv(0x04, b"public"), tlv(0xa2, &pdu)].concat();
    tlv(0x30, &message)
}

fn wanted_oids(wanted: &[Wanted]) -> Vec<Oid<'static>> {
    wanted.iter().map(|w| w.oid()).collect()
}

fn interface(index: u32, column: IfColumn) -> Wanted {
    Wanted::Interface {
        slot: 0,
        index,
        column,
    }
}

const ASKED: [Wanted; 3] = [
    Wanted::SysUpTime,
    Wanted::Interface {
        slot: 0,
        index: 3,
        column: IfColumn::HcInOctets,
    },
    Wanted::Interface {
        slot: 0,
        index: 3,
        column: IfColumn::OperStatus,
    },
];

#[test]
fn oids_are_the_if_mib_ones() {
    assert_eq!(Wanted::SysUpTime.oid().to_string(), "1.3.6.1.2.1.1.3.0");
    assert_eq!(
        interface(7, IfColumn::HcInOctets).oid().to_string(),
        "1.3.6.1.2.1.31.1.1.1.6.7"
    );
    assert_eq!(
        interface(u32::MAX, IfColumn::HcOutOctets).oid().to_string(),
        "1.3.6.1.2.1.31.1.1.1.10.4294967295"
    );
    assert_eq!(
        interface(3, IfColumn::OperStatus).oid().to_string(),
        "1.3.6.1.2.1.2.2.1.8.3"
    );
}

#[test]
fn a_well_formed_reply_is_read_in_order() {
    let bytes = response(
        0,
        &[
            ("1.3.6.1.2.1.1.3.0", tlv(0x43, &[0x01, 0x00])),
            (
                "1.3.6.1.2.1.31.1.1.1.6.3",
                tlv(
                    0x46,
                    &[0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                ),
            ),
            ("1.3.6.1.2.1.2.2.1.8.3", integer(1)),
        ],
    );
    let pdu = Pdu::from_bytes(&bytes).unwrap();
    let readings = read_reply(address(), &wanted_oids(&ASKED), pdu).unwrap();
    assert_eq!(
        readings,
        [
            Reading::Ticks(256),
            Reading::Counter64(u64::MAX),
            Reading::Integer(1)
        ]
    );
}

#[test]
fn replies_that_do_not_match_the_request_are_malformed() {
    let uptime = ("1.3.6.1.2.1.1.3.0", tlv(0x43, &[0x01]));
    let counter = ("1.3.6.1.2.1.31.1.1.1.6.3", tlv(0x46, &[0x05]));
    let oper = ("1.3.6.1.2.1.2.2.1.8.3", integer(1));
    let asked = wanted_oids(&ASKED);

    let short = response(0, &[uptime.clone(), counter.clone()]);
    let err = read_reply(address(), &asked, Pdu::from_bytes(&short).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            PollError::Malformed {
                problem: MalformedReply::VarbindCount {
                    expected: 3,
                    got: 2
                },
                ..
            }
        ),
        "{err}"
    );

    let long = response(
        0,
        &[uptime.clone(), counter.clone(), oper.clone(), oper.clone()],
    );
    let err = read_reply(address(), &asked, Pdu::from_bytes(&long).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            PollError::Malformed {
                problem: MalformedReply::VarbindCount { expected: 3, .. },
                ..
            }
        ),
        "{err}"
    );

    let swapped = response(0, &[uptime.clone(), oper.clone(), counter.clone()]);
    let err = read_reply(address(), &asked, Pdu::from_bytes(&swapped).unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "192.0.2.1:161: malformed reply: varbind 2 is 1.3.6.1.2.1.2.2.1.8.3, \
         but 1.3.6.1.2.1.31.1.1.1.6.3 was requested"
    );

    let refused = response(5, &[uptime, counter, oper]);
    let err = read_reply(address(), &asked, Pdu::from_bytes(&refused).unwrap()).unwrap_err();
    assert!(
        matches!(err, PollError::AgentError { status: 5, .. }),
        "{err}"
    );
    assert!(err.keeps_session());
}

#[test]
fn readings_keep_the_values_a_poll_uses() {
    assert_eq!(Reading::of(&Value::Timeticks(42)), Reading::Ticks(42));
    assert_eq!(
        Reading::of(&Value::Counter64(u64::MAX)),
        Reading::Counter64(u64::MAX)
    );
    assert_eq!(Reading::of(&Value::Integer(-3)), Reading::Integer(-3));
    assert_eq!(
        Reading::of(&Value::NoSuchInstance),
        Reading::Absent(Absence::NoSuchInstance)
    );
    assert_eq!(
        Reading::of(&Value::NoSuchObject),
        Reading::Absent(Absence::NoSuchObject)
    );
    let long = vec![b'x'; 500];
    let Reading::Other(text) = Reading::of(&Value::OctetString(&long)) else {
        panic!("an octet string is not a usable reading");
    };
    assert!(text.chars().count() <= 81, "{text}");
}

#[test]
fn values_are_type_checked() {
    let at = address();
    assert_eq!(uptime_from(at, Reading::Ticks(5)).unwrap(), 5);
    let err = uptime_from(at, Reading::Counter64(5)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "192.0.2.1:161: malformed reply: sysUpTime.0 should be TimeTicks but is COUNTER64: 5"
    );
    assert!(matches!(
        uptime_from(at, Reading::Absent(Absence::NoSuchObject)),
        Err(PollError::Malformed {
            problem: MalformedReply::NoSysUpTime(Absence::NoSuchObject),
            ..
        })
    ));

    assert!(matches!(
        interface_value(at, 4, IfColumn::HcInOctets, Reading::Counter64(9)),
        Ok(InterfaceValue::In(9))
    ));
    assert!(matches!(
        interface_value(at, 4, IfColumn::HcOutOctets, Reading::Counter64(8)),
        Ok(InterfaceValue::Out(8))
    ));
    assert!(matches!(
        interface_value(at, 4, IfColumn::OperStatus, Reading::Integer(2)),
        Ok(InterfaceValue::Oper(OperStatus::Down))
    ));
    assert!(matches!(
        interface_value(at, 4, IfColumn::OperStatus, Reading::Integer(9)),
        Err(PollError::Malformed {
            problem: MalformedReply::BadOperStatus {
                if_index: 4,
                value: 9
            },
            ..
        })
    ));
    // A 32-bit value where the MIB says Counter64 is refused, not silently widened.
    let Err(err) = interface_value(at, 4, IfColumn::HcOutOctets, Reading::Integer(9)) else {
        panic!("an INTEGER is not a Counter64");
    };
    assert_eq!(
        err.to_string(),
        "192.0.2.1:161: malformed reply: ifHCOutOctets.4 should be Counter64 but is INTEGER: 9"
    );
    let Err(err) = interface_value(
        at,
        4,
        IfColumn::HcInOctets,
        Reading::Absent(Absence::NoSuchInstance),
    ) else {
        panic!("an absent value is an error");
    };
    assert_eq!(
        err.to_string(),
        "192.0.2.1:161: interface 4 has no ifHCInOctets (noSuchInstance)"
    );
    assert_eq!(err.label(), "no-such-interface");
    assert!(err.keeps_session());
}

#[test]
fn snmp2_errors_map_to_what_they_mean() {
    let at = address();
    let auth = classify(
        at,
        snmp2::Error::AuthFailure(v3::AuthErrorKind::NotAuthenticated),
    );
    assert_eq!(auth.label(), "auth");
    assert!(auth.calls_for_a_new_session());
    assert!(!auth.keeps_session());
    let receive = classify(at, snmp2::Error::Receive);
    assert_eq!(receive.label(), "network");
    assert!(!receive.calls_for_a_new_session());
    assert_eq!(classify(at, snmp2::Error::AsnParse).label(), "malformed");
    assert_eq!(
        classify(at, snmp2::Error::RequestIdMismatch).label(),
        "malformed"
    );
    let timeout = PollError::Timeout {
        address: at,
        timeout: Duration::from_millis(1500),
    };
    assert_eq!(
        timeout.to_string(),
        "192.0.2.1:161: no reply within 1s 500ms"
    );
    assert!(!timeout.calls_for_a_new_session());
    assert!(!timeout.keeps_session());
}

#[test]
fn error_statuses_have_their_rfc_names() {
    assert_eq!(error_status_name(1), "tooBig");
    assert_eq!(error_status_name(5), "genErr");
    assert_eq!(error_status_name(18), "inconsistentName");
    assert_eq!(error_status_name(99), "an undefined error-status");
    let err = PollError::AgentError {
        address: address(),
        status: 5,
        index: 2,
    };
    assert_eq!(
        err.to_string(),
        "192.0.2.1:161: the agent answered genErr (error-status 5) at varbind 2"
    );
}

#[tokio::test]
async fn empty_v3_passwords_are_refused_before_anything_is_sent() {
    use super::super::inventory::Secret;
    let credentials = Credentials::V3 {
        user: "u".to_owned(),
        auth: AuthProtocol::Sha256,
        auth_password: Secret::new(""),
        privacy: PrivProtocol::Aes128,
        privacy_password: Secret::new("long-enough"),
    };
    let err = SnmpClient::connect(address(), &credentials, Duration::from_millis(10))
        .await
        .unwrap_err();
    assert_eq!(err.label(), "credentials", "{err}");
}
