//! SNMP polling of the underlay devices (routers, MCUs) listed in the inventory.
//!
//! The overlay's own probes say how a tunnel behaves; they cannot say how full the leased
//! line under it is, or that the province router carrying it rebooted last night. That is
//! what the devices' own counters tell, over SNMP: this module reads IF-MIB's 64-bit octet
//! counters (ifHCInOctets, ifHCOutOctets), ifOperStatus and sysUpTime, and turns them into
//! bits per second per interface and restart events per device.
//!
//! - [`inventory`]: the devices, their addresses, interfaces and credentials (SNMPv2c, or
//!   SNMPv3 authPriv), read from a TOML file with errors that name the line.
//! - [`rate`]: the sans-IO core: successive samples into rates, with 64-bit counter wraps,
//!   counter resets, device restarts and sysUpTime's own 497-day wrap told apart.
//! - [`client`]: one agent, one sample, over `snmp2`, with a timeout and errors that say
//!   what failed (timeout, authentication, no such interface, malformed reply).
//! - [`poller`]: every device, every interval, concurrently, into a shared table of
//!   [`DeviceState`]s that the admin API reads.

pub mod client;
pub mod inventory;
pub mod poller;
pub mod rate;

pub use client::{Absence, IfColumn, MalformedReply, PollError, SnmpClient};
pub use inventory::{
    AuthProtocol, Credentials, Device, Inventory, InventoryError, InventoryProblem, PrivProtocol,
    Secret, parse_inventory,
};
pub use poller::{DeviceState, DeviceStates, Poller, PollerConfig, device_state};
pub use rate::{
    CounterRate, InterfaceRate, InterfaceSample, Observation, OperStatus, RateTracker, Sample,
    TrackerConfig, UptimeStep,
};
