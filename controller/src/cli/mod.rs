//! The subcommands of `jinbao-controller`, one module each, and what they share.

pub(crate) mod audit;
pub(crate) mod ca;
pub(crate) mod cert;
pub(crate) mod conf;
pub(crate) mod crl;
pub(crate) mod model;
pub(crate) mod plan;
pub(crate) mod policy;
pub(crate) mod serve;
pub(crate) mod table;
