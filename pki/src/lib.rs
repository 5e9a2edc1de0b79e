//! The trust system (安全信任体系) of Jinbao WAN — not built yet.
//!
//! This crate will hold the CA hierarchy (a national root held by the ministry and one
//! intermediate per province, so provinces issue for their own cities: 分级管理), signing of
//! node certificates from CSRs (the private key never leaves the node), operator certificates
//! with one role each (`engineer`, `auditor`, `noc`), CRLs, and a verifier that takes `now`
//! and says exactly which check failed. Node identities and address blocks come from
//! `topology`. See issue 3.
