//! Sources: where raw frames come from. Each source runs as a task and sends
//! [`Frame`](crate::decode::Frame)s into one channel; the router decodes
//! them. `ble` listens to real sensors through BlueZ; `sim` simulates them.

pub mod ble;
pub mod sim;
